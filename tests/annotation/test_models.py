"""Database constraints on campaigns, criteria and participants."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from annotation.models import Campaign, Criterion, Participant
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def test_new_campaign_defaults_to_six_images_per_side_and_is_a_draft():
    campaign = Campaign.objects.create(slug="study", title="Study")
    assert campaign.population_size == 6
    assert campaign.status == Campaign.Status.DRAFT


@pytest.mark.parametrize(
    ("field", "value"), [("gold_rate", 0.9), ("population_size", 0), ("votes_per_pair", 0), ("status", "live")]
)
def test_campaign_values_out_of_range_are_refused_by_the_database(field, value):
    campaign = CampaignFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Campaign.objects.filter(pk=campaign.pk).update(**{field: value})


def test_criterion_keys_are_unique_within_a_campaign_only():
    first, second = CampaignFactory(), CampaignFactory()
    Criterion.objects.create(campaign=first, key="quality", question="Which is better?")
    Criterion.objects.create(campaign=second, key="quality", question="Which is better?")
    with pytest.raises(IntegrityError), transaction.atomic():
        Criterion.objects.create(campaign=first, key="quality", question="Again?")


def test_crowd_participant_needs_an_external_id_and_it_is_unique_per_provider():
    with pytest.raises(IntegrityError), transaction.atomic():
        Participant.objects.create(kind=Participant.Kind.PROLIFIC)
    Participant.objects.create(kind=Participant.Kind.PROLIFIC, external_id_hash="a" * 64)
    Participant.objects.create(kind=Participant.Kind.MTURK, external_id_hash="a" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        Participant.objects.create(kind=Participant.Kind.PROLIFIC, external_id_hash="a" * 64)


def test_a_campaign_whose_generators_make_different_sizes_cannot_be_opened():
    from annotation.services import set_campaign_status
    from core.errors import ApplicationError
    from tests.factories import GeneratorFactory, PromptFactory

    campaign = CampaignFactory(status=Campaign.Status.DRAFT)
    campaign.generators.add(GeneratorFactory(name="small", settings={"width": 32, "height": 32}))
    campaign.generators.add(GeneratorFactory(name="large", settings={"width": 64, "height": 64}))
    campaign.prompts.add(PromptFactory())
    Criterion.objects.create(campaign=campaign, key="quality", question="Better?")
    with pytest.raises(ApplicationError, match="mixes image sizes"):
        set_campaign_status(campaign=campaign, status=Campaign.Status.OPEN)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
