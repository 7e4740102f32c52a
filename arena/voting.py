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
from arena.issuing import held_comparison
from arena.models import Comparison, Vote
from arena.tallies import announce_leaderboard_change, record_tallies
from core import choices
from core.errors import ApplicationError, Conflict
from generation.models import Generator, Population, Prompt

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
class _Sides:
    left: RevealedSide
    right: RevealedSide
    left_generator_id: int
    right_generator_id: int
    category: str


# Both sides' generators and the prompt's category: plain columns of three tables, no rule restated.
# Written out: the ORM's join cost more CPU to build than the database takes to run it.
_SIDES = """
SELECT p.id, p.generator_id, g.name, g.display_name, g.is_offline_standin, pr.category
FROM {population} p JOIN {generator} g ON g.id = p.generator_id JOIN {prompt} pr ON pr.id = p.prompt_id
WHERE p.id IN (%s, %s)
"""


def _sides(comparison: Comparison) -> _Sides:
    """Both sides' generators and the prompt's category, in one light query.

    Loading the comparison with its prompt, populations and generators as model instances cost
    about 4 ms of CPU per vote; these six columns are all a vote needs of them.
    """
    sql = _SIDES.format(
        population=Population._meta.db_table, generator=Generator._meta.db_table, prompt=Prompt._meta.db_table
    )
    found = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [comparison.left_population_id, comparison.right_population_id])
        for pk, generator_id, name, display_name, standin, category in cursor.fetchall():
            label = Generator(name=name, display_name=display_name).label
            found[pk] = (generator_id, RevealedSide(name, label, bool(standin)), category)
    (left_id, left, category), (right_id, right, _) = (
        found[comparison.left_population_id],
        found[comparison.right_population_id],
    )
    return _Sides(left=left, right=right, left_generator_id=left_id, right_generator_id=right_id, category=category)


@transaction.atomic
def cast_votes(
    *, token: str, participant: Participant, votes: list[VoteInput], dwell_ms: int, now: datetime | None = None
) -> Reveal:
    """Record one vote per criterion of the comparison, all or none, and reveal its generators."""
    now = now or timezone.now()
    comparison = held_comparison(token=token, participant=participant, now=now)
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
    Vote.objects.bulk_create(
        Vote(comparison=comparison, criterion_id=criteria[v.criterion], choice=v.choice, dwell_ms=dwell_ms)
        for v in votes
    )
    comparison.status = Comparison.Status.VOTED
    comparison.voted_at = now
    comparison.save(update_fields=["status", "voted_at"])
    # Flagged and simulated participants' votes are kept and marked, but leaderboards leave them out;
    # gold checks and side-swapped repeats measure the participant, not the generators.
    sides = _sides(comparison)
    if comparison.counts(participant):
        record_tallies(
            campaign_id=comparison.campaign_id,
            left=sides.left_generator_id,
            right=sides.right_generator_id,
            category=sides.category,
            criteria=criteria,
            answers=[(v.criterion, v.choice) for v in votes],
        )
        keys = [v.criterion for v in votes]
        transaction.on_commit(partial(announce_leaderboard_change, comparison.campaign.slug, keys))
    # Under the participant's row lock (a quota) the count before this vote is exact, so this one adds one.
    votes_cast = (
        voted + 1
        if voted is not None
        else Comparison.objects.filter(
            campaign_id=comparison.campaign_id, participant=participant, status=Comparison.Status.VOTED
        ).count()
    )
    return Reveal(left=sides.left, right=sides.right, votes_cast=votes_cast, campaign=comparison.campaign)
