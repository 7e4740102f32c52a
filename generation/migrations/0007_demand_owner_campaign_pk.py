"""Demand owned by a campaign names it by primary key (`campaign:<pk>`), no longer by slug (`campaign:<slug>`).

A slug can pass to a new campaign; a primary key is never reused, so a new campaign given an old
slug no longer takes over, or wipes, the old one's generation queues. Owners that name no campaign
(a campaign deleted since) are left as they are. Self-contained: the models come from `apps`.
"""

from typing import Any

from django.db import migrations

PREFIX = "campaign:"
# Owners are moved through a name no campaign has, so that `campaign:7` (a campaign whose slug is "7")
# never collides with `campaign:7` (the campaign whose key is 7) half-way through.
STAGING = "campaign-migrating:"


def _move(apps: Any, to_key: bool) -> None:
    Campaign = apps.get_model("annotation", "Campaign")
    Demand = apps.get_model("generation", "Demand")
    owned = set(Demand.objects.filter(owner__startswith=PREFIX).values_list("owner", flat=True).distinct())
    renames = {}
    for pk, slug in Campaign.objects.values_list("pk", "slug"):
        old, new = (f"{PREFIX}{slug}", f"{PREFIX}{pk}") if to_key else (f"{PREFIX}{pk}", f"{PREFIX}{slug}")
        if old in owned:
            renames[old] = new
    for old, new in renames.items():
        Demand.objects.filter(owner=old).update(owner=STAGING + new[len(PREFIX) :])
    for new in renames.values():
        Demand.objects.filter(owner=STAGING + new[len(PREFIX) :]).update(owner=new)


def owners_to_keys(apps: Any, schema_editor: Any) -> None:
    _move(apps, to_key=True)


def owners_to_slugs(apps: Any, schema_editor: Any) -> None:
    _move(apps, to_key=False)


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0006_population_reserved"),
        ("annotation", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(owners_to_keys, owners_to_slugs),
    ]
