"""Exports carry each side's measures, and the manifest says what produced them."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from metrics.config import MODEL_REFUSED
from tests.metrics.conftest import STUDY_COLOURS as COLOURS
from tests.metrics.conftest import vote

pytestmark = pytest.mark.django_db


def test_population_jsonl_carries_each_side_s_measures_and_the_manifest_their_source(study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    campaign, prompts, populations = study
    circle = prompts[0]
    vote(campaign, circle, populations[("narrow", circle.pk)], populations[("wide", circle.pk)], "right")
    out = tmp_path / "export"

    call_command(
        "export_preferences",
        "--campaign",
        "study",
        "--format",
        "population-jsonl",
        "--out",
        str(out),
        "--no-progress",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )

    (line,) = (out / "population.jsonl").read_text().splitlines()
    row = json.loads(line)
    assert row["left"]["generator"] == "narrow"
    assert row["left"]["metrics"]["attributes"]["colour"]["shares"]["red"] == 1.0
    assert row["right"]["metrics"]["attributes"]["colour"]["discrepancy"] == pytest.approx(0.0)
    assert row["right"]["metrics"]["vendi"] > row["left"]["metrics"]["vendi"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"] == [
        {
            "name": "colour",
            "backend": "shapes",
            "model": None,
            "classes": COLOURS,
            "target": dict.fromkeys(COLOURS, 0.25),
        }
    ]


def test_votes_csv_has_each_side_s_measures_as_columns(study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import csv

    campaign, prompts, populations = study
    circle = prompts[0]
    vote(campaign, circle, populations[("narrow", circle.pk)], populations[("wide", circle.pk)], "right")
    out = tmp_path / "votes"

    call_command(
        "export_preferences",
        "--campaign",
        "study",
        "--format",
        "votes-csv",
        "--out",
        str(out),
        "--no-progress",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )

    (row,) = csv.DictReader((out / "votes.csv").open())
    assert row["left_generator"] == "narrow"
    assert float(row["left_colour_discrepancy"]) == pytest.approx((0.75**2 + 3 * 0.25**2) ** 0.5, abs=1e-5)
    assert float(row["right_colour_discrepancy"]) == pytest.approx(0.0)
    assert float(row["right_vendi"]) > float(row["left_vendi"])
    assert row["left_clip_score"] == "", "no CLIP configured: blank"


def test_genai_bench_parquet_carries_each_side_s_measures_beside_its_own_columns(study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    campaign, prompts, populations = study
    circle = prompts[0]
    vote(campaign, circle, populations[("narrow", circle.pk)], populations[("wide", circle.pk)], "right")
    out = tmp_path / "genai"
    call_command(
        "export_preferences",
        *("--campaign", "study", "--format", "genai-bench-parquet", "--out", str(out), "--no-progress"),
        *("--criterion", campaign.criteria.first().key),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    (row,) = pq.read_table(next(out.rglob("*.parquet"))).drop(["left_image", "right_image"]).to_pylist()
    sides = {row["left_model"]: json.loads(row["left_metrics"]), row["right_model"]: json.loads(row["right_metrics"])}
    assert sides["narrow"]["attributes"]["colour"]["shares"]["red"] == 1.0
    assert sides["wide"]["attributes"]["colour"]["discrepancy"] == pytest.approx(0.0)


@pytest.mark.parametrize("fmt", ["population-jsonl", "votes-csv"])
def test_an_export_of_a_campaign_whose_clip_folder_moved_warns_and_carries_no_measures(study, tmp_path, fmt) -> None:  # type: ignore[no-untyped-def]
    campaign, prompts, populations = study
    circle = prompts[0]
    vote(campaign, circle, populations[("narrow", circle.pk)], populations[("wide", circle.pk)], "right")
    folder = tmp_path / "clip"
    folder.mkdir()
    campaign.metrics_attributes = {
        **campaign.metrics_attributes,
        "gender": {"backend": "clip", "model": str(folder), "classes": ["a man", "a woman"]},
    }
    campaign.save()
    folder.rmdir()
    out = tmp_path / "export"

    call_command(
        "export_preferences",
        "--campaign",
        "study",
        "--format",
        fmt,
        "--out",
        str(out),
        "--no-progress",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"] == []
    (warning,) = [w for w in manifest["warnings"] if MODEL_REFUSED in w]
    assert f"metrics_attributes.gender.model: {MODEL_REFUSED}" in warning
    assert "carries no population measures" in warning
