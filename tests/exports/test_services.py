"""Export guarantees: bad input refused clearly, atomic output, empty campaigns, missing images, filters, privacy."""

from __future__ import annotations

import json
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.files.storage import default_storage

from arena.admission import admit_to_vote
from arena.issuing import issue_comparison
from arena.models import Comparison, Vote
from arena.participation import set_flags
from arena.voting import VoteInput, cast_votes
from core.errors import Conflict, NotFound
from exports import pair_reading
from exports.services import ExportError
from exports.writers import FORMATS
from generation.models import Image
from tests.exports.helpers import db_pairs, export, load_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(tmp_path):
    """Where the exports of a test go: beside, not under, the test's media folder."""
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


CRITERION = {name: "diversity" if spec.single_criterion else None for name, spec in FORMATS.items()}


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"format": "parquet"}, ExportError, "unknown format 'parquet' \\(use one of: population-jsonl, "),
        ({"format": "popalign-csv", "criterion": "beauty"}, NotFound, "unknown criterion 'beauty'.*diversity, quality"),
        ({"format": "popalign-csv"}, ExportError, "popalign-csv holds one criterion: pass criterion "),
        (
            {"format": "popalign-csv", "criterion": "diversity", "ties": "soft"},
            ExportError,
            "cannot express a tie: use ties: drop",
        ),
        ({"format": "votes-csv", "min_votes": 2}, ExportError, "^min_votes does not apply to votes-csv"),
        ({"format": "population-jsonl", "min_votes": 0}, ExportError, "^min_votes must be at least 1"),
        ({"format": "genai-bench-parquet", "criterion": "diversity", "validation_fraction": 0.2}, ExportError, "split"),
        ({"format": "kto-csv", "criterion": "diversity", "copy_images": False}, ExportError, "needs its images"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(arena_campaign, root, options, error, message):
    campaign = arena_campaign()
    fmt = options.pop("format")
    with pytest.raises(error, match=message):
        export(campaign, fmt, root / "out", **options)
    assert not list(root.iterdir())


def test_an_existing_folder_is_kept_unless_overwrite_replaces_an_earlier_export(voted_campaign, root):
    campaign = voted_campaign(participants=3)
    out = root / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(Conflict, match="is not empty; pass overwrite "):
        export(campaign, "votes-csv", out)
    with pytest.raises(Conflict, match="only replaces an earlier export"):
        export(campaign, "votes-csv", out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]

    # An empty folder is fine, and --overwrite replaces what an earlier export wrote there.
    again = root / "again"
    again.mkdir()
    export(campaign, "population-jsonl", again)
    export(campaign, "votes-csv", again, overwrite=True)
    assert sorted(p.name for p in again.iterdir()) == ["README.md", "manifest.json", "votes.csv"]
    assert json.loads((again / "manifest.json").read_text())["format"] == "votes-csv"
    assert sorted(p.name for p in root.iterdir()) == ["again", "out"]  # no staging folder left behind


def test_a_campaign_with_no_votes_gives_a_clear_message_and_empty_valid_datasets(arena_campaign, root):
    campaign = arena_campaign()
    for fmt in FORMATS:
        result = export(campaign, fmt, root / fmt, criterion=CRITERION[fmt])
        assert any("has no votes yet" in w for w in result.warnings), fmt
        assert json.loads((root / fmt / "manifest.json").read_text())["warnings"] == result.warnings
    assert (root / "population-jsonl" / "population.jsonl").read_text() == ""
    popalign = pd.read_csv(root / "popalign-csv" / "train.csv")
    assert list(popalign.columns[:4]) == ["jpg_0", "jpg_1", "caption", "label"]
    assert popalign.empty
    assert pd.read_csv(root / "votes-csv" / "votes.csv").empty
    # datasets refuses to materialise a split with no rows (huggingface/datasets#8401); streaming reads it.
    pickapic = load_dataset(str(root / "pickapic-parquet"), streaming=True)
    assert list(pickapic["train"]) == []
    assert pickapic["train"].features["jpg_0"].dtype == "binary"
    (shard,) = (root / "pickapic-parquet" / "data").glob("*.parquet")
    assert pq.read_table(shard).num_rows == 0
    (shard,) = (root / "genai-bench-parquet" / "image_generation").glob("*.parquet")
    assert pq.read_table(shard).num_rows == 0


def _judged_image(campaign) -> Image:
    pair = next(pair for key, pair in db_pairs(campaign) if key == "diversity")
    return Image.objects.filter(population_id__in=pair).order_by("pk").first()


def test_a_missing_image_is_reported_by_name_and_skip_missing_goes_on(voted_campaign, root):
    campaign = voted_campaign()
    out = root / "out"
    export(campaign, "popalign-csv", out, criterion="diversity")
    before = (out / "train.csv").read_text()
    # Given every stored file with one image's content gone
    image = _judged_image(campaign)
    names = list(Image.objects.filter(sha256=image.sha256).values_list("file", flat=True))
    for name in names:
        default_storage.delete(name)

    # When exporting, the error names the file, and the earlier export stays as it was
    pattern = f"image file ({'|'.join(map(re.escape, names))}) is missing from media storage; pass skip_missing "
    with pytest.raises(ExportError, match=pattern):
        export(campaign, "popalign-csv", out, criterion="diversity", overwrite=True)
    assert (out / "train.csv").read_text() == before
    assert sorted(p.name for p in root.iterdir()) == ["out"]

    # With skip_missing the pairs showing it are left out and reported
    result = export(campaign, "popalign-csv", root / "skipped", criterion="diversity", skip_missing=True)
    dropped = result.manifest["counts"]["pairs"]["dropped"]["missing_image"]
    assert dropped > 0
    assert {m["name"] for m in result.manifest["missing_images"]} <= set(names)
    assert any("could not be used" in w and any(n in w for n in names) for w in result.warnings)
    frame = pd.read_csv(root / "skipped" / "train.csv")
    assert not frame["jpg_0"].str.contains(image.sha256).any()
    assert not frame["jpg_1"].str.contains(image.sha256).any()
    assert len(frame) == len(pd.read_csv(out / "train.csv")) - dropped * campaign.population_size


def test_an_image_whose_content_changed_is_refused(voted_campaign, root):
    campaign = voted_campaign(participants=4)
    image = _judged_image(campaign)
    for name in Image.objects.filter(sha256=image.sha256).values_list("file", flat=True):
        with default_storage.open(name, "wb") as handle:
            handle.write(b"not the image that was judged")
    with pytest.raises(ExportError, match="does not match its recorded sha256"):
        export(campaign, "pickapic-parquet", root / "out", criterion="diversity")


def test_gold_comparisons_and_flagged_participants_stay_out_of_the_pair_formats(voted_campaign, root):
    campaign = voted_campaign()
    voted = list(Comparison.objects.filter(campaign=campaign, status="voted").order_by("pk"))
    Comparison.objects.filter(pk=voted[0].pk).update(is_gold=True)
    flagged = voted[-1].participant
    set_flags(campaign=campaign, flags={flagged.pk: "failed gold"})
    all_votes = Vote.objects.filter(comparison__campaign=campaign)
    flagged_votes = all_votes.filter(comparison__participant=flagged, comparison__is_gold=False).count()

    result = export(campaign, "population-jsonl", root / "pairs")
    votes = result.manifest["counts"]["votes"]
    assert votes["gold_excluded"] == 2
    assert votes["flagged_participants_excluded"] == flagged_votes > 0
    assert votes["read"] == all_votes.count() - 2 - flagged_votes
    lines = [json.loads(line) for line in (root / "pairs" / "population.jsonl").read_text().splitlines()]
    assert sum(line["votes"]["total"] for line in lines) == votes["read"]

    kept = export(campaign, "population-jsonl", root / "with-flagged", include_flagged=True)
    assert kept.manifest["counts"]["votes"]["read"] == all_votes.count() - 2

    export(campaign, "votes-csv", root / "log")
    log = pd.read_csv(root / "log" / "votes.csv")
    assert len(log) == all_votes.count()
    assert log["is_gold"].sum() == 2
    assert log["participant_flagged"].sum() == all_votes.filter(comparison__participant=flagged).count()


@pytest.mark.parametrize("fmt", ["population-jsonl", "popalign-csv", "votes-csv"])
def test_every_manifest_s_vote_counts_add_up_to_the_votes_it_was_built_from(voted_campaign, root, fmt):
    campaign = voted_campaign()
    voted = list(Comparison.objects.filter(campaign=campaign, status="voted").order_by("pk"))
    Comparison.objects.filter(pk=voted[0].pk).update(is_gold=True)
    Comparison.objects.filter(pk=voted[1].pk).update(repeat_of=voted[2])
    set_flags(campaign=campaign, flags={voted[-1].participant_id: "failed gold"})
    all_votes = Vote.objects.filter(comparison__campaign=campaign).count()

    one = {"criterion": "diversity"} if fmt == "popalign-csv" else {}
    if one:
        all_votes = Vote.objects.filter(comparison__campaign=campaign, criterion__key="diversity").count()
    votes = export(campaign, fmt, root / fmt, **one).manifest["counts"]["votes"]
    parts = {k: v for k, v in votes.items() if k not in ("on_exported_criteria", "read")}
    assert votes["on_exported_criteria"] == all_votes
    assert sum(parts.values()) == all_votes, votes
    gold = votes.get("gold_excluded", votes.get("gold_included"))
    repeats = votes.get("repeats_excluded", votes.get("repeats_included"))
    per_comparison = 1 if one else 2  # one vote per criterion exported
    assert (gold, repeats) == (per_comparison, per_comparison)
    if "read" in votes:
        assert votes["read"] == votes["counted"]


def test_min_votes_and_min_margin_filter_pairs_and_the_counts_add_up(voted_campaign, root):
    campaign = voted_campaign(participants=16)
    truth = {pair: counts for (key, pair), counts in db_pairs(campaign).items() if key == "diversity"}
    margins = [abs(c[a] - c[b]) for pair, c in truth.items() for a, b in [sorted(pair)]]
    result = export(campaign, "pickapic-parquet", root / "margin", criterion="diversity", min_margin=2)
    pairs = result.manifest["counts"]["pairs"]
    assert pairs["judged"] == len(truth)
    assert pairs["dropped"]["tie"] == margins.count(0)
    assert pairs["dropped"]["min_margin"] == margins.count(1) > 0
    assert pairs["kept"] == sum(m >= 2 for m in margins) > 0
    assert result.manifest["counts"]["rows"]["train"] == pairs["kept"] * campaign.population_size

    # Every pair here has the campaign's 3 votes, so asking for 4 leaves nothing, and says so.
    thin = export(campaign, "pickapic-parquet", root / "votes", criterion="diversity", min_votes=4)
    assert thin.manifest["counts"]["pairs"]["dropped"]["min_votes"] == len(truth)
    assert any("no judged pair passed the filters" in w for w in thin.warnings)


def test_results_do_not_depend_on_how_pairs_are_batched(voted_campaign, root, monkeypatch):
    campaign = voted_campaign(prompts=3)
    export(campaign, "population-jsonl", root / "big", copy_images=False)
    monkeypatch.setattr(pair_reading, "PAIR_BATCH", 1)
    monkeypatch.setattr("exports.selectors.CHUNK_SIZE", 3)
    export(campaign, "population-jsonl", root / "small", copy_images=False)
    assert (root / "big" / "population.jsonl").read_text() == (root / "small" / "population.jsonl").read_text()


def test_no_export_holds_a_raw_crowd_id_session_key_or_participant_id(voted_campaign, root):
    campaign = voted_campaign(participants=3)
    # Given a Prolific worker who voted, entering with raw ids
    session = SessionStore()
    raw = {"PROLIFIC_PID": "rawprolificpid0123456789", "STUDY_ID": "rawstudy987654", "SESSION_ID": "rawsession55555"}
    worker = admit_to_vote(campaign=campaign, session=session, user=AnonymousUser(), entry_params=raw)
    session.save()
    comparison = issue_comparison(campaign=campaign, participant=worker)
    cast_votes(
        token=comparison.token,
        participant=worker,
        votes=[VoteInput("diversity", "left"), VoteInput("quality", "right")],
        dwell_ms=1200,
    )
    secrets = [*raw.values(), worker.external_id_hash, session.session_key, comparison.token]
    # When every format is exported
    for fmt in FORMATS:
        export(campaign, fmt, root / fmt, criterion=CRITERION[fmt])
    # Then none of those strings is in any file (Parquet read back, as its text may be compressed)
    for path in (p for p in root.rglob("*") if p.is_file() and "images" not in p.parts):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            images = [c for c in table.column_names if c.startswith(("jpg", "left_image", "right_image"))]
            text = str(table.drop(images).to_pylist())
        else:
            text = path.read_text(encoding="utf-8")
        for secret in secrets:
            assert secret not in text, (path, secret)
    log = pd.read_csv(root / "votes-csv" / "votes.csv")
    assert "participant_id" not in log.columns
    assert (log["participant_kind"] == "prolific").sum() == 2
