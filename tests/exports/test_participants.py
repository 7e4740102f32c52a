"""Exports name the consent each vote was given under, hold answers only as consent allows, suppress small
groups, and leave withdrawn participants out of every file (exports/participants.py, writers/answers_csv.py)."""

from __future__ import annotations

import csv

import pytest
from django.test import Client

from annotation.models import Participant
from annotation.questionnaire import QuestionSpec, save_question, submit_questionnaire
from arena.participation import withdraw_participant
from exports.writers.answers_csv import suppress_small_groups
from tests.exports.helpers import export

pytestmark = pytest.mark.django_db


def test_groups_under_k_are_blank_and_left_out_of_the_composition():
    answers = {
        "p1": {"gender": "woman", "langs": ["en", "fr"]},
        "p2": {"gender": "woman", "langs": ["en"]},
        "p3": {"gender": "man", "langs": ["en"]},
    }
    table = suppress_small_groups(answers, ["gender", "langs"], k=2)
    assert table.rows == [("p1", ["woman", "en"]), ("p2", ["woman", "en"]), ("p3", ["", "en"])]
    assert table.composition == {"gender": {"woman": 2}, "langs": {"en": 3}}
    assert table.suppressed == {"gender": 1, "langs": 1}


def read(path) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_an_export_holds_consented_answers_suppressed_and_no_trace_of_withdrawn_participants(
    arena_campaign, settings, tmp_path
):
    # Given a campaign with consent (version 1) where 6 people vote once and answer; 5 say "woman", 1 "man"
    campaign = arena_campaign(per_queue=8, votes_per_pair=50)
    campaign.consent_text = "You agree that your votes and answers are published."
    campaign.save()
    save_question(
        campaign=campaign,
        spec=QuestionSpec(key="gender", text="Gender?", kind="single", choices=("woman", "man"), sensitive=True),
    )
    clients = []
    for gender in ["woman"] * 5 + ["man"]:
        client = Client()
        client.post("/api/v1/campaigns/study/consent", {"accept": True, "version": 1}, content_type="application/json")
        client.post(
            "/api/v1/campaigns/study/questionnaire", {"answers": {"gender": gender}}, content_type="application/json"
        )
        shown = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json").json()
        votes = [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "left"}]
        answer = client.post(
            f"/api/v1/comparisons/{shown['token']}/votes",
            {"votes": votes, "dwell_ms": 2000},
            content_type="application/json",
        )
        assert answer.status_code == 200
        clients.append(client)
    # And one woman withdraws
    leaver = Participant.objects.order_by("pk")[0]
    withdraw_participant(campaign=campaign, participant=leaver, by="staff")
    # When the raw vote log is exported
    result = export(campaign, "votes-csv", tmp_path / "out")
    log = read(result.path / "votes.csv")
    # Then it holds the 5 remaining participants' votes, each naming consent version 1
    assert len(log) == 10
    assert {row["consent_version"] for row in log} == {"1"}
    assert result.manifest["counts"]["votes"]["withdrawn_excluded"] == 2
    assert result.manifest["participants"]["withdrawn"] == 1
    # And the answers table has a row per remaining participant, all blank: both groups (4 women, 1 man) are under k=5
    answers = read(result.path / "participants.csv")
    assert len(answers) == 5
    assert {row["participant"] for row in answers} == {row["participant"] for row in log}
    assert [row["gender"] for row in answers] == [""] * 5
    assert result.manifest["participants"]["composition"] == {"gender": {}}
    # With k = 4 the women's group shows, the man's does not
    campaign.min_group_size = 4
    campaign.save()
    result = export(campaign, "votes-csv", tmp_path / "out2")
    assert sorted(row["gender"] for row in read(result.path / "participants.csv")) == [
        "",
        "woman",
        "woman",
        "woman",
        "woman",
    ]
    card = (result.path / "README.md").read_text()
    assert "## Participants" in card
    assert "- `gender`: woman: 4" in card
    assert "1 participant(s) withdrew" in card


def test_a_campaign_without_consent_exports_no_answers(arena_campaign, tmp_path):
    campaign = arena_campaign()
    save_question(campaign=campaign, spec=QuestionSpec(key="age", text="Age?", kind="number"))
    for age in range(6):
        submit_questionnaire(campaign=campaign, participant=Participant.objects.create(), answers={"age": 30 + age % 1})
    result = export(campaign, "votes-csv", tmp_path / "out")
    assert not (result.path / "participants.csv").exists()
    assert result.manifest["participants"]["answers_left_out"] == "the campaign asked no consent to share answers"
