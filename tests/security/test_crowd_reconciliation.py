"""Crowd URL parameters are believed; the platform's own record of the study is what tells who really took part.

Anyone can open a Prolific campaign's URL with an invented `PROLIFIC_PID` (and, for a study whose id
has leaked, its STUDY_ID): each invented id is a new participant whose votes count. Importing the
platform's submissions export marks the participants it does not know; with `count_only_reconciled`
on, the board and the exports count only those the platform approved or holds for review, and the
staff page says how many votes came from participants the platform does not know.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from annotation.models import Campaign, CampaignParticipation, Criterion
from annotation.services import hash_external_id
from tests.arena.conftest import ready_population
from tests.exports.helpers import export
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

STUDY = "65a0000000000000000000aa"
REAL = "5f1a2b3c4d5e6f7a8b9c0d1e"
INVENTED = ("invented-1", "invented-2")
HEADER = "Submission id,Participant id,Status,Started at,Completed at,Time taken,Completion code\r\n"
# The study's record on Prolific: the real participant approved, and someone who never reached PopArena.
RECORD = (
    HEADER
    + f"65a1f0c2d3e4f5a6b7c8d9e0,{REAL},APPROVED,2024-01-12T10:00:01Z,2024-01-12T10:09:40Z,579,C0DE42\r\n"
    + "65a1f0c2d3e4f5a6b7c8d9e1,5f1a2b3c4d5e6f7a8b9c0dff,RETURNED,2024-01-12T10:01:00Z,,,\r\n"
)


@pytest.fixture
def crowd_study(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.EXPORTS_ROOT = tmp_path / "exports"
    campaign = CampaignFactory(
        slug="paid",
        access=Campaign.Access.PROLIFIC,
        prolific_study_id=STUDY,
        participant_quota=2,
        completion_code="C0DE42",
        population_size=2,
        votes_per_pair=50,
    )
    Criterion.objects.create(campaign=campaign, key="quality", question="Which set looks better?")
    generators = [GeneratorFactory(settings={"width": 32, "height": 32}) for _ in range(2)]
    prompt = PromptFactory()
    campaign.generators.set(generators)
    campaign.prompts.set([prompt])
    for generator in generators:
        for _ in range(8):
            ready_population(generator, prompt, 2)
    # One real participant and two invented ids vote twice each, from three addresses.
    for n, pid in enumerate((REAL, *INVENTED)):
        client = Client(REMOTE_ADDR=f"10.0.0.{n + 1}")
        entry = client.get(f"/c/paid/?PROLIFIC_PID={pid}&STUDY_ID={STUDY}&SESSION_ID=session-{n}")
        assert entry.status_code == 200
        for _ in range(2):
            token = client.post("/api/v1/campaigns/paid/comparisons/next", {}, content_type="application/json")
            body = {"votes": [{"criterion": "quality", "choice": "left"}], "dwell_ms": 4000}
            voted = client.post(
                f"/api/v1/comparisons/{token.json()['token']}/votes", body, content_type="application/json"
            )
            assert voted.status_code == 200, voted.content
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    return campaign, staff


def board_votes() -> int:
    return int(Client().get("/api/v1/campaigns/paid/leaderboard?criterion=quality").json()["votes"])


def upload(staff: Client, text: str) -> str:
    record = SimpleUploadedFile("prolific_export.csv", text.encode(), content_type="text/csv")
    response = staff.post("/staff/campaigns/paid/reconcile/", {"record": record}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_invented_prolific_ids_stop_counting_once_the_platform_s_record_is_imported(crowd_study, tmp_path):
    campaign, staff = crowd_study
    assert board_votes() == 6, "URL parameters alone: every invented id counts"

    page = upload(staff, RECORD)
    assert "1 worker(s) in the record never took part here" in page
    statuses = dict(
        CampaignParticipation.objects.filter(campaign=campaign).values_list(
            "participant__external_id_hash", "platform_status"
        )
    )
    assert sorted(statuses.values()) == ["approved", "unknown", "unknown"]
    assert statuses[hash_external_id("prolific", REAL)] == "approved"
    assert board_votes() == 6, "importing alone changes no count until the campaign asks for it"

    staff.post("/staff/campaigns/paid/count-only-reconciled/", {"count_only_reconciled": "true"})
    assert board_votes() == 2
    counts = export(campaign, "population-jsonl", tmp_path / "pairs").manifest["counts"]["votes"]
    assert (counts["counted"], counts["read"], counts["unreconciled_excluded"]) == (2, 2, 4)
    page = staff.get("/staff/campaigns/paid/").content.decode()
    assert '<strong id="unknown-votes">4</strong> votes from' in page
    assert '<span id="unknown-participants">2</span> participants the platform does not know' in page
    assert REAL not in page, "raw worker ids are never stored or shown"
    assert "invented-1" not in page

    # Switching back counts everyone in good standing again.
    staff.post("/staff/campaigns/paid/count-only-reconciled/", {"count_only_reconciled": "false"})
    assert board_votes() == 6


def test_a_bad_record_names_its_row_and_column_and_changes_nothing(crowd_study):
    campaign, staff = crowd_study
    upload(staff, RECORD)
    before = list(CampaignParticipation.objects.order_by("pk").values_list("platform_status", "reconciled_at"))
    bad = HEADER + f"s1,{REAL},REJECTED,,,,\r\ns2,invented-1,APPROVED,,,,\r\ns3,invented-2,MAYBE,,,,\r\n"
    page = upload(staff, bad)
    assert "row 4, column &#x27;Status&#x27;: unknown status &#x27;MAYBE&#x27;" in page
    after = list(CampaignParticipation.objects.order_by("pk").values_list("platform_status", "reconciled_at"))
    assert after == before, "all or none: the two good rows were not applied either"


def test_the_command_imports_the_same_record_and_refuses_another_platform_s(crowd_study, tmp_path, capsys):
    campaign, _ = crowd_study
    path = Path(tmp_path / "record.csv")
    path.write_text(RECORD)
    call_command("reconcile_crowd", "--campaign", "paid", str(path))
    assert "participants of this campaign: 1 approved, 2 unknown to the platform" in capsys.readouterr().out
    mturk = tmp_path / "batch.csv"
    mturk.write_text('"HITId","AssignmentId","WorkerId","AssignmentStatus"\n"H1","A1","W1","Approved"\n')
    with pytest.raises(
        CommandError, match="this is mturk's record, but campaign 'paid' admits participants from prolific"
    ):
        call_command("reconcile_crowd", "--campaign", "paid", str(mturk))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("reconcile_crowd", "--campaign", "paid", str(tmp_path / "missing.csv"))
