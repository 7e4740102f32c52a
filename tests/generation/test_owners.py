"""Demand owners: a campaign owns its queues by primary key; workers still name it `campaign:SLUG`."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from annotation.demand import demand_owner
from annotation.models import Campaign, Criterion
from annotation.services import set_campaign_status
from generation.models import Demand
from generation.selectors import get_queue_states
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("generation.migrations.0007_demand_owner_campaign_pk")


def open_campaign(slug: str) -> Campaign:
    campaign = CampaignFactory(slug=slug, status=Campaign.Status.DRAFT)
    campaign.generators.set([GeneratorFactory(settings={"width": 32, "height": 32}) for _ in range(2)])
    campaign.prompts.set([PromptFactory()])
    Criterion.objects.create(campaign=campaign, key="quality", question="Which set looks better?")
    return set_campaign_status(campaign=campaign, status=Campaign.Status.OPEN)


def test_a_worker_names_a_campaigns_queues_by_its_slug_and_gets_only_those():
    study = open_campaign("study")
    other = open_campaign("other")
    assert set(Demand.objects.values_list("owner", flat=True)) == {demand_owner(study), demand_owner(other)}
    assert demand_owner(study) == f"campaign:{study.pk}"
    served = get_queue_states(owner="campaign:study")
    assert {s.generator_id for s in served} == set(study.generators.values_list("pk", flat=True))
    assert get_queue_states(owner="campaign:nothing") == []


def test_the_migration_moves_slug_owners_to_keys_even_where_a_slug_is_another_campaigns_key():
    # Given campaign A whose slug is B's key, and B whose slug is A's key, each owning demand by slug
    generator, prompt = GeneratorFactory(), PromptFactory()
    a = CampaignFactory(slug="tmp-a")
    b = CampaignFactory(slug="tmp-b")
    Campaign.objects.filter(pk=a.pk).update(slug=str(b.pk))
    Campaign.objects.filter(pk=b.pk).update(slug=str(a.pk))
    for owner in (f"campaign:{b.pk}", f"campaign:{a.pk}", "campaign:deleted-long-ago"):
        Demand.objects.create(owner=owner, generator=generator, prompt=prompt, size=4)
    rows = {d.pk: d.owner for d in Demand.objects.all()}
    a_row, b_row, orphan = sorted(rows)
    # When the migration runs
    migration.owners_to_keys(apps, None)
    # Then each campaign's demand is owned by its own key, and an orphan is left alone
    assert Demand.objects.get(pk=a_row).owner == f"campaign:{a.pk}"
    assert Demand.objects.get(pk=b_row).owner == f"campaign:{b.pk}"
    assert Demand.objects.get(pk=orphan).owner == "campaign:deleted-long-ago"
    # And it can be undone
    migration.owners_to_slugs(apps, None)
    assert {d.pk: d.owner for d in Demand.objects.all()} == rows
