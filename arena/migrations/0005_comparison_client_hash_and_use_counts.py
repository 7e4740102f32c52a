"""Comparison.client_hash, and each set's uses recounted as the votes spent and the live leases reserved.

Before, issuing added a use to both sets of a preference comparison and nothing gave it back: an unvoted
comparison spent its sets for good. Now `uses` counts voted preference comparisons and `reserved` the ones
under a live lease; issued comparisons whose lease already ran out are marked expired. Self-contained: the
rule is copied here (arena.statements keeps it for the running code).
"""

from collections import Counter

from django.db import migrations, models
from django.utils import timezone


def recount(apps, schema_editor):  # type: ignore[no-untyped-def]
    Comparison = apps.get_model("arena", "Comparison")
    Population = apps.get_model("generation", "Population")
    now = timezone.now()
    Comparison.objects.filter(status="issued", lease_until__lte=now).update(status="expired")
    uses: Counter[int] = Counter()
    reserved: Counter[int] = Counter()
    preferences = Comparison.objects.filter(is_gold=False, repeat_of__isnull=True, status__in=["voted", "issued"])
    for left, right, status in preferences.values_list("left_population_id", "right_population_id", "status"):
        counter = uses if status == "voted" else reserved
        counter.update((left, right))
    Population.objects.exclude(uses=0, reserved=0).update(uses=0, reserved=0)
    for pk in sorted(set(uses) | set(reserved)):
        Population.objects.filter(pk=pk).update(uses=uses[pk], reserved=reserved[pk])


class Migration(migrations.Migration):
    dependencies = [
        ("arena", "0004_comparison_left_campaign_idx"),
        ("generation", "0006_population_reserved"),
    ]

    operations = [
        migrations.AddField(
            model_name="comparison",
            name="client_hash",
            field=models.CharField(blank=True, editable=False, max_length=32, null=True),
        ),
        migrations.RunPython(recount, migrations.RunPython.noop),
    ]
