"""`--generators NAME,...`: a pair is kept only where both of its sides come from the named generators."""

from __future__ import annotations

import io
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from arena.models import Comparison
from exports.rows import JudgedPair, PairFilter, drop_reason
from exports.services import ExportError
from generation.models import Image, Population
from tests.exports.helpers import T0, db_pairs, export

pytestmark = pytest.mark.django_db

PAIR_FORMATS = ["population-jsonl", "popalign-csv", "pickapic-parquet", "kto-csv", "genai-bench-parquet"]


def generator_of() -> dict[int, str]:
    return dict(Population.objects.values_list("pk", "generator__name"))


def recount(campaign, criterion: str, chosen: set[str]) -> tuple[set[str], int]:  # type: ignore[no-untyped-def]
    """From the database: the pair ids on `criterion` with both sides among `chosen`, and how many have not."""
    names = generator_of()
    inside, outside = set(), 0
    for (key, pair), _ in db_pairs(campaign).items():
        if key != criterion:
            continue
        if {names[p] for p in pair} <= chosen:
            low, high = sorted(pair)
            inside.add(f"{key}:{low}-{high}")
        else:
            outside += 1
    return inside, outside


def jsonl_pairs(folder) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [json.loads(line) for line in (folder / "population.jsonl").read_text().splitlines()]


@pytest.fixture
def four(voted_campaign):  # type: ignore[no-untyped-def]
    """Four generators, so a two-name filter leaves pairs with one side in it and pairs with neither."""
    return voted_campaign(generators=4, participants=16, per_participant=6)


def test_only_pairs_with_both_sides_among_the_named_generators_are_kept_and_the_rest_counted(four, tmp_path):
    chosen = set(sorted(four.generators.values_list("name", flat=True))[:2])
    inside, outside = recount(four, "diversity", chosen)
    names = generator_of()
    one_side = sum(
        1 for key, pair in db_pairs(four) if key == "diversity" and len({names[p] for p in pair} & chosen) == 1
    )
    assert inside, "the campaign has pairs between the two chosen generators"
    assert one_side, "and pairs with exactly one side among them, which must go"

    result = export(
        four, "population-jsonl", tmp_path / "two", criterion="diversity", copy_images=False, generators=tuple(chosen)
    )

    lines = jsonl_pairs(tmp_path / "two")
    # population-jsonl keeps ties (soft) and needs one vote: every judged pair between the two is kept.
    assert {line["pair_id"] for line in lines} == inside
    assert all({line["left"]["generator"], line["right"]["generator"]} == chosen for line in lines)
    pairs = result.manifest["counts"]["pairs"]
    assert pairs["dropped"]["generators"] == outside
    assert pairs["judged"] == len(inside) + outside
    assert pairs["kept"] == len(inside)
    assert result.manifest["filters"]["generators"] == list(chosen)
    card = (tmp_path / "two" / "README.md").read_text()
    assert f"- generators: `{json.dumps(list(chosen))}`" in card
    assert f'"generators": {outside}' in card


def test_naming_every_generator_keeps_exactly_what_no_filter_keeps(four, tmp_path):
    every = tuple(four.generators.values_list("name", flat=True))
    plain = export(four, "population-jsonl", tmp_path / "plain", copy_images=False)
    named = export(four, "population-jsonl", tmp_path / "named", copy_images=False, generators=every)
    assert (tmp_path / "plain" / "population.jsonl").read_text() == (
        tmp_path / "named" / "population.jsonl"
    ).read_text()
    assert named.manifest["counts"]["pairs"]["dropped"]["generators"] == 0
    assert "generators" not in plain.manifest["counts"]["pairs"]["dropped"]
    assert named.manifest["counts"]["pairs"]["kept"] == plain.manifest["counts"]["pairs"]["kept"] > 0


@pytest.mark.parametrize("fmt", PAIR_FORMATS)
def test_every_pair_format_holds_only_the_named_generators(four, tmp_path, fmt):
    names = sorted(four.generators.values_list("name", flat=True))
    chosen = set(names[1:])  # three of the four
    _, outside = recount(four, "diversity", chosen)
    out = tmp_path / fmt
    result = export(four, fmt, out, criterion="diversity", generators=tuple(chosen))
    assert result.manifest["counts"]["pairs"]["dropped"]["generators"] == outside > 0

    by_population = generator_of()
    if fmt == "population-jsonl":
        seen = {side["generator"] for line in jsonl_pairs(out) for side in (line["left"], line["right"])}
    elif fmt == "popalign-csv":
        frame = pd.read_csv(out / "train.csv")
        seen = {by_population[p] for p in (*frame["population_w_id"], *frame["population_l_id"])}
    elif fmt == "pickapic-parquet":
        table = pd.concat(pq.read_table(p).to_pandas() for p in (out / "data").glob("*.parquet"))
        seen = set(table["model_0"]) | set(table["model_1"])
    elif fmt == "genai-bench-parquet":
        table = pd.concat(pq.read_table(p).to_pandas() for p in (out / "image_generation").glob("*.parquet"))
        seen = set(table["left_model"]) | set(table["right_model"])
    else:
        # kto-csv labels images: every labelled file is an image of a population of a named generator.
        hashes = {
            name.rsplit("/", 1)[-1].split(".")[0] for name in pd.read_csv(out / "train_processed_v3.csv")["file_name"]
        }
        seen = set(Image.objects.filter(sha256__in=hashes).values_list("population__generator__name", flat=True))
    assert seen, fmt
    assert seen <= chosen, fmt


def test_a_side_outside_the_named_generators_is_counted_before_the_other_filters():
    # Given a tied pair of populations 10 and 20 where only 10 is a named generator's
    tied = JudgedPair(1, 1, 10, 20, 1, 1, 1, T0, T0, left_wins=1, right_wins=1)
    keep_ties = PairFilter(ties="soft")
    # Then it is dropped for the generators, not for the tie; with both inside, the tie filter decides
    assert drop_reason(tied, pair_filter=keep_ties, guards={}, guard_pairs={}, populations={10}) == "generators"
    assert drop_reason(tied, pair_filter=keep_ties, guards={}, guard_pairs={}, populations={20}) == "generators"
    assert drop_reason(tied, pair_filter=keep_ties, guards={}, guard_pairs={}, populations={10, 20}) is None
    assert drop_reason(tied, pair_filter=PairFilter(), guards={}, guard_pairs={}, populations={10, 20}) == "tie"
    assert drop_reason(tied, pair_filter=keep_ties, guards={}, guard_pairs={}) is None


def test_a_filter_that_leaves_nothing_is_refused_naming_it(voted_campaign, tmp_path):
    campaign = voted_campaign(generators=3, participants=12, per_participant=5)
    first, second, _ = sorted(campaign.generators.values_list("name", flat=True))
    # Given every comparison between the first two generators made a gold check (never a preference pair)
    between = Comparison.objects.filter(
        campaign=campaign,
        left_population__generator__name__in=[first, second],
        right_population__generator__name__in=[first, second],
    )
    assert between.exists()
    between.update(is_gold=True)
    # When exporting only those two, the command refuses, names the flag and writes nothing
    with pytest.raises(CommandError, match=f"--generators {first}, {second} leaves nothing to export"):
        call_command(
            "export_preferences",
            "--campaign", campaign.slug, "--format", "popalign-csv", "--criterion", "diversity",
            "--generators", f"{first},{second}", "--out", str(tmp_path / "x"), "--no-progress",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    assert not (tmp_path / "x").exists()
    assert not list(tmp_path.glob(".x.*")), "no staging folder left behind"


@pytest.mark.parametrize(
    ("generators", "fmt", "message"),
    [
        ("secret-generator-0,nobody", "popalign-csv", "--generators: unknown generator 'nobody' \\(this campaign's "
         "generators: secret-generator-0, secret-generator-1, secret-generator-2\\)"),
        ("secret-generator-0", "popalign-csv", "--generators names one generator"),
        ("secret-generator-0,secret-generator-0", "popalign-csv", "--generators names 'secret-generator-0' twice"),
        ("secret-generator-0,secret-generator-1", "votes-csv", "--generators does not apply to votes-csv"),
        ("secret-generator-0,,secret-generator-1", "popalign-csv", "an empty generator name"),
    ],
)  # fmt: skip
def test_bad_generator_names_are_refused_naming_the_flag(voted_campaign, tmp_path, generators, fmt, message):
    campaign = voted_campaign(participants=2, per_participant=2)
    flags = ["--campaign", campaign.slug, "--format", fmt, "--out", str(tmp_path / "x"), "--no-progress"]
    flags += ["--criterion", "diversity"] if fmt == "popalign-csv" else []
    with pytest.raises(CommandError, match=message):
        call_command(
            "export_preferences", *flags, "--generators", generators, stdout=io.StringIO(), stderr=io.StringIO()
        )
    assert not (tmp_path / "x").exists()


def test_the_service_refuses_an_unknown_generator_by_its_field_name(voted_campaign, tmp_path):
    campaign = voted_campaign(participants=2, per_participant=2)
    with pytest.raises(ExportError, match="^generators: unknown generator 'nobody'"):
        export(campaign, "population-jsonl", tmp_path / "x", generators=("secret-generator-0", "nobody"))
    assert not (tmp_path / "x").exists()
