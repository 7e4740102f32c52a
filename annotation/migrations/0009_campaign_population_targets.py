"""The target population a campaign's weighted board is raked to (Campaign.population_targets)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0008_consent_questionnaire"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="population_targets",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text=(
                    'Target population for the weighted board: {"margins": [{"questions": ["gender"], "shares": '
                    '{"woman": 0.5, "man": 0.5}}], "cap": 5} (cap: the largest weight, times the mean; default 5).'
                ),
            ),
        ),
    ]
