"""A participant's turn: a vote on the comparison they hold and, when they ask, the next comparison at once.

The use case behind `POST /api/v1/comparisons/TOKEN/votes` (the API parses the body and renders the outcome): the
vote is recorded first and committed on its own, so a next comparison that cannot be issued (nothing ready, the
quota reached, the campaign paused) never undoes it; the outcome then says why there is no next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase

from annotation.models import Participant
from arena.admission import admit_to_vote, require_first_steps
from arena.issuing import issue_comparison
from arena.selectors import get_comparison_payload
from arena.voting import Reveal, VoteInput, cast_votes
from core.errors import ApplicationError


@dataclass(frozen=True)
class NextWanted:
    """The participant asked for the next comparison with their vote, leaving out these tokens (those on screen)."""

    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class TurnOutcome:
    """The vote's reveal; and, where the next comparison was asked for, its payload or why none was issued."""

    reveal: Reveal
    next: dict[str, Any] | None = None
    next_error: ApplicationError | None = None


def take_turn(
    *,
    token: str,
    participant: Participant,
    votes: list[VoteInput],
    dwell_ms: int,
    session: SessionBase,
    user: AbstractBaseUser | AnonymousUser,
    client: str | None,
    next_wanted: NextWanted | None = None,
) -> TurnOutcome:
    """Vote as `participant` on the comparison under `token` (arena.voting.cast_votes: all or none, or an
    ApplicationError), then, with `next_wanted`, issue their next comparison as comparisons/next would."""
    reveal = cast_votes(
        token=token,
        participant=participant,
        votes=votes,
        dwell_ms=dwell_ms,
        first_steps=lambda campaign: require_first_steps(campaign=campaign, participant=participant, session=session),
    )
    if next_wanted is None:
        return TurnOutcome(reveal=reveal)
    try:
        campaign = reveal.campaign
        admitted = admit_to_vote(campaign=campaign, session=session, user=user, known=participant)
        require_first_steps(campaign=campaign, participant=admitted, session=session)
        following = issue_comparison(
            campaign=campaign, participant=admitted, exclude_tokens=next_wanted.exclude, client=client
        )
    except ApplicationError as refused:
        return TurnOutcome(reveal=reveal, next_error=refused)
    payload = get_comparison_payload(comparison=following, participant=admitted, votes_cast=reveal.votes_cast)
    return TurnOutcome(reveal=reveal, next=payload)
