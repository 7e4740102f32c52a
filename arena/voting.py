"""Voting: check a participant's answers to a comparison they hold, record them, reveal its generators."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import Campaign, Participant
from annotation.selectors import get_live_campaign
from arena.issuing import check_held, tables
from arena.models import Comparison
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
    voted_before: int  # the holder's comparisons in the campaign voted before this one


# The comparison under a token with everything a vote needs, in one statement: its row, locked until the
# transaction ends (held_comparison's select_for_update: on PostgreSQL FOR UPDATE OF the comparison row alone;
# SQLite's IMMEDIATE transactions already serialise writers), both sides' generators, the prompt's category,
# and the count arena.selectors.count_votes_cast restates: the participant's comparisons in the campaign with
# status 'voted'. Inner joins on foreign keys that are never null: one row, or none for an unknown token.
# Written out: the ORM's locked read, a join for the sides and a count cost several times the CPU of running it.
_HELD = """
SELECT c.id, c.campaign_id, c.participant_id, c.status, c.issued_at, c.lease_until, c.is_gold, c.repeat_of_id,
    c.left_population_id, c.right_population_id, c.prompt_id, pr.category,
    lp.generator_id, lg.name, lg.display_name, lg.is_offline_standin,
    rp.generator_id, rg.name, rg.display_name, rg.is_offline_standin,
    (SELECT COUNT(*) FROM {comparison} v
     WHERE v.campaign_id = c.campaign_id AND v.participant_id = c.participant_id AND v.status = %(voted)s)
FROM {comparison} c
JOIN {prompt} pr ON pr.id = c.prompt_id
JOIN {population} lp ON lp.id = c.left_population_id JOIN {generator} lg ON lg.id = lp.generator_id
JOIN {population} rp ON rp.id = c.right_population_id JOIN {generator} rg ON rg.id = rp.generator_id
WHERE c.token = %(token)s
{lock}"""
# The vote's rows (one per criterion) and the comparison marked voted: what Vote.objects.bulk_create and
# Comparison.save(update_fields=...) would write, without building either statement through the ORM.
_INSERT_VOTES = "INSERT INTO {vote} (comparison_id, criterion_id, choice, dwell_ms, created_at) VALUES {rows}"
_MARK_VOTED = "UPDATE {comparison} SET status = %s, voted_at = %s WHERE id = %s"


def _datetime(value: datetime) -> datetime:
    """A datetime column as the ORM gives it: SQLite hands a hand-written statement a naive one, in UTC."""
    return value if timezone.is_aware(value) else timezone.make_aware(value, connection.timezone)


def _held(*, token: str, holder: int, now: datetime) -> _Held:
    """The holder's comparison under `token` (locked), its sides and the holder's count; as held_comparison refuses."""
    lock = "FOR UPDATE OF c" if connection.features.has_select_for_update_of else ""
    with connection.cursor() as cursor:
        cursor.execute(_HELD.format(lock=lock, **tables()), {"token": token, "voted": Comparison.Status.VOTED.value})
        row = cursor.fetchone()
    if row is None:
        raise NotFound("no comparison with this token")
    (pk, campaign_id, participant_id, status, issued_at, lease_until, is_gold, repeat_of_id, left_id, right_id,
     prompt_id, category, left_generator, left_name, left_display, left_standin, right_generator, right_name,
     right_display, right_standin, voted_before) = row  # fmt: skip
    comparison = Comparison(
        pk=pk,
        campaign_id=campaign_id,
        participant_id=participant_id,
        prompt_id=prompt_id,
        left_population_id=left_id,
        right_population_id=right_id,
        token=token,
        status=status,
        issued_at=_datetime(issued_at),
        lease_until=_datetime(lease_until),
        is_gold=bool(is_gold),
        repeat_of_id=repeat_of_id,
    )
    check_held(comparison, holder=holder, now=now)

    def side(name: str, display_name: str, standin: bool) -> RevealedSide:
        return RevealedSide(name, Generator(name=name, display_name=display_name).label, bool(standin))

    return _Held(
        comparison=comparison,
        left=side(left_name, left_display, left_standin),
        right=side(right_name, right_display, right_standin),
        left_generator_id=left_generator,
        right_generator_id=right_generator,
        category=category,
        voted_before=voted_before,
    )


def _record_votes(comparison: Comparison, rows: list[tuple[int, str]], dwell_ms: int, now: datetime) -> None:
    """Store one Vote per (criterion id, choice) and mark the comparison voted; the caller holds its lock."""
    at = connection.ops.adapt_datetimefield_value(now)
    params: list[Any] = []
    for criterion_id, choice in rows:
        params += [comparison.pk, criterion_id, choice, dwell_ms, at]
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_VOTES.format(rows=values, **tables()), params)
        cursor.execute(_MARK_VOTED.format(**tables()), [Comparison.Status.VOTED.value, at, comparison.pk])
    comparison.status = Comparison.Status.VOTED
    comparison.voted_at = now


@transaction.atomic
def cast_votes(
    *, token: str, participant: Participant, votes: list[VoteInput], dwell_ms: int, now: datetime | None = None
) -> Reveal:
    """Record one vote per criterion of the comparison, all or none, and reveal its generators."""
    now = now or timezone.now()
    held = _held(token=token, holder=participant.pk, now=now)
    comparison = held.comparison
    # The process's copy of the campaign with its criteria (get_live_campaign), not two more queries.
    comparison.campaign = get_live_campaign(pk=comparison.campaign_id)
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
    quota = comparison.campaign.participant_quota
    voted: int | None = None
    if quota is not None:
        # The participant's row lock serialises their concurrent votes, so the count below cannot
        # be overtaken by a vote committing in parallel: no overshoot of the quota.
        Participant.objects.select_for_update().filter(pk=participant.pk).first()
        voted = Comparison.objects.filter(
            campaign_id=comparison.campaign_id, participant=participant, status=Comparison.Status.VOTED
        ).count()
        if voted >= quota:
            raise Conflict(f"you have reached this campaign's quota of {quota} comparisons", code="quota_reached")
    _record_votes(comparison, [(criteria[v.criterion], v.choice) for v in votes], dwell_ms, now)
    # Flagged and simulated participants' votes are kept and marked, but leaderboards leave them out;
    # gold checks and side-swapped repeats measure the participant, not the generators.
    if comparison.counts(participant):
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
