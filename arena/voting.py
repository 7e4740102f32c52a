"""Voting: check a participant's answers to a comparison they hold, record them, reveal its generators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import Campaign, Participant
from annotation.selectors import get_live_campaign
from arena import quota
from arena.issuing import check_campaign_takes_answers, check_held
from arena.models import Comparison
from arena.statements import fetch_held, record_votes, reserves, spend
from arena.tallies import announce_leaderboard_change, record_tallies
from core import choices
from core.errors import ApplicationError, Conflict, NotFound
from generation.models import Generator

MAX_DWELL_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class VoteInput:
    criterion: str
    choice: str


@dataclass(frozen=True)
class RevealedSide:
    generator: str
    display_name: str
    is_offline_standin: bool


@dataclass(frozen=True)
class Reveal:
    left: RevealedSide
    right: RevealedSide
    votes_cast: int
    # For the caller (issuing the next comparison in the same request), not for the participant: the
    # process's copy of the campaign (get_live_campaign) the vote was checked against.
    campaign: Campaign = field(repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """What the participant is shown (RevealSerializer's fields)."""
        return {"left": asdict(self.left), "right": asdict(self.right), "votes_cast": self.votes_cast}


def _check_votes(comparison: Comparison, votes: list[VoteInput], dwell_ms: int) -> dict[str, int]:
    if isinstance(dwell_ms, bool) or not isinstance(dwell_ms, int) or not 0 <= dwell_ms <= MAX_DWELL_MS:
        raise ApplicationError(f"dwell_ms must be a whole number of milliseconds from 0 to {MAX_DWELL_MS}")
    criteria = {c.key: c.pk for c in comparison.campaign.criteria.all()}
    asked = ", ".join(criteria)
    answered: set[str] = set()
    for vote in votes:
        if vote.criterion not in criteria:
            raise ApplicationError(f"unknown criterion {vote.criterion!r} (this campaign asks: {asked})")
        if vote.criterion in answered:
            raise ApplicationError(f"criterion {vote.criterion!r} is answered twice")
        if vote.choice not in choices.CHOICES:
            raise ApplicationError(
                f"unknown choice {vote.choice!r} for criterion {vote.criterion!r} (use {choices.spoken()})"
            )
        answered.add(vote.criterion)
    missing = [key for key in criteria if key not in answered]
    if missing:
        raise ApplicationError(f"every criterion needs an answer; missing: {', '.join(missing)}")
    return criteria


@dataclass(frozen=True)
class _Held:
    """The comparison a vote is for, with the columns of the rows around it that the vote needs."""

    comparison: Comparison
    left: RevealedSide
    right: RevealedSide
    left_generator_id: int
    right_generator_id: int
    category: str
    campaign_status: str  # read with the comparison, under its lock
    voted_before: int  # the holder's comparisons in the campaign voted before this one
    # The holder's standing in the campaign (their CampaignParticipation row; False, "" and False without one).
    flagged: bool
    platform_status: str
    withdrawn: bool


def _held(*, token: str, holder: int, now: datetime) -> _Held:
    """The holder's comparison under `token` (locked), its sides and the holder's count; as held_comparison refuses."""
    row = fetch_held(token)
    if row is None:
        raise NotFound("no comparison with this token")
    check_held(row.comparison, holder=holder, now=now)

    def side(generator: tuple[int, str, str, bool]) -> RevealedSide:
        _, name, display_name, standin = generator
        return RevealedSide(name, Generator(name=name, display_name=display_name).label, standin)

    return _Held(
        comparison=row.comparison,
        left=side(row.left_generator),
        right=side(row.right_generator),
        left_generator_id=row.left_generator[0],
        right_generator_id=row.right_generator[0],
        category=row.category,
        campaign_status=row.campaign_status,
        voted_before=row.voted_before,
        flagged=row.flagged,
        platform_status=row.platform_status,
        withdrawn=row.withdrawn,
    )


@transaction.atomic
def cast_votes(
    *,
    token: str,
    participant: Participant,
    votes: list[VoteInput],
    dwell_ms: int,
    now: datetime | None = None,
    first_steps: Callable[[Campaign], None] | None = None,
) -> Reveal:
    """Record one vote per criterion of the comparison, all or none, and reveal its generators.

    `first_steps`, called with the comparison's campaign before anything is recorded, may refuse the vote (the
    API passes arena.admission.require_first_steps: consent and a questionnaire asked first)."""
    now = now or timezone.now()
    held = _held(token=token, holder=participant.pk, now=now)
    comparison = held.comparison
    # The process's copy of the campaign with its criteria (get_live_campaign), not two more queries; its status
    # as read under the comparison's lock, so a vote that lands after the campaign closed is refused.
    comparison.campaign = get_live_campaign(pk=comparison.campaign_id)
    comparison.campaign.status = held.campaign_status
    check_campaign_takes_answers(comparison.campaign)
    if first_steps is not None:
        first_steps(comparison.campaign)
    criteria = _check_votes(comparison, votes, dwell_ms)
    # The client's dwell time is its own number; the server's clock bounds it. A vote sooner after
    # the comparison was issued than anyone could look at twelve images is refused, and no
    # client can claim to have looked longer than the comparison has existed.
    since_issue_ms = max(0, int((now - comparison.issued_at).total_seconds() * 1000))
    floor = settings.VOTE_MIN_DWELL_MS
    if since_issue_ms < floor:
        raise Conflict(
            f"this comparison was issued {since_issue_ms} ms ago; a vote can come only after its images "
            f"have been shown (at least {floor} ms)",
            code="too_early",
        )
    dwell_ms = min(dwell_ms, since_issue_ms)
    voted: int | None = None
    if comparison.campaign.participant_quota is not None:
        # The participant's row lock serialises their concurrent votes, so the count below cannot
        # be overtaken by a vote committing in parallel: no overshoot of the quota.
        Participant.objects.select_for_update().filter(pk=participant.pk).first()
        voted = Comparison.objects.voted_by(campaign=comparison.campaign_id, participant=participant).count()
        quota.check(comparison.campaign, voted)
    record_votes(comparison, [(criteria[v.criterion], v.choice) for v in votes], dwell_ms, now)
    if reserves(is_gold=comparison.is_gold, repeat_of_id=comparison.repeat_of_id):
        spend((comparison.left_population_id, comparison.right_population_id))
    # Flagged and simulated participants' votes are kept and marked, but leaderboards leave them out;
    # gold checks and side-swapped repeats measure the participant, not the generators.
    if comparison.counts(
        participant, flagged=held.flagged, platform_status=held.platform_status, withdrawn=held.withdrawn
    ):
        record_tallies(
            campaign_id=comparison.campaign_id,
            left=held.left_generator_id,
            right=held.right_generator_id,
            category=held.category,
            criteria=criteria,
            answers=[(v.criterion, v.choice) for v in votes],
        )
        keys = [v.criterion for v in votes]
        transaction.on_commit(partial(announce_leaderboard_change, comparison.campaign.slug, keys))
    # Under the participant's row lock (a quota) the count before this vote is exact; without one, the count
    # read with the comparison: both before this vote, which adds one.
    votes_cast = (voted if voted is not None else held.voted_before) + 1
    return Reveal(left=held.left, right=held.right, votes_cast=votes_cast, campaign=comparison.campaign)
