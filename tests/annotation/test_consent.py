"""Consent texts are versioned on every save that changes them; decisions are a history; the text renders safely."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from annotation.consent import (
    ConsentDeclined,
    ConsentRequired,
    consent_version_at,
    get_acceptances,
    record_consent,
    render_consent,
    require_consent,
)
from annotation.models import Campaign, ConsentVersion, Participant
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def test_every_change_of_the_text_makes_a_new_version_and_keeps_the_old_ones():
    campaign = CampaignFactory(consent_text="First text.")
    assert campaign.consent_version == 1
    campaign.title = "Renamed"
    campaign.save()  # the text is unchanged: no new version
    campaign.consent_text = "Second text."
    campaign.save(update_fields=["consent_text"])
    stale = Campaign.objects.get(pk=campaign.pk)
    stale.consent_version = 0  # an instance read before the change saves the same text: still version 2
    stale.save()
    assert Campaign.objects.get(pk=campaign.pk).consent_version == 2
    assert list(ConsentVersion.objects.values_list("version", "text")) == [(1, "First text."), (2, "Second text.")]
    assert CampaignFactory().consent_version == 0


def test_decisions_are_kept_in_order_and_name_the_version_each_vote_was_given_under():
    campaign = CampaignFactory(consent_text="v1")
    person = Participant.objects.create()
    first = datetime(2025, 1, 1, tzinfo=UTC)
    record_consent(campaign=campaign, participant=person, accept=True, version=1, now=first)
    campaign.consent_text = "v2"
    campaign.save()
    with pytest.raises(ConsentRequired):
        require_consent(campaign=campaign, participant=person, session={})  # type: ignore[arg-type]
    second = datetime(2025, 2, 1, tzinfo=UTC)
    record_consent(campaign=campaign, participant=person, accept=True, version=2, now=second)
    history = get_acceptances(campaign=campaign)[person.pk]
    assert consent_version_at(history, datetime(2024, 12, 31, tzinfo=UTC)) is None
    assert consent_version_at(history, datetime(2025, 1, 15, tzinfo=UTC)) == 1
    assert consent_version_at(history, second) == 2
    record_consent(campaign=campaign, participant=person, accept=False, version=2)
    with pytest.raises(ConsentDeclined):
        require_consent(campaign=campaign, participant=person, session={})  # type: ignore[arg-type]


def test_the_text_is_markdown_and_html_written_in_it_is_shown_as_text():
    html = render_consent("**Read** this. <script>alert(1)</script> [link](javascript:alert(1))")
    assert "<strong>Read</strong>" in html
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript' not in html
