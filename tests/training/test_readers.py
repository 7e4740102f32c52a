"""Exports read back as the trainers read them: each format the exporter writes, and each broken one refused."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
from django.core.management import call_command

from training.readers import ReaderError, read_export

pytestmark = pytest.mark.django_db


def export(campaign, fmt: str, out, *extra: str):  # type: ignore[no-untyped-def]
    call_command("export_preferences", "--campaign", campaign.slug, "--format", fmt, "--out", str(out), *extra)
    return json.loads((out / "manifest.json").read_text())


def test_popalign_csv_and_pickapic_parquet_give_the_same_winner_loser_pairs(voted_campaign, exports_root, tmp_path):
    # Seeded votes whose diversity answers leave several pairs tied (with this seed; about half of all seeds leave
    # none, and which one a seed gives moves with how issuing draws its pairs: the test below says so if it does).
    campaign = voted_campaign(seed=13)
    manifest = export(campaign, "popalign-csv", tmp_path / "popalign", "--criterion", "diversity")
    export(campaign, "pickapic-parquet", tmp_path / "pickapic", "--criterion", "diversity", "--ties", "soft")

    popalign = read_export(tmp_path / "popalign")
    pickapic = read_export(tmp_path / "pickapic")

    assert popalign.format == "popalign-csv"
    assert pickapic.format == "pickapic-parquet"
    assert len(popalign.pairs) == manifest["counts"]["rows"]["train"]
    assert popalign.population_size == campaign.population_size
    assert popalign.image_size == (32, 32)
    assert len(popalign.manifest_sha256 or "") == 64
    # The soft-tie Parquet holds the tied pairs as 0.5/0.5 rows; a trainer leaves them out, and so do we.
    assert pickapic.skipped.get("ties", 0) > 0
    as_set = {(p.caption, p.winner, p.loser) for p in popalign.pairs}
    assert as_set == {(p.caption, p.winner, p.loser) for p in pickapic.pairs}


def test_kto_csv_gives_each_image_its_label_and_leaves_out_images_on_both_sides(voted_campaign, exports_root, tmp_path):
    campaign = voted_campaign()
    export(campaign, "kto-csv", tmp_path / "kto", "--criterion", "diversity")
    with open(tmp_path / "kto" / "train_processed_v3.csv", newline="") as handle:
        labels = Counter(row["split"] for row in csv.DictReader(handle))

    data = read_export(tmp_path / "kto")

    assert data.format == "kto-csv"
    assert not data.is_paired
    assert sum(item.desirable for item in data.labelled) == labels["exclusive_win"]
    assert sum(not item.desirable for item in data.labelled) == labels["exclusive_lose"]
    assert data.skipped.get("images on both sides", 0) == labels["intersections"]


def test_an_export_of_another_format_is_refused_by_name(voted_campaign, exports_root, tmp_path):
    export(voted_campaign(), "votes-csv", tmp_path / "votes")
    with pytest.raises(ReaderError, match="is a votes-csv export; training reads popalign-csv"):
        read_export(tmp_path / "votes")


def test_a_bad_label_is_refused_with_its_line(tmp_path, popalign_export):
    folder = popalign_export()
    lines = (folder / "train.csv").read_text().splitlines()
    lines[2] = lines[2].replace(",0,c", ",0.5,c", 1)
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ReaderError, match="train.csv line 3: label must be 0"):
        read_export(folder)


def test_an_image_path_outside_the_export_is_refused(tmp_path, popalign_export):
    folder = popalign_export()
    text = (folder / "train.csv").read_text()
    first_image = text.splitlines()[1].split(",")[0]
    (folder / "train.csv").write_text(text.replace(first_image, "../../etc/passwd", 1))
    with pytest.raises(ReaderError, match="leaves the export folder"):
        read_export(folder)
