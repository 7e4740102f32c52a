"""A campaign with consent text issues no comparison before its participant accepts the current version.

Before consent existed, `comparisons/next` issued a comparison to anyone admitted: an ethics board's
requirement (consent before any data) was left to the researcher's instructions text.
"""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.consent import require_consent
from annotation.models import ConsentDecision, Participant
from arena.models import Comparison

pytestmark = pytest.mark.django_db

CONSENT = "## Consent\n\nYou agree that your votes are used for research. You may withdraw at any time."


def next_comparison(client: Client, slug: str = "study"):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/campaigns/{slug}/comparisons/next", {}, content_type="application/json")


def consent(client: Client, *, accept: bool = True, version: object = 1, slug: str = "study"):  # type: ignore[no-untyped-def]
    body = {"accept": accept, "version": version}
    return client.post(f"/api/v1/campaigns/{slug}/consent", body, content_type="application/json")


def test_comparisons_next_answers_403_consent_required_until_the_participant_accepts(arena_campaign):
    # Given a campaign with consent text
    campaign = arena_campaign()
    campaign.consent_text = CONSENT
    campaign.save()
    client = Client()
    # When a new session asks for a comparison, it is refused and nothing is issued
    refused = next_comparison(client)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "consent_required"
    assert Comparison.objects.count() == 0
    # Then the consent as shown names its version; accepting it lets the participant vote
    shown = client.get("/api/v1/campaigns/study/consent").json()
    assert shown["required"] is True
    assert shown["version"] == 1
    assert shown["accepted"] is False
    assert "<h2>Consent</h2>" in shown["html"]
    accepted = consent(client, version=shown["version"])
    assert accepted.status_code == 200
    assert accepted.json()["accepted"] is True
    assert next_comparison(client).status_code == 200
    assert list(ConsentDecision.objects.values_list("version", "accepted")) == [(1, True)]


def test_a_new_consent_text_asks_again_and_an_old_version_is_refused(arena_campaign):
    campaign = arena_campaign()
    campaign.consent_text = CONSENT
    campaign.save()
    client = Client()
    assert consent(client).status_code == 200
    assert next_comparison(client).status_code == 200
    # The researcher changes the text: version 2, and the acceptance of version 1 no longer lets them vote
    campaign.consent_text = CONSENT + "\n\nNew: your answers are published."
    campaign.save()
    assert campaign.consent_version == 2
    assert next_comparison(client).json()["error"]["code"] == "consent_required"
    stale = consent(client, version=1)
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "consent_version"
    assert consent(client, version=2).status_code == 200
    assert next_comparison(client).status_code == 200


@pytest.mark.parametrize("version", [0, -1, "1", None, True, 1.5])
def test_a_consent_with_a_bad_version_is_refused_and_records_nothing(arena_campaign, version):
    campaign = arena_campaign()
    campaign.consent_text = CONSENT
    campaign.save()
    answer = consent(Client(), version=version)
    assert answer.status_code == 400
    assert "version" in answer.json()["error"]["message"]
    assert ConsentDecision.objects.count() == 0


def test_declining_ends_participation(arena_campaign):
    campaign = arena_campaign()
    campaign.consent_text = CONSENT
    campaign.save()
    client = Client()
    declined = consent(client, accept=False)
    assert declined.status_code == 200
    assert declined.json()["exit_url"] == "/c/study/ended/"
    refused = next_comparison(client)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "consent_declined"
    # Accepting after declining is refused too: the participant's part has ended
    assert consent(client).json()["error"]["code"] == "consent_declined"
    assert Comparison.objects.count() == 0


def test_campaigns_without_consent_text_behave_as_before(arena_campaign):
    arena_campaign()
    client = Client()
    assert next_comparison(client).status_code == 200
    answer = consent(client)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "no_consent"


def test_the_consent_gate_costs_no_query_without_consent_text_and_one_with_it(
    arena_campaign, django_assert_num_queries
):
    campaign = arena_campaign()
    participant = Participant.objects.create()
    session = Client().session
    with django_assert_num_queries(0):
        require_consent(campaign=campaign, participant=participant, session=session)
    campaign.consent_text = CONSENT
    campaign.save()
    ConsentDecision.objects.create(
        campaign=campaign, participant=participant, version=1, accepted=True, decided_at=campaign.created_at
    )
    with django_assert_num_queries(1):
        require_consent(campaign=campaign, participant=participant, session=session)
    # The acceptance is kept in the session: the next comparisons ask nothing more
    with django_assert_num_queries(0):
        require_consent(campaign=campaign, participant=participant, session=session)
