"""Consent: a campaign's text shown before the first comparison, each participant's decision, and the gate.

A campaign with consent text (`Campaign.consent_text`) issues comparisons only to participants whose latest
decision accepted its current version (`Campaign.consent_version`); before it, `comparisons/next` answers 403
`consent_required`. The gate is on the issue path, so it costs nothing on campaigns without consent text, and
at most one query on those with it: an acceptance, once read, is kept in the session beside the version it
was given for (a new version of the text asks again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.utils import timezone
from markdown_it import MarkdownIt

from annotation.models import (
    Campaign,
    CampaignParticipation,
    ConsentDecision,
    ConsentVersion,
    Participant,
    QuestionnaireTiming,
)
from core.errors import ApplicationError, Conflict, Forbidden


class ConsentRequired(Forbidden):
    """The campaign asks consent, and this participant has not accepted its current version."""

    def __init__(self, campaign: Campaign) -> None:
        super().__init__(
            f"{campaign.title!r} asks for your consent before the first comparison: read it and accept "
            f"(POST /api/v1/campaigns/{campaign.slug}/consent with accept and version {campaign.consent_version}).",
            code="consent_required",
        )


class ConsentDeclined(Forbidden):
    """The participant declined (or withdrew): their participation in the campaign has ended."""

    def __init__(self, campaign: Campaign) -> None:
        super().__init__(
            f"You declined the consent of {campaign.title!r} or withdrew from it, so you take no further part in it. "
            "Thank you for your time.",
            code="consent_declined",
        )


def _session_key(campaign: Campaign) -> str:
    return f"consent:{campaign.pk}"


def _latest(campaign: Campaign, participant: Participant) -> tuple[int, bool] | None:
    return (
        ConsentDecision.objects.filter(campaign=campaign, participant=participant)
        .order_by("-decided_at", "-id")
        .values_list("version", "accepted")
        .first()
    )


def require_consent(*, campaign: Campaign, participant: Participant, session: SessionBase) -> None:
    """Raise ConsentRequired (or ConsentDeclined) unless `participant` accepted the campaign's current consent
    (ConsentDeclined too when they withdrew from this session).

    No query on a campaign without consent text; one the first time in a session, none after an acceptance
    (the session keeps the participant and version it was given for).
    """
    if session.get(_withdrawn_key(campaign)) == participant.pk:
        raise ConsentDeclined(campaign)
    if not campaign.asks_consent:
        return
    if session.get(_session_key(campaign)) == [participant.pk, campaign.consent_version]:
        return
    latest = _latest(campaign, participant)
    if latest is not None and latest[1] and latest[0] == campaign.consent_version:
        session[_session_key(campaign)] = [participant.pk, campaign.consent_version]
        return
    if latest is not None and not latest[1]:
        raise ConsentDeclined(campaign)
    raise ConsentRequired(campaign)


def _withdrawn_key(campaign: Campaign) -> str:
    return f"withdrawn:{campaign.pk}"


def forget_consent(*, campaign: Campaign, session: SessionBase, withdrawn: Participant | None = None) -> None:
    """Drop the acceptance this session keeps; after a withdrawal from this session, remember it (no query
    then refuses the next comparison, on campaigns with or without consent text)."""
    session.pop(_session_key(campaign), None)
    if withdrawn is not None:
        session[_withdrawn_key(campaign)] = withdrawn.pk


@dataclass(frozen=True)
class ConsentState:
    """What a participant is shown: the current text and version, and their standing towards it."""

    version: int
    text: str
    html: str
    accepted: bool
    declined: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "text": self.text,
            "html": self.html,
            "accepted": self.accepted,
            "declined": self.declined,
        }


# Raw HTML in the text is shown as text, never rendered ("js-default": no HTML, links checked).
_MARKDOWN = MarkdownIt("js-default")


def render_consent(text: str) -> str:
    """The consent text's Markdown as HTML; any HTML written in it is escaped, not rendered."""
    return _MARKDOWN.render(text)


def get_consent_state(*, campaign: Campaign, participant: Participant | None) -> ConsentState | None:
    """The campaign's consent as `participant` should see it, or None when the campaign asks none."""
    if not campaign.asks_consent:
        return None
    latest = None if participant is None else _latest(campaign, participant)
    return ConsentState(
        version=campaign.consent_version,
        text=campaign.consent_text,
        html=render_consent(campaign.consent_text),
        accepted=latest is not None and latest[1] and latest[0] == campaign.consent_version,
        declined=latest is not None and not latest[1],
    )


@dataclass(frozen=True)
class ConsentResult:
    accepted: bool
    version: int
    decided_at: datetime


@transaction.atomic
def record_consent(
    *,
    campaign: Campaign,
    participant: Participant,
    accept: bool,
    version: int,
    session: SessionBase | None = None,
    now: datetime | None = None,
) -> ConsentResult:
    """Record `participant`'s decision on version `version` of the campaign's consent; returns what was recorded.

    Refused, changing nothing: a campaign without consent text (400 no_consent), a version other than the
    current one (409 consent_version: the text changed since it was shown), and a participant who withdrew
    from the campaign or declined before (403 consent_declined: ending participation is final here; they may
    take part again only through the researcher). Accepting again what was accepted records nothing new.
    """
    if not campaign.asks_consent:
        raise ApplicationError(f"campaign {campaign.slug!r} asks no consent", code="no_consent")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ApplicationError("version must be a positive whole number: the consent version you were shown")
    current = campaign.consent_version
    if version != current:
        raise Conflict(
            f"you were shown version {version} of the consent, but the current version is {current}: "
            "read it again before answering",
            code="consent_version",
        )
    now = now or timezone.now()
    withdrawn = CampaignParticipation.objects.filter(
        campaign=campaign, participant=participant, withdrawn_at__isnull=False
    ).exists()
    latest = _latest(campaign, participant)
    if withdrawn or (latest is not None and not latest[1]):
        raise ConsentDeclined(campaign)
    if latest is not None and latest[1] and latest[0] == version and accept:
        decided_at = (
            ConsentDecision.objects.filter(campaign=campaign, participant=participant, version=version, accepted=True)
            .order_by("-decided_at")
            .values_list("decided_at", flat=True)
            .first()
        )
        return ConsentResult(accepted=True, version=version, decided_at=decided_at or now)
    ConsentDecision.objects.create(
        campaign=campaign, participant=participant, version=version, accepted=accept, decided_at=now
    )
    if session is not None:
        if accept:
            session[_session_key(campaign)] = [participant.pk, version]
        else:
            forget_consent(campaign=campaign, session=session)
    return ConsentResult(accepted=accept, version=version, decided_at=now)


def get_consent_versions(*, campaign: Campaign) -> list[ConsentVersion]:
    return list(ConsentVersion.objects.filter(campaign=campaign).order_by("version"))


def get_acceptances(*, campaign: Campaign) -> dict[int, list[tuple[datetime, int]]]:
    """Each participant's acceptances in the campaign, in time order: participant id -> [(time, version)].

    A vote was given under the version of the latest acceptance before it (`consent_version_at`).
    """
    rows = (
        ConsentDecision.objects.filter(campaign=campaign, accepted=True)
        .order_by("decided_at", "id")
        .values_list("participant_id", "decided_at", "version")
    )
    history: dict[int, list[tuple[datetime, int]]] = {}
    for participant_id, decided_at, version in rows:
        history.setdefault(participant_id, []).append((decided_at, version))
    return history


def consent_version_at(history: list[tuple[datetime, int]] | None, when: datetime) -> int | None:
    """The consent version in force for a vote cast at `when`: the latest acceptance at or before it."""
    found = None
    for decided_at, version in history or ():
        if decided_at > when:
            break
        found = version
    return found


@transaction.atomic
def set_participation_settings(
    *, campaign: Campaign, consent_text: str, questionnaire_timing: str, min_group_size: int
) -> Campaign:
    """Change the campaign's consent text (a change makes a new version: Campaign.save), when its questionnaire
    is asked, and its k for small groups. ApplicationError naming the field when a value is out of range."""
    if questionnaire_timing not in QuestionnaireTiming.values:
        raise ApplicationError(f"questionnaire_timing: one of {', '.join(QuestionnaireTiming.values)}")
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int) or not 2 <= min_group_size <= 1000:
        raise ApplicationError("min_group_size: a whole number from 2 to 1000")
    if len(consent_text) > 20_000:
        raise ApplicationError("consent_text: at most 20,000 characters")
    campaign.consent_text = consent_text.replace("\r\n", "\n").strip()
    campaign.questionnaire_timing = questionnaire_timing
    campaign.min_group_size = min_group_size
    campaign.save(update_fields=["consent_text", "questionnaire_timing", "min_group_size", "updated_at"])
    return campaign
