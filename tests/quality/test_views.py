"""The staff quality page (quality/views.py): signals per participant, agreement, CSV, the flag rule, access."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from annotation.models import CampaignParticipation, Participant
from arena.issuing import issue_comparison
from arena.voting import VoteInput, cast_votes

pytestmark = pytest.mark.django_db


def test_quality_report_flags_a_fast_clicker_and_applying_it_marks_the_participant(
    admin_client, arena_campaign, client
):
    campaign = arena_campaign(per_queue=12, votes_per_pair=12)
    careful, hasty = Participant.objects.create(), Participant.objects.create()
    for _ in range(10):
        for voter, dwell in ((careful, 9000), (hasty, 300)):
            comparison = issue_comparison(campaign=campaign, participant=voter)
            votes = [VoteInput("diversity", "left"), VoteInput("quality", "right")]
            # Cast when that long has passed: the server never records more dwell than time since issue.
            at = comparison.issued_at + timedelta(milliseconds=dwell + 50)
            cast_votes(token=comparison.token, participant=voter, votes=votes, dwell_ms=dwell, now=at)
    assert client.get("/c/study/quality/").status_code == 302  # staff only
    rows = list(csv.DictReader(io.StringIO(admin_client.get("/c/study/quality/?format=csv").content.decode())))
    flagged = {int(row["participant"]): row["flagged"] for row in rows}
    assert flagged == {careful.pk: "False", hasty.pk: "True"}
    admin_client.post("/c/study/quality/")
    flags = dict(CampaignParticipation.objects.filter(campaign=campaign).values_list("participant_id", "is_flagged"))
    assert flags == {hasty.pk: True}
    assert "faster than 1500 ms" in CampaignParticipation.objects.get(participant=hasty).flag_reason
    # The flagged participant's votes no longer count on the leaderboard.
    board = admin_client.get("/api/v1/campaigns/study/leaderboard?criterion=diversity").json()
    assert board["votes"] == 10
    page = admin_client.get("/c/study/quality/").content.decode()
    assert "Krippendorff" in page


def test_a_researcher_includes_flagged_votes_and_opens_the_quality_report_only_on_their_own_campaign(
    arena_campaign, client
):
    from django.contrib.auth import get_user_model

    from annotation.services import grant_researcher_role

    # Given a campaign owned by one researcher and another researcher (both staff accounts)
    campaign = arena_campaign(per_queue=6, votes_per_pair=6)
    owner, other = (get_user_model().objects.create_user(name) for name in ("owner", "other"))
    for user in (owner, other):
        grant_researcher_role(user=user)
    campaign.owner = owner
    campaign.save()
    url = "/api/v1/campaigns/study/leaderboard?criterion=diversity&include_flagged=true"
    # When the other researcher asks, the flagged votes stay out and the report is as missing as a campaign that is not
    client.force_login(other)
    refused = client.get(url)
    assert refused.status_code == 403
    assert "manage this campaign" in refused.json()["error"]["message"]
    assert client.get("/c/study/quality/").status_code == 404
    assert client.get("/c/nope/quality/").status_code == 404
    # Then the owner gets both
    client.force_login(owner)
    assert client.get(url).json()["includes_flagged"] is True
    assert client.get("/c/study/quality/").status_code == 200
