"""Campaigns (studies), their criteria, and the participants who vote in them."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.models import TimestampedModel
from generation.models import MAX_POPULATION_SIZE, Generator, Prompt
from metrics.config import AttributeSpec, ConfigError, parse_attributes

DEFAULT_POPULATION_SIZE = 6


def new_invite_token() -> str:
    return secrets.token_urlsafe(18)


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "draft"
    OPEN = "open", "open"
    PAUSED = "paused", "paused"
    CLOSED = "closed", "closed"


class CampaignAccess(models.TextChoices):
    PUBLIC = "public", "public: anyone with the URL"
    INVITE = "invite", "invite link only"
    PROLIFIC = "prolific", "Prolific participants"
    MTURK = "mturk", "MTurk workers"


class SamplingPolicy(models.TextChoices):
    UNIFORM = "uniform", "uniform over pairs"
    BALANCED = "balanced", "fewest votes first"
    ACTIVE = "active", "most informative pair (vote-efficient)"


class QuestionnaireTiming(models.TextChoices):
    BEFORE = "before", "before the first comparison"
    AFTER = "after", "after the last comparison"


DEFAULT_MIN_GROUP_SIZE = 5


class Campaign(TimestampedModel):
    """One study: prompts x generators, population size N, criteria, votes wanted, access."""

    Status = CampaignStatus
    Access = CampaignAccess
    SamplingPolicy = SamplingPolicy

    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    instructions = models.TextField(blank=True, help_text="Shown to participants above the comparison.")
    prompts = models.ManyToManyField(Prompt, related_name="campaigns", blank=True)
    generators = models.ManyToManyField(Generator, related_name="campaigns", blank=True)
    population_size = models.PositiveSmallIntegerField(
        default=DEFAULT_POPULATION_SIZE,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_POPULATION_SIZE)],
        help_text="N: images per side.",
    )
    votes_per_pair = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1)],
        help_text="Votes wanted per pair of generators per prompt.",
    )
    sampling_policy = models.CharField(max_length=16, choices=SamplingPolicy.choices, default=SamplingPolicy.BALANCED)
    gold_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of comparisons that are gold (known answer), 0 to 0.5.",
    )
    repeat_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of comparisons that repeat one the participant already voted on, sides swapped, 0 to 0.5.",
    )
    access = models.CharField(max_length=16, choices=Access.choices, default=Access.PUBLIC)
    prolific_study_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="Prolific campaigns: admit only arrivals from this STUDY_ID; empty: any Prolific study.",
    )
    invite_token = models.CharField(max_length=64, default=new_invite_token, unique=True, editable=False)
    participant_quota = models.PositiveIntegerField(
        null=True, blank=True, help_text="Comparisons per participant before the completion page; empty: no limit."
    )
    completion_code = models.CharField(
        max_length=64, blank=True, help_text="Given to participants who reach the quota (Prolific: the study's code)."
    )
    completion_code_flagged = models.CharField(
        max_length=64,
        blank=True,
        help_text="Given instead to participants flagged by quality control, so they can be reviewed.",
    )
    gold_excluded_generators = models.ManyToManyField(
        Generator,
        related_name="+",
        blank=True,
        help_text="Generators never used as the real side of a gold check (beside those marked unsuitable).",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="campaigns"
    )
    # What population metrics measure (metrics.config documents the format). It lives on the campaign,
    # not in a metrics model keyed by campaign: it is part of the study's design, edited, copied and
    # deleted with it, and metrics sits below annotation, so it can check the JSON without knowing
    # campaigns exist.
    metrics_attributes = models.JSONField(
        default=dict,
        blank=True,
        help_text='Attributes to measure per population, e.g. {"colour": {"backend": "shapes", "classes": [...]}}.',
    )
    count_only_reconciled = models.BooleanField(
        default=False,
        help_text=(
            "Count only participants whose submission the crowd platform approved or holds for review, as the last "
            "imported record of the study says (reconcile_crowd); everyone else's votes are kept but not counted."
        ),
    )
    # Consent: the text participants accept before their first comparison (Markdown). Every change of the text
    # makes a new ConsentVersion (Campaign.save) and moves `consent_version` to it; participants who accepted an
    # older version are asked again. Empty text: no consent step (version 0 means no text was ever set).
    consent_text = models.TextField(
        blank=True,
        help_text="Consent participants accept before their first comparison (Markdown); empty: no consent step.",
    )
    consent_version = models.PositiveIntegerField(
        default=0, editable=False, help_text="The version of the consent text now shown (0: none ever set)."
    )
    questionnaire_timing = models.CharField(
        max_length=8,
        choices=QuestionnaireTiming.choices,
        default=QuestionnaireTiming.BEFORE,
        help_text="Whether the questionnaire (if any) comes before the first comparison or after the last.",
    )
    min_group_size = models.PositiveSmallIntegerField(
        default=DEFAULT_MIN_GROUP_SIZE,
        validators=[MinValueValidator(2)],
        help_text="k: a group of participants (an answer to a question) smaller than this is never shown anywhere.",
    )
    # Target shares of the population the weighted board is raked to (arena.groups.parse_targets reads and checks
    # it; arena sits above annotation, so the check runs where the board is read): {"margins": [{"questions":
    # ["gender", "age"], "shares": {"woman|18-34": 0.14, ...}}], "cap": 5}. Empty: no weighted board.
    population_targets = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'Target population for the weighted board: {"margins": [{"questions": ["gender"], "shares": '
            '{"woman": 0.5, "man": 0.5}}], "cap": 5} (cap: the largest weight, times the mean; default 5).'
        ),
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(population_size__gte=1) & Q(population_size__lte=MAX_POPULATION_SIZE),
                name="campaign_population_size_range",
            ),
            models.CheckConstraint(condition=Q(votes_per_pair__gte=1), name="campaign_votes_per_pair_positive"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0.0) & Q(gold_rate__lte=0.5), name="campaign_gold_rate_range"
            ),
            models.CheckConstraint(
                condition=Q(repeat_rate__gte=0.0) & Q(repeat_rate__lte=0.5), name="campaign_repeat_rate_range"
            ),
            models.CheckConstraint(condition=Q(status__in=CampaignStatus.values), name="campaign_status_valid"),
            models.CheckConstraint(condition=Q(access__in=CampaignAccess.values), name="campaign_access_valid"),
            models.CheckConstraint(
                condition=Q(sampling_policy__in=SamplingPolicy.values),
                name="campaign_sampling_policy_valid",
            ),
            models.CheckConstraint(
                condition=Q(questionnaire_timing__in=QuestionnaireTiming.values),
                name="campaign_questionnaire_timing_valid",
            ),
            models.CheckConstraint(condition=Q(min_group_size__gte=2), name="campaign_min_group_size_at_least_two"),
        ]

    def __str__(self) -> str:
        return self.title or self.slug

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    def attribute_specs(self) -> list[AttributeSpec]:
        """The parsed metrics configuration; ValidationError naming the field when it is wrong."""
        try:
            return parse_attributes(self.metrics_attributes, models_dir=settings.METRICS_MODELS_DIR)
        except ConfigError as exc:
            raise ValidationError({"metrics_attributes": f"{exc.field}: {exc.message}"}) from exc

    def slug_is_frozen(self) -> bool:
        """Whether the stored campaign has left draft (or ever issued a comparison): then its slug stays.

        Participants, crowd platforms and published links know a campaign by its slug; once it has
        been out, a new slug would break them and free the old one for another campaign.
        """
        if self.pk is None:
            return False
        stored = Campaign.objects.filter(pk=self.pk).values_list("status", flat=True).first()
        return stored is not None and (stored != CampaignStatus.DRAFT or self.comparisons.exists())

    def slug_change_problem(self) -> str:
        """Why the slug this instance holds may not be saved, or "" when it may (or is unchanged)."""
        if self.pk is None:
            return ""
        stored = Campaign.objects.filter(pk=self.pk).values_list("slug", flat=True).first()
        if stored is None or stored == self.slug or not self.slug_is_frozen():
            return ""
        return (
            f"the slug cannot change once the campaign has left draft: it stays {stored!r}, "
            "because participants, crowd platforms and published links know the campaign by it"
        )

    def clean(self) -> None:
        super().clean()
        self.attribute_specs()
        if problem := self.slug_change_problem():
            raise ValidationError({"slug": problem})

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Checked on every save that writes it, not only in forms: a campaign must never be given a
        # configuration that would fail half-way through computing metrics. A save of other fields
        # (pausing, say) is not refused because a CLIP folder has since moved; compute_metrics says so.
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "metrics_attributes" in update_fields:
            self.attribute_specs()
        # Likewise the slug: no save path (admin, shell, a service) renames a campaign that has been out.
        if (update_fields is None or "slug" in update_fields) and (problem := self.slug_change_problem()):
            raise ValidationError({"slug": problem})
        # Likewise consent: whatever path changes the text makes a new version, so every acceptance names the
        # exact text it was given under (the older versions stay in ConsentVersion).
        new_consent = (update_fields is None or "consent_text" in update_fields) and self._consent_text_changed()
        if new_consent:
            self.consent_version += 1
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "consent_version"}
        super().save(*args, **kwargs)
        if new_consent:
            ConsentVersion.objects.create(campaign=self, version=self.consent_version, text=self.consent_text)

    def _consent_text_changed(self) -> bool:
        stored = (
            None
            if self.pk is None
            else Campaign.objects.filter(pk=self.pk).values_list("consent_text", "consent_version").first()
        )
        if stored is None:
            return bool(self.consent_text)
        text, version = stored
        # The stored version is the truth: a stale instance saving the same text again makes no new version.
        self.consent_version = version
        return text != self.consent_text

    @property
    def asks_consent(self) -> bool:
        return bool(self.consent_text.strip())


class Criterion(models.Model):
    """One question of a campaign, answered left / right / tie / both bad."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="criteria")
    key = models.SlugField(max_length=64, help_text="Stable identifier used in the API and exports.")
    question = models.CharField(max_length=500)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["campaign", "position", "id"]
        verbose_name_plural = "criteria"
        constraints = [
            models.UniqueConstraint(fields=["campaign", "key"], name="criterion_unique_key"),
            models.CheckConstraint(condition=~Q(key="") & ~Q(question=""), name="criterion_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign.slug}:{self.key}"


class ParticipantKind(models.TextChoices):
    ANONYMOUS = "anonymous", "anonymous browser"
    USER = "user", "logged-in user"
    PROLIFIC = "prolific", "Prolific"
    MTURK = "mturk", "MTurk"
    # A metric voting through the arena's services (arena/simulation.py): never ranked beside people,
    # never quality-scored, exported only when asked for (see arena.models.VoteQuerySet.counted).
    SIMULATED = "simulated", "simulated (a metric as judge)"


class Participant(TimestampedModel):
    """Who votes: an anonymous browser session, a logged-in user, a crowd worker, or a simulated judge."""

    Kind = ParticipantKind

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ANONYMOUS)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="participant"
    )
    external_id_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text=(
            "Keyed hash of the crowd worker's id; the raw id is never stored. Simulated participants: a hash of "
            "their crowd and index."
        ),
    )
    entry_params = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "Crowd entry parameters. STUDY_ID and turkSubmitTo as sent (they name the researcher's study and "
            "MTurk's endpoint, not a person); SESSION_ID, assignmentId and hitId as keyed hashes. Simulated "
            "participants: the crowd they belong to (campaign, judge, noise, seed) and their index in it."
        ),
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # No flag here: a flag is a fact about a participant's work in one campaign (CampaignParticipation).

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ParticipantKind.values), name="participant_kind_valid"),
            models.UniqueConstraint(
                fields=["kind", "external_id_hash"],
                condition=~Q(external_id_hash=""),
                name="participant_unique_external_id",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["prolific", "mturk"]) | ~Q(external_id_hash=""),
                name="participant_crowd_has_external_id",
            ),
            models.CheckConstraint(
                condition=~Q(kind="simulated") | (~Q(external_id_hash="") & Q(user__isnull=True)),
                name="participant_simulated_has_identity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} participant {self.pk}"


class CrowdAssignment(TimestampedModel):
    """The one assignment (MTurk assignmentId, Prolific SESSION_ID) a crowd worker does a campaign's work on.

    A worker completes a campaign once: an arrival on another assignment takes over only while the
    quota is not yet reached (the earlier one was left unfinished); after it, the worker is told they
    have taken part already, and no completion is handed to the new assignment.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="crowd_assignments")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="crowd_assignments")
    assignment_hash = models.CharField(max_length=64, help_text="Keyed hash of the assignment or session id.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "participant"], name="crowd_assignment_once_per_campaign"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign.slug}: participant {self.participant_id}"


class PlatformStatus(models.TextChoices):
    """What the crowd platform's own record of the study says of a participant (arena.participation.reconcile_crowd).

    Prolific's statuses and MTurk's AssignmentStatus map onto these (annotation.reconciliation); UNKNOWN is
    a participant who voted here under a worker id the platform's record of the study does not hold: an
    invented PROLIFIC_PID or workerId, or someone who never submitted.
    """

    NOT_RECONCILED = "", "not reconciled"
    APPROVED = "approved", "approved"
    AWAITING_REVIEW = "awaiting_review", "awaiting review"
    ACTIVE = "active", "still working"
    RETURNED = "returned", "returned or timed out"
    REJECTED = "rejected", "rejected"
    UNKNOWN = "unknown", "unknown to the platform"


# A campaign that counts only reconciled participants counts these: the platform holds a submission of theirs
# for this study that it has not refused. Awaiting review counts too: researchers review (and pay) after reading
# the quality report, so requiring approval first would leave the board empty until after the study.
COUNTED_PLATFORM_STATUSES: tuple[str, ...] = (PlatformStatus.APPROVED, PlatformStatus.AWAITING_REVIEW)


def participation_counts(
    *, count_only_reconciled: bool, is_flagged: bool, platform_status: str, is_withdrawn: bool = False
) -> bool:
    """Whether a participant in good standing in a campaign by these facts: not withdrawn, not flagged there, and
    reconciled where the campaign asks for it. arena.models.VoteQuerySet.counted states the same rule for the
    database."""
    if is_flagged or is_withdrawn:
        return False
    return not count_only_reconciled or platform_status in COUNTED_PLATFORM_STATUSES


class WithdrawnBy(models.TextChoices):
    PARTICIPANT = "participant", "the participant"
    STAFF = "staff", "staff, on the participant's request"


class CampaignParticipation(TimestampedModel):
    """A participant's standing in one campaign: quality control's flag and the crowd platform's verdict.

    Created when needed (a flag, a reconciliation); no row means not flagged and not reconciled. Written
    only through arena.participation, which recounts the campaign's tallies with every change.
    """

    PlatformStatus = PlatformStatus

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="participations")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="participations")
    is_flagged = models.BooleanField(default=False, help_text="Failed quality control in this campaign.")
    flag_reason = models.TextField(blank=True)
    platform_status = models.CharField(
        max_length=16,
        choices=PlatformStatus.choices,
        default=PlatformStatus.NOT_RECONCILED,
        blank=True,
        help_text="What the crowd platform's record of the study, last imported, says of this participant.",
    )
    reconciled_at = models.DateTimeField(null=True, blank=True)
    # Withdrawal: the participant (or staff on their request) took back their part in this campaign. Their votes
    # stay stored but never count again (arena.models' counting rule), their answers are deleted, and the export
    # manifests say how many withdrew. Recorded here, with who asked, and never undone.
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.CharField(max_length=16, choices=WithdrawnBy.choices, blank=True)
    withdrawal_note = models.CharField(max_length=500, blank=True, help_text="Staff: the request this acts on.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "participant"], name="participation_once_per_campaign"),
            models.CheckConstraint(
                condition=Q(withdrawn_at__isnull=True, withdrawn_by="")
                | Q(withdrawn_at__isnull=False, withdrawn_by__in=WithdrawnBy.values),
                name="participation_withdrawal_recorded",
            ),
            models.CheckConstraint(
                condition=Q(platform_status__in=PlatformStatus.values), name="participation_platform_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign.slug}: participant {self.participant_id}"


# --- consent --------------------------------------------------------------------------------------------------


class ConsentVersion(models.Model):
    """One text of a campaign's consent, as it was: made by Campaign.save whenever the text changes."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="consent_versions")
    version = models.PositiveIntegerField()
    text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "version"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "version"], name="consent_version_unique"),
            models.CheckConstraint(condition=Q(version__gte=1), name="consent_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}: consent v{self.version}"


class ConsentDecision(models.Model):
    """A participant's answer to one version of a campaign's consent: accepted or declined, and when.

    Rows are only added (a history): the latest decides. A vote was given under the version of the latest
    acceptance before it (exports name it); a withdrawal adds a declined row for the version then current.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="consent_decisions")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="consent_decisions")
    version = models.PositiveIntegerField()
    accepted = models.BooleanField()
    decided_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["campaign", "participant", "decided_at", "id"]
        indexes = [models.Index(fields=["campaign", "participant", "decided_at"], name="consent_decision_idx")]

    def __str__(self) -> str:
        verdict = "accepted" if self.accepted else "declined"
        return f"{self.campaign_id}: participant {self.participant_id} {verdict} v{self.version}"


# --- questionnaire --------------------------------------------------------------------------------------------


class QuestionKind(models.TextChoices):
    SINGLE = "single", "single choice"
    MULTIPLE = "multiple", "several choices"
    NUMBER = "number", "number in a range"
    TEXT = "text", "short text"


# What a sensitive question always offers, stored as the answer itself (one value, or the only one of a list).
PREFER_NOT_TO_SAY = "prefer not to say"
MAX_TEXT_ANSWER = 200


class Question(models.Model):
    """One version of one question of a campaign's questionnaire.

    A question is known by its `key`; editing one that has answers makes a new version (the service does)
    and marks it current, so every answer keeps the wording and choices it was given under. `choices` are
    the options of choice questions (strings); `min_value`/`max_value` bound number answers.
    `prolific_column` names the column of Prolific's demographic export that fills it on import.
    """

    Kind = QuestionKind

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="questions")
    key = models.SlugField(max_length=64, help_text="Stable identifier used in the API, groups and exports.")
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    text = models.CharField(max_length=500)
    kind = models.CharField(max_length=16, choices=QuestionKind.choices)
    choices = models.JSONField(default=list, blank=True, help_text="Options of a choice question, in order.")
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)
    required = models.BooleanField(default=True)
    sensitive = models.BooleanField(default=False, help_text='Always offers "prefer not to say".')
    position = models.PositiveSmallIntegerField(default=0)
    prolific_column = models.CharField(
        max_length=100, blank=True, help_text="Column of Prolific's demographic export that answers it (e.g. Sex)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "key", "version"], name="question_unique_version"),
            models.UniqueConstraint(
                fields=["campaign", "key"], condition=Q(is_current=True), name="question_one_current_version"
            ),
            models.CheckConstraint(condition=Q(kind__in=QuestionKind.values), name="question_kind_valid"),
            models.CheckConstraint(condition=~Q(key="") & ~Q(text=""), name="question_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.key} v{self.version}"

    @property
    def offered_choices(self) -> list[str]:
        """The options a participant sees: the choices, and "prefer not to say" on sensitive questions."""
        options = [str(choice) for choice in self.choices or []]
        if self.sensitive and PREFER_NOT_TO_SAY not in options:
            options.append(PREFER_NOT_TO_SAY)
        return options


class AnswerSource(models.TextChoices):
    ASKED = "asked", "asked here"
    PROLIFIC = "prolific", "imported from Prolific"


class QuestionnaireResponse(TimestampedModel):
    """A participant's questionnaire in one campaign: asked once (`asked_at`), and the answers it holds."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="questionnaire_responses")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="questionnaire_responses")
    asked_at = models.DateTimeField(null=True, blank=True, help_text="When they submitted the questionnaire here.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "participant"], name="questionnaire_once_per_campaign"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}: participant {self.participant_id}"


class Answer(models.Model):
    """One answer to one version of a question: a string (single choice, text), a list of strings (several
    choices) or a number; "prefer not to say" as the string itself (or the list's only item)."""

    Source = AnswerSource

    response = models.ForeignKey(QuestionnaireResponse, on_delete=models.CASCADE, related_name="answers")
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="answers")
    value = models.JSONField()
    source = models.CharField(max_length=16, choices=AnswerSource.choices, default=AnswerSource.ASKED)
    answered_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["response", "question"], name="answer_once_per_question"),
            models.CheckConstraint(condition=Q(source__in=AnswerSource.values), name="answer_source_valid"),
        ]

    def __str__(self) -> str:
        return f"answer to {self.question_id}"
