"""Who may vote in a campaign: the one gate that the vote page, the JSON API and the queue WebSocket pass.

Looking (a campaign's existence, its leaderboard) is `admit_to_campaign`'s rule. Voting asks more of a
Prolific or MTurk campaign: the session must have arrived with that platform's complete entry (an MTurk
preview may look, never vote), so a paid study's data cannot be filled by anyone who has its URL.
Then `require_first_steps`: what the campaign asks of a participant before any comparison.
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase

from annotation.consent import require_consent
from annotation.models import Campaign, Participant
from annotation.questionnaire import require_questionnaire
from annotation.services import (
    AlreadyTookPart,
    CrowdOnly,
    admit_to_campaign,
    crowd_entry_for,
    crowd_provider,
    enter_crowd,
    get_crowd_admission,
    holds_current_assignment,
    resolve_participant,
)
from arena import quota
from arena.selectors import count_votes_cast
from core.errors import ApplicationError


def quota_reached(campaign: Campaign, participant: Participant) -> bool:
    return quota.reached(campaign, count_votes_cast(campaign=campaign, participant=participant))


def admit_to_vote(
    *,
    campaign: Campaign,
    session: SessionBase,
    user: AbstractBaseUser | AnonymousUser,
    entry_params: dict[str, str] | None = None,
    invite: str | None = None,
    known: Participant | None = None,
) -> Participant:
    """The participant who votes in `campaign` from this session; NotFound, CrowdOnly or AlreadyTookPart if none.

    A crowd arrival (its URL parameters) is admitted once per session; later requests of that session
    vote as the worker it admitted. Public and invite campaigns take whoever `resolve_participant` finds,
    or `known`, the participant this request already resolved (it saves the lookup on the vote path).
    """
    admit_to_campaign(campaign=campaign, session=session, invite=invite)
    entry = crowd_entry_for(campaign=campaign, params=entry_params or {})
    if entry is not None:
        return enter_crowd(
            campaign=campaign, session=session, entry=entry, quota_reached=lambda p: quota_reached(campaign, p)
        )
    provider = crowd_provider(campaign)
    if provider is None:
        return known if known is not None else resolve_participant(session=session, user=user)
    admission = get_crowd_admission(campaign=campaign, session=session)
    participant = (
        None if admission is None else Participant.objects.filter(pk=admission["participant"], kind=provider).first()
    )
    if participant is None:
        raise CrowdOnly(campaign)
    return participant


def require_first_steps(*, campaign: Campaign, participant: Participant, session: SessionBase) -> None:
    """What `campaign` asks of `participant` before any comparison is issued or voted on: its consent
    (403 consent_required / consent_declined), then its questionnaire when asked first (403
    questionnaire_required). Every issue and vote of the JSON API passes here, as the vote page does through
    arena.participant_views.gate_page, so neither step can be skipped by calling the API directly. No query on a
    campaign that asks neither; the session keeps what was done."""
    require_consent(campaign=campaign, participant=participant, session=session)
    require_questionnaire(campaign=campaign, participant=participant, session=session)


def admit_to_complete(
    *, campaign: Campaign, session: SessionBase, user: AbstractBaseUser | AnonymousUser
) -> Participant:
    """The participant whose completion step this session may see: a crowd worker only on their current assignment."""
    participant = admit_to_vote(campaign=campaign, session=session, user=user)
    admission = get_crowd_admission(campaign=campaign, session=session)
    if admission is not None and not holds_current_assignment(
        campaign=campaign, participant=participant, admission=admission
    ):
        raise AlreadyTookPart(campaign)
    return participant


def may_vote(*, campaign: Campaign, session: SessionBase) -> bool:
    """Whether this session already holds a participant admitted to vote in `campaign`; creates nothing."""
    try:
        admit_to_campaign(campaign=campaign, session=session)
    except ApplicationError:
        return False
    if crowd_provider(campaign) is None:
        return True
    return get_crowd_admission(campaign=campaign, session=session) is not None
