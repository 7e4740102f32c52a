"""Comparisons (battles) of two populations of one prompt, and the votes cast on them."""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Exists, F, OuterRef, Q

from annotation.models import (
    COUNTED_PLATFORM_STATUSES,
    Campaign,
    CampaignParticipation,
    Criterion,
    Participant,
    ParticipantKind,
    participation_counts,
)
from core import choices
from generation.models import Population, Prompt


def new_comparison_token() -> str:
    # 256 bits: unguessable, and carries nothing about the populations behind it.
    return secrets.token_urlsafe(32)


class ComparisonStatus(models.TextChoices):
    ISSUED = "issued", "issued"
    VOTED = "voted", "voted"
    EXPIRED = "expired", "expired"


class ComparisonQuerySet(models.QuerySet["Comparison"]):
    def preferences(self) -> ComparisonQuerySet:
        """Comparisons whose votes are preference judgements: not gold checks, not side-swapped repeats.

        Gold comparisons have a deliberately broken side and a repeat is the same person judging the
        same pair again: both score participants, neither ranks generators. Raw SQL that must restate
        this rule says so (arena/statements.py, checked against this by tests/arena/test_statements.py).
        """
        return self.filter(is_gold=False, repeat_of__isnull=True)

    def by_people(self) -> ComparisonQuerySet:
        """Comparisons issued to people: not to simulated participants (arena/simulation.py)."""
        return self.exclude(participant__kind=ParticipantKind.SIMULATED)

    def simulated(self) -> ComparisonQuerySet:
        return self.filter(participant__kind=ParticipantKind.SIMULATED)

    def voted_by(self, *, campaign: Campaign | int, participant: Participant | int) -> ComparisonQuerySet:
        """The comparisons `participant` has answered in `campaign`, gold checks and repeats included: what the
        quota counts (arena/quota.py). Hand-written restatements (the history's count, the held statement's
        subquery in arena/statements.py) are checked against this by tests/arena/test_statements.py."""
        return self.filter(campaign=campaign, participant=participant, status=Comparison.Status.VOTED)

    def counted(self) -> ComparisonQuerySet:
        """Preference comparisons of people in good standing in the comparison's campaign: VoteQuerySet.counted's
        rule for the comparisons whose votes it counts."""
        return self.preferences().by_people().filter(_in_good_standing())


def flagged_in_campaign(comparison: str = "comparison__") -> Exists:
    """Whether the participant of the comparison at `comparison` ("" for a Comparison query) is flagged in its
    campaign: for readers that mark flagged participants' votes rather than leave them out (the vote log)."""
    return Exists(
        CampaignParticipation.objects.filter(
            campaign_id=OuterRef(f"{comparison}campaign_id"),
            participant_id=OuterRef(f"{comparison}participant_id"),
            is_flagged=True,
        )
    )


def withdrawn_from_campaign(comparison: str = "comparison__") -> Exists:
    """Whether the participant of the comparison at `comparison` withdrew from its campaign: their votes count
    nowhere (`_in_good_standing`) and leave later exports, the raw vote log included."""
    return Exists(
        CampaignParticipation.objects.filter(
            campaign_id=OuterRef(f"{comparison}campaign_id"),
            participant_id=OuterRef(f"{comparison}participant_id"),
            withdrawn_at__isnull=False,
        )
    )


def _in_good_standing(comparison: str = "", *, include_flagged: bool = False) -> Q:
    """The participant of the comparison at `comparison` ("" for a Comparison query, "comparison__" for a Vote
    query) is in good standing in its campaign: not withdrawn from it (never widened: a withdrawal takes every
    vote out of every reader), not flagged there (unless `include_flagged`), and, where the campaign counts only
    reconciled participants, one the crowd platform approved or holds for review.
    annotation.models.participation_counts is the same rule in Python."""
    standing = CampaignParticipation.objects.filter(
        campaign_id=OuterRef(f"{comparison}campaign_id"), participant_id=OuterRef(f"{comparison}participant_id")
    )
    good = Q(
        Q(**{f"{comparison}campaign__count_only_reconciled": False})
        | Exists(standing.filter(platform_status__in=COUNTED_PLATFORM_STATUSES)),
        ~withdrawn_from_campaign(comparison),
    )
    return good if include_flagged else Q(~flagged_in_campaign(comparison)) & good


class VoteQuerySet(models.QuerySet["Vote"]):
    def preferences(self) -> VoteQuerySet:
        """Votes on preference comparisons (see ComparisonQuerySet.preferences), whoever cast them."""
        return self.filter(comparison__is_gold=False, comparison__repeat_of__isnull=True)

    def by_people(self) -> VoteQuerySet:
        """Votes of people: not of simulated participants (arena/simulation.py)."""
        return self.exclude(comparison__participant__kind=ParticipantKind.SIMULATED)

    def simulated(self) -> VoteQuerySet:
        return self.filter(comparison__participant__kind=ParticipantKind.SIMULATED)

    def counted(self, *, include_flagged: bool = False, include_simulated: bool = False) -> VoteQuerySet:
        """The votes that count: preferences of people in good standing in the vote's campaign.

        Good standing is per campaign (annotation.models.CampaignParticipation): not flagged by that
        campaign's quality control, and, where the campaign counts only reconciled participants, approved
        or awaiting review in the crowd platform's record of the study. A flag in one study never changes
        another's count. Leaderboards rank these, preference exports hold these, the pair tallies add
        these up; `Comparison.counts` is the same rule for one comparison about to be voted on. A simulated
        participant's votes are a metric's, not a person's: they never count, however they are flagged.
        The two switches widen the rule for readers that ask for more (staff boards with flagged
        participants, exports with `--include-flagged` / `--include-simulated`); each adds its votes
        whatever the other says. `include_flagged` adds flagged participants only: a campaign that counts
        only reconciled participants leaves the others out of every reader.
        """
        people = ~Q(comparison__participant__kind=ParticipantKind.SIMULATED) & _in_good_standing(
            "comparison__", include_flagged=include_flagged
        )
        who = (people | Q(comparison__participant__kind=ParticipantKind.SIMULATED)) if include_simulated else people
        return self.preferences().filter(who)


class Comparison(models.Model):
    """Two populations of the same prompt from different generators, issued to one participant.

    The database itself refuses a comparison whose populations differ in prompt, share a
    generator, or disagree with the stored prompt (triggers in migration 0002).
    """

    Status = ComparisonStatus
    # Not a column: set by arena.issuing on the comparison it issues, the holder's voted comparisons in the
    # campaign when it was issued (read with their history), so the payload's progress needs no count of its own.
    holder_votes_cast: int | None = None

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="comparisons")
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="comparisons")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="comparisons")
    # Indexed with the campaign by comparison_left_campaign_idx, which serves the foreign key's lookups too.
    left_population = models.ForeignKey(Population, on_delete=models.PROTECT, related_name="+", db_index=False)
    right_population = models.ForeignKey(Population, on_delete=models.PROTECT, related_name="+")
    token = models.CharField(max_length=64, unique=True, default=new_comparison_token, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ISSUED, db_index=True)
    issued_at = models.DateTimeField(auto_now_add=True, db_index=True)
    lease_until = models.DateTimeField()
    voted_at = models.DateTimeField(null=True, blank=True)
    is_gold = models.BooleanField(default=False)
    # Which client (a salted hash of address and user agent that rotates daily; arena.clients) asked for it: a set
    # revealed to one session is not shown to another session of the same client. Never the address itself.
    # Null, not "", where none: the partial index leaves those rows out, and SQLite adds the column in place.
    client_hash = models.CharField(max_length=32, null=True, blank=True, editable=False)  # noqa: DJ001
    repeat_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="repeats",
        help_text="The comparison this one shows again with sides swapped (a consistency check).",
    )

    objects = ComparisonQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at"]
        indexes = [
            models.Index(fields=["campaign", "status"], name="comparison_campaign_status_idx"),
            models.Index(fields=["campaign", "participant", "status"], name="comparison_participant_idx"),
            # A set's comparisons in one campaign, by index alone (arena.statements._UNFINISHED_PAIRS reads them for
            # each set in use; without it PostgreSQL scanned the campaign's comparisons, a cost growing with votes).
            models.Index(fields=["left_population", "campaign"], name="comparison_left_campaign_idx"),
            # A client's voted comparisons in a campaign: the sets revealed to it (arena.statements._HISTORY).
            models.Index(
                fields=["campaign", "client_hash"], name="comparison_client_idx", condition=Q(client_hash__isnull=False)
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(left_population=F("right_population")), name="comparison_distinct_populations"
            ),
            models.CheckConstraint(condition=Q(status__in=ComparisonStatus.values), name="comparison_status_valid"),
            models.CheckConstraint(
                condition=~Q(status="voted") | Q(voted_at__isnull=False), name="comparison_voted_has_time"
            ),
            models.CheckConstraint(condition=Q(lease_until__gte=F("issued_at")), name="comparison_lease_after_issue"),
        ]

    def __str__(self) -> str:
        return f"comparison {self.pk} ({self.status})"

    def counts(
        self, participant: Participant, *, flagged: bool, platform_status: str = "", withdrawn: bool = False
    ) -> bool:
        """Whether `participant`'s votes on this comparison count (the rule of VoteQuerySet.counted).

        `flagged`, `platform_status` and `withdrawn` are the participant's standing in this comparison's
        campaign (their CampaignParticipation row; False, "" and False when there is none), read by the caller
        with the comparison; `self.campaign` says whether the campaign counts only reconciled participants.
        """
        if participant.kind == ParticipantKind.SIMULATED or self.is_gold or self.repeat_of_id is not None:
            return False
        return participation_counts(
            count_only_reconciled=self.campaign.count_only_reconciled,
            is_flagged=flagged,
            platform_status=platform_status,
            is_withdrawn=withdrawn,
        )


class VoteChoice(models.TextChoices):
    """The vote vocabulary of core.choices as a column's choices."""

    LEFT = choices.LEFT, choices.LABELS[choices.LEFT]
    RIGHT = choices.RIGHT, choices.LABELS[choices.RIGHT]
    TIE = choices.TIE, choices.LABELS[choices.TIE]
    BOTH_BAD = choices.BOTH_BAD, choices.LABELS[choices.BOTH_BAD]


class Vote(models.Model):
    """One answer to one criterion of one comparison; the choice is the side as displayed."""

    Choice = VoteChoice

    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="votes")
    criterion = models.ForeignKey(Criterion, on_delete=models.PROTECT, related_name="votes")
    choice = models.CharField(max_length=16, choices=Choice.choices)
    dwell_ms = models.PositiveIntegerField(help_text="Time from display to vote, in milliseconds.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = VoteQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "criterion"], name="vote_one_per_criterion"),
            models.CheckConstraint(condition=Q(choice__in=VoteChoice.values), name="vote_choice_valid"),
            models.CheckConstraint(condition=Q(dwell_ms__gte=0), name="vote_dwell_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.criterion.key}: {self.choice}"


class PairTally(models.Model):
    """Running outcome counts of one pair of generators on one criterion, kept as votes land.

    `category` is "" for all prompts, else one prompt category. The pair is stored in id order
    (generator_a < generator_b); outcomes are counted for that orientation, whatever side each
    generator was shown on. Leaderboards read these instead of rescanning every vote.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tallies")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="tallies")
    category = models.CharField(max_length=100, blank=True)
    generator_a = models.ForeignKey("generation.Generator", on_delete=models.CASCADE, related_name="+")
    generator_b = models.ForeignKey("generation.Generator", on_delete=models.CASCADE, related_name="+")
    a_wins = models.PositiveIntegerField(default=0)
    b_wins = models.PositiveIntegerField(default=0)
    ties = models.PositiveIntegerField(default=0)
    both_bad = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["criterion", "category", "generator_a", "generator_b"], name="pair_tally_unique"
            ),
            models.CheckConstraint(condition=Q(generator_a__lt=F("generator_b")), name="pair_tally_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.criterion} {self.category or 'all'}: {self.generator_a_id} vs {self.generator_b_id}"

    @property
    def total(self) -> int:
        return self.a_wins + self.b_wins + self.ties + self.both_bad
