"""A flag is a fact about a participant's work in one campaign: another study's board, export and code are its own.

The issue's scenario: one anonymous participant votes 4 times, carefully, in Bob's campaign and 11
fast times in Alice's; Alice's quality review flags them. Before, the flag was global: Bob's export
marked the 4 votes flagged, Bob's completion page handed out his review code, the next recount of
Bob's board (his own quality review) dropped them, and their later votes in Bob's never counted.
Flags edited in the participant admin recounted nothing.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Campaign, Criterion, Participant
from annotation.services import PARTICIPANT_SESSION_KEY, grant_researcher_role
from arena.issuing import issue_comparison
from arena.voting import VoteInput, cast_votes
from tests.arena.conftest import ready_population
from tests.exports.helpers import export
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


def researcher(name: str) -> User:
    user = get_user_model().objects.create_user(name, password="pw")
    grant_researcher_role(user=user)
    return user


def study(slug: str, owner: User, **fields: object) -> Campaign:
    """An open public campaign of two generators, one prompt and 12 ready sets of each: 12 comparisons a person."""
    campaign = CampaignFactory(slug=slug, title=slug, owner=owner, population_size=2, votes_per_pair=50, **fields)
    Criterion.objects.create(campaign=campaign, key="quality", question="Which set looks better?")
    generators = [GeneratorFactory(name=f"{slug}-gen-{i}", settings={"width": 32, "height": 32}) for i in range(2)]
    prompt = PromptFactory(caption=f"a circle for {slug}")
    campaign.generators.set(generators)
    campaign.prompts.set([prompt])
    for generator in generators:
        for _ in range(12):
            ready_population(generator, prompt, 2)
    return campaign


def vote(campaign: Campaign, participant: Participant, times: int, dwell_ms: int) -> None:
    for _ in range(times):
        comparison = issue_comparison(campaign=campaign, participant=participant)
        at = comparison.issued_at + timedelta(milliseconds=dwell_ms + 50)
        cast_votes(
            token=comparison.token,
            participant=participant,
            votes=[VoteInput("quality", "left")],
            dwell_ms=dwell_ms,
            now=at,
        )


def board_votes(slug: str) -> int:
    response = Client().get(f"/api/v1/campaigns/{slug}/leaderboard?criterion=quality")
    assert response.status_code == 200
    return int(response.json()["votes"])


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def log(campaign: Campaign, folder: Path) -> pd.DataFrame:
    export(campaign, "votes-csv", folder)
    return pd.read_csv(folder / "votes.csv")


@pytest.fixture
def scenario(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.EXPORTS_ROOT = tmp_path / "exports"
    alice, bob = researcher("alice"), researcher("bob")
    bobs = study("bobs", bob, participant_quota=5, completion_code="BOB-PAID", completion_code_flagged="BOB-REVIEW")
    alices = study("alices", alice)
    shared, honest_bob, honest_alice = (Participant.objects.create() for _ in range(3))
    vote(bobs, shared, 4, dwell_ms=4000)
    vote(bobs, honest_bob, 2, dwell_ms=4000)
    vote(alices, honest_alice, 10, dwell_ms=9000)
    vote(alices, shared, 11, dwell_ms=300)
    assert (board_votes("bobs"), board_votes("alices")) == (6, 21)
    # Alice's quality review flags the fast clicker in her study.
    assert signed_in(alice).post("/c/alices/quality/").status_code == 302
    return {"alice": alice, "bob": bob, "bobs": bobs, "alices": alices, "shared": shared, "honest_bob": honest_bob}


def test_alice_s_review_drops_the_participant_from_her_board_and_export_only(scenario, tmp_path):
    alices, bobs = scenario["alices"], scenario["bobs"]
    assert board_votes("alices") == 10
    counts = export(alices, "population-jsonl", tmp_path / "a-pairs").manifest["counts"]["votes"]
    assert (counts["counted"], counts["flagged_participants_excluded"]) == (10, 11)
    alice_log = log(alices, tmp_path / "a-log")
    assert (len(alice_log), alice_log["participant_flagged"].sum()) == (21, 11)

    # Bob's study is untouched: his board, his export, his vote counts.
    assert board_votes("bobs") == 6
    counts = export(bobs, "population-jsonl", tmp_path / "b-pairs").manifest["counts"]["votes"]
    assert (counts["counted"], counts["flagged_participants_excluded"]) == (6, 0)
    bob_log = log(bobs, tmp_path / "b-log")
    assert not bob_log["participant_flagged"].any(), "Alice's flag must not mark votes in Bob's export"


def test_bob_s_completion_code_board_and_counts_follow_bob_s_flags(scenario):
    bob, shared = scenario["bob"], scenario["shared"]
    # The participant's next vote in Bob's campaign counts there, and they reach Bob's quota.
    vote(scenario["bobs"], shared, 1, dwell_ms=4000)
    assert board_votes("bobs") == 7
    participant = Client()
    session = participant.session
    session[PARTICIPANT_SESSION_KEY] = shared.pk
    session.save()
    page = participant.get("/c/bobs/done/").content.decode()
    assert "BOB-PAID" in page
    assert "BOB-REVIEW" not in page

    # Bob's own review flags nobody; its recount keeps the participant's careful votes.
    staff = signed_in(bob)
    assert staff.post("/c/bobs/quality/").status_code == 302
    assert board_votes("bobs") == 7
    progress = staff.get("/staff/campaigns/bobs/progress.json").json()
    assert progress["comparisons_voted"] == 7
    alice_progress = signed_in(scenario["alice"]).get("/staff/campaigns/alices/progress.json").json()
    assert alice_progress["comparisons_voted"] == 10, "Alice's progress counts what her board counts"


def test_a_flag_set_in_the_admin_recounts_that_campaign_s_board(scenario):
    bobs, honest_bob = scenario["bobs"], scenario["honest_bob"]
    admin = get_user_model().objects.create_superuser("root", password="pw")
    client = signed_in(admin)
    response = client.post(
        "/admin/annotation/campaignparticipation/add/",
        {"campaign": bobs.pk, "participant": honest_bob.pk, "is_flagged": "on", "flag_reason": "copied answers"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert board_votes("bobs") == 4, "the flagged participant's 2 votes leave Bob's board at once"
    assert board_votes("alices") == 10

    # The bulk action clears it again, and the board counts them again.
    rows = client.get("/admin/annotation/campaignparticipation/?is_flagged__exact=1").content.decode()
    assert "copied answers" in rows
    from annotation.models import CampaignParticipation

    row = CampaignParticipation.objects.get(campaign=bobs, participant=honest_bob)
    response = client.post(
        "/admin/annotation/campaignparticipation/",
        {"action": "clear_flags", "_selected_action": [row.pk]},
    )
    assert response.status_code == 302
    assert board_votes("bobs") == 6
