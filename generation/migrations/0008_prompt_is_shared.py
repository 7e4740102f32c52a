"""Prompts belong to the study (campaign owner) they were added for, unless staff share them."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0007_demand_owner_campaign_pk"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="prompt",
            name="prompt_unique_caption_category",
        ),
        migrations.AddField(
            model_name="prompt",
            name="is_shared",
            field=models.BooleanField(
                default=False,
                help_text="Every researcher may see and use this prompt, and so the image sets made for it.",
            ),
        ),
        migrations.AddField(
            model_name="prompt",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                help_text="Whose study the prompt is (the campaign owner it was added for); empty: staff's.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddConstraint(
            model_name="prompt",
            constraint=models.UniqueConstraint(
                condition=models.Q(("owner__isnull", False)),
                fields=("caption", "category", "owner"),
                name="prompt_unique_caption_category_owner",
            ),
        ),
        migrations.AddConstraint(
            model_name="prompt",
            constraint=models.UniqueConstraint(
                condition=models.Q(("owner__isnull", True)),
                fields=("caption", "category"),
                name="prompt_unique_caption_category",
            ),
        ),
    ]
