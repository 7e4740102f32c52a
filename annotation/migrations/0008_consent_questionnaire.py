"""Consent (versioned text per campaign, each participant's decisions), the questionnaire (versioned questions,
answers per participant and campaign), small-group suppression's k, and withdrawal on CampaignParticipation."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0007_campaign_participation"),
    ]

    operations = [
        migrations.CreateModel(
            name="Answer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("value", models.JSONField()),
                (
                    "source",
                    models.CharField(
                        choices=[("asked", "asked here"), ("prolific", "imported from Prolific")],
                        default="asked",
                        max_length=16,
                    ),
                ),
                ("answered_at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="ConsentDecision",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.PositiveIntegerField()),
                ("accepted", models.BooleanField()),
                ("decided_at", models.DateTimeField(db_index=True)),
            ],
            options={
                "ordering": ["campaign", "participant", "decided_at", "id"],
            },
        ),
        migrations.CreateModel(
            name="ConsentVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.PositiveIntegerField()),
                ("text", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["campaign", "version"],
            },
        ),
        migrations.CreateModel(
            name="Question",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "key",
                    models.SlugField(help_text="Stable identifier used in the API, groups and exports.", max_length=64),
                ),
                ("version", models.PositiveIntegerField(default=1)),
                ("is_current", models.BooleanField(default=True)),
                ("text", models.CharField(max_length=500)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("single", "single choice"),
                            ("multiple", "several choices"),
                            ("number", "number in a range"),
                            ("text", "short text"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "choices",
                    models.JSONField(blank=True, default=list, help_text="Options of a choice question, in order."),
                ),
                ("min_value", models.FloatField(blank=True, null=True)),
                ("max_value", models.FloatField(blank=True, null=True)),
                ("required", models.BooleanField(default=True)),
                ("sensitive", models.BooleanField(default=False, help_text='Always offers "prefer not to say".')),
                ("position", models.PositiveSmallIntegerField(default=0)),
                (
                    "prolific_column",
                    models.CharField(
                        blank=True,
                        help_text="Column of Prolific's demographic export that answers it (e.g. Sex).",
                        max_length=100,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["campaign", "position", "id"],
            },
        ),
        migrations.CreateModel(
            name="QuestionnaireResponse",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "asked_at",
                    models.DateTimeField(
                        blank=True, help_text="When they submitted the questionnaire here.", null=True
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="campaign",
            name="consent_text",
            field=models.TextField(
                blank=True,
                help_text="Consent participants accept before their first comparison (Markdown); empty: no consent step.",
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="consent_version",
            field=models.PositiveIntegerField(
                default=0, editable=False, help_text="The version of the consent text now shown (0: none ever set)."
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="min_group_size",
            field=models.PositiveSmallIntegerField(
                default=5,
                help_text="k: a group of participants (an answer to a question) smaller than this is never shown anywhere.",
                validators=[django.core.validators.MinValueValidator(2)],
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="questionnaire_timing",
            field=models.CharField(
                choices=[("before", "before the first comparison"), ("after", "after the last comparison")],
                default="before",
                help_text="Whether the questionnaire (if any) comes before the first comparison or after the last.",
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="campaignparticipation",
            name="withdrawal_note",
            field=models.CharField(blank=True, help_text="Staff: the request this acts on.", max_length=500),
        ),
        migrations.AddField(
            model_name="campaignparticipation",
            name="withdrawn_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="campaignparticipation",
            name="withdrawn_by",
            field=models.CharField(
                blank=True,
                choices=[("participant", "the participant"), ("staff", "staff, on the participant's request")],
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.CheckConstraint(
                condition=models.Q(("questionnaire_timing__in", ["before", "after"])),
                name="campaign_questionnaire_timing_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.CheckConstraint(
                condition=models.Q(("min_group_size__gte", 2)), name="campaign_min_group_size_at_least_two"
            ),
        ),
        migrations.AddConstraint(
            model_name="campaignparticipation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("withdrawn_at__isnull", True), ("withdrawn_by", "")),
                    models.Q(("withdrawn_at__isnull", False), ("withdrawn_by__in", ["participant", "staff"])),
                    _connector="OR",
                ),
                name="participation_withdrawal_recorded",
            ),
        ),
        migrations.AddField(
            model_name="consentdecision",
            name="campaign",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="consent_decisions", to="annotation.campaign"
            ),
        ),
        migrations.AddField(
            model_name="consentdecision",
            name="participant",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="consent_decisions",
                to="annotation.participant",
            ),
        ),
        migrations.AddField(
            model_name="consentversion",
            name="campaign",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="consent_versions", to="annotation.campaign"
            ),
        ),
        migrations.AddField(
            model_name="question",
            name="campaign",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="questions", to="annotation.campaign"
            ),
        ),
        migrations.AddField(
            model_name="answer",
            name="question",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="answers", to="annotation.question"
            ),
        ),
        migrations.AddField(
            model_name="questionnaireresponse",
            name="campaign",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="questionnaire_responses",
                to="annotation.campaign",
            ),
        ),
        migrations.AddField(
            model_name="questionnaireresponse",
            name="participant",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="questionnaire_responses",
                to="annotation.participant",
            ),
        ),
        migrations.AddField(
            model_name="answer",
            name="response",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="answers",
                to="annotation.questionnaireresponse",
            ),
        ),
        migrations.AddIndex(
            model_name="consentdecision",
            index=models.Index(fields=["campaign", "participant", "decided_at"], name="consent_decision_idx"),
        ),
        migrations.AddConstraint(
            model_name="consentversion",
            constraint=models.UniqueConstraint(fields=("campaign", "version"), name="consent_version_unique"),
        ),
        migrations.AddConstraint(
            model_name="consentversion",
            constraint=models.CheckConstraint(condition=models.Q(("version__gte", 1)), name="consent_version_positive"),
        ),
        migrations.AddConstraint(
            model_name="question",
            constraint=models.UniqueConstraint(fields=("campaign", "key", "version"), name="question_unique_version"),
        ),
        migrations.AddConstraint(
            model_name="question",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_current", True)),
                fields=("campaign", "key"),
                name="question_one_current_version",
            ),
        ),
        migrations.AddConstraint(
            model_name="question",
            constraint=models.CheckConstraint(
                condition=models.Q(("kind__in", ["single", "multiple", "number", "text"])), name="question_kind_valid"
            ),
        ),
        migrations.AddConstraint(
            model_name="question",
            constraint=models.CheckConstraint(
                condition=models.Q(models.Q(("key", ""), _negated=True), models.Q(("text", ""), _negated=True)),
                name="question_not_empty",
            ),
        ),
        migrations.AddConstraint(
            model_name="questionnaireresponse",
            constraint=models.UniqueConstraint(
                fields=("campaign", "participant"), name="questionnaire_once_per_campaign"
            ),
        ),
        migrations.AddConstraint(
            model_name="answer",
            constraint=models.UniqueConstraint(fields=("response", "question"), name="answer_once_per_question"),
        ),
        migrations.AddConstraint(
            model_name="answer",
            constraint=models.CheckConstraint(
                condition=models.Q(("source__in", ["asked", "prolific"])), name="answer_source_valid"
            ),
        ),
    ]
