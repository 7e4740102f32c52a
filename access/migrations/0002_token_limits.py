"""Worker tokens can be limited to generators or campaigns (ApiToken.worker_limits)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="worker_limits",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text=(
                    'Worker tokens only: claim only the work of these, e.g. {"generators": [3], "campaigns": [7]} '
                    "(ids); empty: any generator's work."
                ),
            ),
        ),
    ]
