"""Every format read back by its consumer's own loading code, and checked against the database."""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.conf import settings
from PIL import Image as PILImage

from arena.models import Comparison, Vote
from arena.selectors import get_generator_ratings, get_leaderboard
from exports.rows import ParticipantHasher, split_for
from exports.services import exporter_version
from generation.models import Image, Population
from tests.exports.helpers import PICKAPIC_V2, db_pairs, db_winner, export, load_dataset, population_hashes, sha256

pytestmark = pytest.mark.django_db


def test_population_jsonl_round_trips_into_the_databases_counts_and_ratings(voted_campaign, tmp_path):
    campaign = voted_campaign()
    out = tmp_path / "jsonl"
    result = export(campaign, "population-jsonl", out)
    lines = [json.loads(line) for line in (out / "population.jsonl").read_text().splitlines()]

    truth = db_pairs(campaign)
    keys = {(r["criterion"], frozenset((r["left"]["population_id"], r["right"]["population_id"]))) for r in lines}
    assert keys == set(truth)
    ratings = {key: get_generator_ratings(campaign=campaign, criterion=key) for key in ("diversity", "quality")}
    for row in lines:
        left, right = row["left"], row["right"]
        counts = truth[(row["criterion"], frozenset((left["population_id"], right["population_id"])))]
        assert row["votes"] == {
            "left": counts[left["population_id"]],
            "right": counts[right["population_id"]],
            "tie": counts["tie"],
            "both_bad": counts["both_bad"],
            "total": sum(counts.values()),
        }
        winner = db_winner(counts, frozenset((left["population_id"], right["population_id"])))
        if winner is not None:
            assert row["winner"] == ("left" if winner == left["population_id"] else "right")
        else:
            assert row["winner"] in ("tie", "both_bad")
        for side in (left, right):
            population = Population.objects.select_related("generator").get(pk=side["population_id"])
            assert side["generator"] == population.generator.name
            assert side["rating"] == pytest.approx(ratings[row["criterion"]][population.generator.name], abs=1e-4)
            stored = list(Image.objects.filter(population=population).order_by("index"))
            assert [i["sha256"] for i in side["images"]] == [i.sha256 for i in stored]
            assert [(i["seed"], i["generation_prompt"]) for i in side["images"]] == [
                (i.seed, i.generation_prompt) for i in stored
            ]
            for image in side["images"]:
                assert sha256(out / image["path"]) == image["sha256"]
        assert row["caption"] == Population.objects.get(pk=left["population_id"]).prompt.caption
    assert sum(row["votes"]["total"] for row in lines) == Vote.objects.filter(comparison__campaign=campaign).count()
    # Each image is copied once, named by its content hash.
    hashes = {i["sha256"] for row in lines for side in (row["left"], row["right"]) for i in side["images"]}
    copied = [p for p in (out / "images").rglob("*") if p.is_file()]
    assert sorted(p.stem for p in copied) == sorted(hashes)
    assert result.manifest["counts"]["images_copied"] == len(hashes)


def test_popalign_csv_reads_the_way_popaligns_trainer_reads_it(voted_campaign, tmp_path, monkeypatch):
    import datasets

    campaign = voted_campaign()
    out = tmp_path / "popalign"
    export(campaign, "popalign-csv", out, criterion="diversity")

    # As PopAlign's main.py: pd.read_csv, assert a label column, a Dataset, images opened from the working directory.
    monkeypatch.chdir(out)
    frame = pd.read_csv("train.csv")
    assert "label" in frame.columns
    assert list(frame.columns[:4]) == ["jpg_0", "jpg_1", "caption", "label"]
    assert (frame["label"] == 0).all()
    dataset = datasets.Dataset.from_pandas(frame)
    sizes = dict(Image.objects.values_list("sha256", "width"))
    for example in dataset:
        for column in ("jpg_0", "jpg_1"):
            with PILImage.open(example[column]) as image:
                image.convert("RGB")
                assert image.size == (sizes[Path(example[column]).stem],) * 2
        assert Path(example["jpg_0"]).stem in population_hashes(example["population_w_id"])
        assert Path(example["jpg_1"]).stem in population_hashes(example["population_l_id"])

    truth = db_pairs(campaign)
    decided = {
        (db_winner(counts, pair), (set(pair) - {db_winner(counts, pair)}).pop())
        for (criterion, pair), counts in truth.items()
        if criterion == "diversity" and db_winner(counts, pair) is not None
    }
    pairs = Counter(zip(frame["population_w_id"], frame["population_l_id"], strict=True))
    # N rows per decided pair, the winner's images always in jpg_0, ties left out.
    assert set(pairs) == decided
    assert set(pairs.values()) == {campaign.population_size}


def test_pickapic_parquet_has_pickapic_v2s_columns_and_trains_diffusion_dpo(voted_campaign, tmp_path):
    campaign = voted_campaign()
    out = tmp_path / "pickapic"
    export(campaign, "pickapic-parquet", out, criterion="diversity")

    for path in (out / "data").glob("*.parquet"):
        schema = pq.read_schema(path)
        assert schema.names == list(PICKAPIC_V2)
        assert {f.name: str(f.type) for f in schema} == {**PICKAPIC_V2, "label_0": "double", "label_1": "double"}
    by_dir = load_dataset("parquet", data_dir=str(out / "data"), cache_dir=str(tmp_path / "hf"))
    by_card = load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    for loaded in (by_dir, by_card):
        assert list(loaded) == ["train"]
        assert {name: f.dtype for name, f in loaded["train"].features.items()} == PICKAPIC_V2
    train = by_card["train"]

    # As Diffusion-DPO: keep decided rows, open the bytes, put the preferred image first.
    truth = db_pairs(campaign)
    winners = {pair: db_winner(counts, pair) for (key, pair), counts in truth.items() if key == "diversity"}
    assert train.num_rows == campaign.population_size * sum(1 for w in winners.values() if w is not None)
    for example in train:
        assert example["label_0"] in (0, 1)
        assert example["label_0"] + example["label_1"] == 1
        images = [example["jpg_0"], example["jpg_1"]]
        if example["label_0"] == 0:
            images.reverse()
        preferred, other = (PILImage.open(io.BytesIO(b)) for b in images)
        assert preferred.size == other.size == (32, 32)
        assert example["best_image_uid"] == (example["image_0_uid"] if example["label_0"] else example["image_1_uid"])
        assert example["image_0_url"] == example["image_1_url"] == ""
        assert example["has_label"]
    per_caption = Counter(train["caption"])
    assert all(per_caption[e["caption"]] == e["num_example_per_prompt"] for e in train)
    assert train["__index_level_0__"] == list(range(train.num_rows))
    # user_id is the keyed hash of the pair's first voter, never their id.
    hasher = ParticipantHasher(settings.PARTICIPANT_HASH_KEY.encode())
    voters = set(Comparison.objects.filter(campaign=campaign).values_list("participant_id", flat=True))
    assert set(train["user_id"]) <= {hasher.int64(pk) for pk in voters}
    assert not set(train["user_id"]) & voters


def test_pickapic_soft_ties_and_a_validation_split_by_prompt(voted_campaign, tmp_path):
    campaign = voted_campaign(prompts=4, participants=16)
    captions = list(campaign.prompts.values_list("caption", flat=True))
    fraction = next(f for f in (0.5, 0.3, 0.7, 0.2, 0.8) if len({split_for(c, f) for c in captions}) == 2)
    out = tmp_path / "soft"
    result = export(campaign, "pickapic-parquet", out, criterion="quality", ties="soft", validation_fraction=fraction)
    loaded = load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert set(loaded) == {"train", "validation"}
    assert not set(loaded["train"]["caption"]) & set(loaded["validation"]["caption"])
    labels = Counter((e["label_0"], e["label_1"]) for split in loaded.values() for e in split)
    outcomes = result.manifest["counts"]["pairs"]["outcomes"]
    ties = outcomes["tie"] + outcomes["both_bad"]
    assert ties
    assert labels[(0.5, 0.5)] == ties * campaign.population_size
    assert set(labels) <= {(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)}
    tied = [e for split in loaded.values() for e in split if e["label_0"] == 0.5]
    assert {e["best_image_uid"] for e in tied} == {""}


def test_kto_csv_labels_each_image_by_its_populations_wins_and_losses(voted_campaign, tmp_path):
    campaign = voted_campaign()
    out = tmp_path / "kto"
    result = export(campaign, "kto-csv", out, criterion="diversity")
    # As Diffusion-KTO: <dir>/{split}_processed_v3.csv, file_name relative to the folder.
    frame = pd.read_csv(out / "train_processed_v3.csv")
    assert list(frame.columns) == ["file_name", "caption", "split"]
    for name in frame["file_name"]:
        with PILImage.open(out / name) as image:
            assert image.size == (32, 32)
    flags: dict[str, set[str]] = defaultdict(set)
    for (criterion, pair), counts in db_pairs(campaign).items():
        winner = db_winner(counts, pair)
        if criterion != "diversity" or winner is None:
            continue
        for pid in pair:
            for sha in population_hashes(pid):
                flags[sha].add("win" if pid == winner else "lose")
    expected = {
        sha: {"win": "exclusive_win", "lose": "exclusive_lose"}[next(iter(f))] if len(f) == 1 else "intersections"
        for sha, f in flags.items()
    }
    assert dict(zip(frame["file_name"].map(lambda n: Path(n).stem), frame["split"], strict=True)) == expected
    assert frame["file_name"].is_unique
    assert result.manifest["counts"]["kto_labels"] == dict(Counter(expected.values())) | {
        k: 0 for k in {"exclusive_win", "exclusive_lose", "intersections"} - set(expected.values())
    }


def test_genai_bench_parquet_loads_as_genai_bench_does(voted_campaign, tmp_path):
    campaign = voted_campaign()
    out = tmp_path / "genai"
    export(campaign, "genai-bench-parquet", out, criterion="diversity")
    test = load_dataset(str(out), "image_generation", split="test_v1", cache_dir=str(tmp_path / "hf"))
    assert test.column_names[:6] == ["prompt", "left_model", "left_image", "right_model", "right_image", "vote_type"]
    assert test.column_names[6:] == ["left_metrics", "right_metrics"]  # each side's measures, null if none
    assert type(test.features["left_image"]).__name__ == "Image"
    pairs = [key for key in db_pairs(campaign) if key[0] == "diversity"]
    assert test.num_rows == len(pairs)
    assert set(test["vote_type"]) <= {"leftvote", "rightvote", "tievote", "bothbad_vote"}
    example = test[0]
    assert example["left_image"].size == (3 * 32 + 2 * 4, 2 * 32 + 4)
    names = set(campaign.generators.values_list("name", flat=True))
    assert {example["left_model"], example["right_model"]} <= names


def test_votes_csv_is_the_raw_log_with_hashed_participants(voted_campaign, tmp_path):
    campaign = voted_campaign()
    out = tmp_path / "votes"
    export(campaign, "votes-csv", out)
    frame = pd.read_csv(out / "votes.csv", dtype={"participant": str})
    votes = {
        v.pk: v for v in Vote.objects.filter(comparison__campaign=campaign).select_related("comparison", "criterion")
    }
    assert sorted(frame["vote_id"]) == sorted(votes)
    participants: dict[int, set[str]] = defaultdict(set)
    for row in frame.itertuples():
        vote = votes[row.vote_id]
        assert (row.choice, row.criterion, row.dwell_ms) == (vote.choice, vote.criterion.key, vote.dwell_ms)
        assert (row.left_population_id, row.right_population_id) == (
            vote.comparison.left_population_id,
            vote.comparison.right_population_id,
        )
        participants[vote.comparison.participant_id].add(row.participant)
    # One stable hash per participant, and nothing else that names them.
    assert all(len(h) == 1 for h in participants.values())
    assert len({next(iter(h)) for h in participants.values()}) == len(participants)
    assert all(len(h) == 32 for hs in participants.values() for h in hs)
    assert "participant_id" not in frame.columns


def test_leaderboard_csv_matches_the_live_leaderboard(voted_campaign, tmp_path):
    campaign = voted_campaign()
    out = tmp_path / "board"
    export(campaign, "leaderboard-csv", out)
    frame = pd.read_csv(out / "leaderboard.csv")
    for key in ("diversity", "quality"):
        board = get_leaderboard(campaign=campaign, criterion=key)
        rows = frame[frame["criterion"] == key]
        assert list(rows["generator"]) == [r["generator"] for r in board["rows"]]
        assert list(rows["rating"]) == pytest.approx([r["rating"] for r in board["rows"]])


def test_the_manifest_lists_every_file_with_its_sha256(voted_campaign, tmp_path):
    campaign = voted_campaign()
    out = tmp_path / "manifest"
    export(campaign, "popalign-csv", out, criterion="diversity", min_votes=2)
    manifest = json.loads((out / "manifest.json").read_text())
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert {f["path"] for f in manifest["files"]} == on_disk
    for entry in manifest["files"]:
        assert sha256(out / entry["path"]) == entry["sha256"]
        assert (out / entry["path"]).stat().st_size == entry["bytes"]
    assert manifest["format"] == "popalign-csv"
    assert manifest["exporter"]["version"] == exporter_version() == "0.1.0"
    assert manifest["filters"]["min_votes"] == 2
    assert manifest["campaign"]["slug"] == campaign.slug
    assert "README.md" in on_disk
    card = (out / "README.md").read_text()
    assert "How it was collected" in card
    assert "Limits" in card
