"""Flags become per campaign: CampaignParticipation, and the crowd platform's verdict beside them.

The old global flag meant "leave this participant out everywhere": each flagged participant's flag
(and reason) is copied to every campaign they voted in, then the global fields go.
"""

import django.db.models.deletion
from django.db import migrations, models

PLATFORM_STATUSES = [
    ("", "not reconciled"),
    ("approved", "approved"),
    ("awaiting_review", "awaiting review"),
    ("active", "still working"),
    ("returned", "returned or timed out"),
    ("rejected", "rejected"),
    ("unknown", "unknown to the platform"),
]


def copy_flags_to_campaigns(apps, schema_editor):  # type: ignore[no-untyped-def]
    Participant = apps.get_model("annotation", "Participant")
    Participation = apps.get_model("annotation", "CampaignParticipation")
    Comparison = apps.get_model("arena", "Comparison")
    flagged = dict(Participant.objects.filter(is_flagged=True).values_list("pk", "flag_reason"))
    if not flagged:
        return
    voted_in = (
        Comparison.objects.filter(participant_id__in=list(flagged), status="voted")
        .values_list("campaign_id", "participant_id")
        .distinct()
    )
    Participation.objects.bulk_create(
        [
            Participation(
                campaign_id=campaign, participant_id=participant, is_flagged=True, flag_reason=flagged[participant]
            )
            for campaign, participant in voted_in
        ],
        batch_size=1000,
    )


def copy_flags_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    """Undo: a participant flagged in any campaign is flagged everywhere again (the old meaning)."""
    Participant = apps.get_model("annotation", "Participant")
    Participation = apps.get_model("annotation", "CampaignParticipation")
    for participant, reason in Participation.objects.filter(is_flagged=True).values_list(
        "participant_id", "flag_reason"
    ):
        Participant.objects.filter(pk=participant).update(is_flagged=True, flag_reason=reason)


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0006_participant_simulated"),
        # The data step reads which campaigns each flagged participant voted in.
        ("arena", "0004_comparison_left_campaign_idx"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="count_only_reconciled",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "Count only participants whose submission the crowd platform approved or holds for review, as "
                    "the last imported record of the study says (reconcile_crowd); everyone else's votes are kept "
                    "but not counted."
                ),
            ),
        ),
        migrations.CreateModel(
            name="CampaignParticipation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "is_flagged",
                    models.BooleanField(default=False, help_text="Failed quality control in this campaign."),
                ),
                ("flag_reason", models.TextField(blank=True)),
                (
                    "platform_status",
                    models.CharField(
                        blank=True,
                        choices=PLATFORM_STATUSES,
                        default="",
                        help_text="What the crowd platform's record of the study, last imported, says of this participant.",
                        max_length=16,
                    ),
                ),
                ("reconciled_at", models.DateTimeField(blank=True, null=True)),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="participations",
                        to="annotation.campaign",
                    ),
                ),
                (
                    "participant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="participations",
                        to="annotation.participant",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("campaign", "participant"), name="participation_once_per_campaign"),
                    models.CheckConstraint(
                        condition=models.Q(("platform_status__in", [value for value, _ in PLATFORM_STATUSES])),
                        name="participation_platform_status_valid",
                    ),
                ],
            },
        ),
        migrations.RunPython(copy_flags_to_campaigns, copy_flags_back),
        migrations.RemoveField(model_name="participant", name="flag_reason"),
        migrations.RemoveField(model_name="participant", name="is_flagged"),
    ]
