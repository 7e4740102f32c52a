"""Writes of a participant's standing in one campaign: quality flags, the crowd platform's verdict, what counts.

Every change of what counts in a campaign goes through here and rebuilds that campaign's pair tallies
in the same transaction (arena.tallies.recount_tallies), so a board never counts a vote its own rule
leaves out: the quality review, the admin (a form or a bulk action), the reconciliation import and the
campaign's `count_only_reconciled` switch all call these services.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation import reconciliation
from annotation.crowd import MTURK, PROLIFIC, CrowdEntry
from annotation.models import (
    Answer,
    Campaign,
    CampaignParticipation,
    ConsentDecision,
    CrowdAssignment,
    Participant,
    PlatformStatus,
    WithdrawnBy,
)
from annotation.services import assignment_hash, crowd_provider, hash_external_id
from arena.tallies import recount_tallies
from core.errors import ApplicationError, NotFound


def _participations(campaign: Campaign, participant_ids: Iterable[int]) -> dict[int, CampaignParticipation]:
    """The campaign's rows of these participants, locked, made where missing (a row is created when needed)."""
    ids = sorted(set(participant_ids))
    rows = {
        row.participant_id: row
        for row in CampaignParticipation.objects.select_for_update().filter(campaign=campaign, participant_id__in=ids)
    }
    missing = [pk for pk in ids if pk not in rows]
    if missing:
        known = set(Participant.objects.filter(pk__in=missing).values_list("pk", flat=True))
        unknown = [pk for pk in missing if pk not in known]
        if unknown:
            raise ApplicationError(f"no participant with id {unknown[0]}")
        CampaignParticipation.objects.bulk_create(
            [CampaignParticipation(campaign=campaign, participant_id=pk) for pk in missing], ignore_conflicts=True
        )
        rows.update(
            {
                row.participant_id: row
                for row in CampaignParticipation.objects.select_for_update().filter(
                    campaign=campaign, participant_id__in=missing
                )
            }
        )
    return rows


@transaction.atomic
def set_flags(*, campaign: Campaign, flags: Mapping[int, str | None], keep_reasons: bool = False) -> int:
    """Flag participants in `campaign` (participant id -> reason) or clear their flag (-> None); returns how many
    changed flag. Other campaigns are untouched: a flag is a fact about a participant's work in one campaign.

    With `keep_reasons` an already flagged participant keeps the reason they were flagged for (the quality
    review flags anew each time it runs). The campaign's tallies are recounted when any flag changed.
    """
    changed = 0
    rows = _participations(campaign, flags)
    updated: list[CampaignParticipation] = []
    for participant_id, reason in flags.items():
        row = rows[participant_id]
        flagged = reason is not None
        new_reason = (reason or "") if not (keep_reasons and row.is_flagged and flagged) else row.flag_reason
        if row.is_flagged == flagged and row.flag_reason == new_reason:
            continue
        changed += row.is_flagged != flagged
        row.is_flagged, row.flag_reason, row.updated_at = flagged, new_reason, timezone.now()
        updated.append(row)
    CampaignParticipation.objects.bulk_update(updated, ["is_flagged", "flag_reason", "updated_at"], batch_size=500)
    if changed:
        recount_tallies(campaign=campaign)
    return changed


@transaction.atomic
def set_count_only_reconciled(*, campaign: Campaign, value: bool) -> Campaign:
    """Count only participants the crowd platform approved or holds for review (True), or everyone in good standing."""
    if campaign.count_only_reconciled != value:
        campaign.count_only_reconciled = value
        campaign.save(update_fields=["count_only_reconciled", "updated_at"])
        recount_tallies(campaign=campaign)
    return campaign


@dataclass(frozen=True)
class ReconcileResult:
    """What an import found: participants of the campaign per platform status, and the record's rows we lack."""

    platform: str
    rows: int
    participants: dict[str, int] = field(default_factory=dict)  # status value -> participants marked so
    not_ours: int = 0  # workers in the platform's record who never took part here

    def lines(self) -> list[str]:
        labels = dict(PlatformStatus.choices)
        marked = ", ".join(f"{n} {labels[status]}" for status, n in sorted(self.participants.items()) if n)
        return [
            f"{self.rows} row(s) of {self.platform}'s record read",
            f"participants of this campaign: {marked or 'none'}",
            f"{self.not_ours} worker(s) in the record never took part here",
        ]


# When a worker has several rows (MTurk: assignments of several HITs), the one of the assignment they did this
# campaign on decides; without it, the most favourable, since any of them shows the platform knows the worker.
_PRECEDENCE = {
    reconciliation.APPROVED: 0,
    reconciliation.AWAITING_REVIEW: 1,
    reconciliation.ACTIVE: 2,
    reconciliation.RETURNED: 3,
    reconciliation.REJECTED: 4,
}


def campaign_crowd_participants(*, campaign: Campaign, platform: str) -> list[Participant]:
    """Participants from `platform` who took part in `campaign`: admitted to it or holding its comparisons."""
    took_part = Q(pk__in=CrowdAssignment.objects.filter(campaign=campaign).values("participant_id"))
    took_part |= Q(pk__in=campaign.comparisons.values("participant_id"))
    return list(Participant.objects.filter(took_part, kind=platform).only("pk", "kind", "external_id_hash"))


@transaction.atomic
def reconcile_crowd(
    *, campaign: Campaign, record: reconciliation.PlatformRecord, now: datetime | None = None
) -> ReconcileResult:
    """Mark each of the campaign's participants from the record's platform with what the record says of them.

    Rows are matched by the keyed hash of the worker id, the one crowd entry uses (hash_external_id): the
    raw ids of the file are never stored. A participant of ours that the record lacks is UNKNOWN: the
    platform has no submission of theirs for this study (an invented PROLIFIC_PID or workerId, say).
    The campaign's tallies are recounted. The whole import is one transaction: all or none.
    """
    provider = crowd_provider(campaign)
    if provider is not None and provider != record.platform:
        raise ApplicationError(
            f"this is {record.platform}'s record, but campaign {campaign.slug!r} admits participants from {provider}"
        )
    now = now or timezone.now()
    by_hash: dict[str, list[reconciliation.PlatformRow]] = {}
    for row in record.rows:
        by_hash.setdefault(hash_external_id(record.platform, row.worker), []).append(row)
    participants = campaign_crowd_participants(campaign=campaign, platform=record.platform)
    current = dict(
        CrowdAssignment.objects.filter(campaign=campaign, participant__in=participants).values_list(
            "participant_id", "assignment_hash"
        )
    )
    statuses: dict[int, str] = {}
    for participant in participants:
        rows = by_hash.get(participant.external_id_hash)
        if not rows:
            statuses[participant.pk] = reconciliation.UNKNOWN
            continue
        theirs = [
            r
            for r in rows
            if assignment_hash(CrowdEntry(record.platform, r.worker, r.assignment, "")) == current.get(participant.pk)
        ]
        statuses[participant.pk] = min(theirs or rows, key=lambda r: _PRECEDENCE[r.status]).status
    participations = _participations(campaign, statuses)
    for participant_id, status in statuses.items():
        participation = participations[participant_id]
        participation.platform_status, participation.reconciled_at, participation.updated_at = status, now, now
    CampaignParticipation.objects.bulk_update(
        list(participations.values()), ["platform_status", "reconciled_at", "updated_at"], batch_size=500
    )
    recount_tallies(campaign=campaign)
    counted: dict[str, int] = {}
    for status in statuses.values():
        counted[status] = counted.get(status, 0) + 1
    ours = {p.external_id_hash for p in participants}
    return ReconcileResult(
        platform=record.platform,
        rows=len(record.rows),
        participants=counted,
        not_ours=sum(1 for worker in by_hash if worker not in ours),
    )


def import_platform_record(*, campaign: Campaign, data: bytes) -> ReconcileResult:
    """Read a platform's CSV record (annotation.reconciliation) and reconcile the campaign with it; all or none.

    A file that cannot be read is refused with an ApplicationError naming its row and column; nothing changes.
    """
    try:
        record = reconciliation.parse_record(data)
    except reconciliation.RecordError as exc:
        raise ApplicationError(f"the platform's record cannot be read: {exc}", code="bad_record") from None
    return reconcile_crowd(campaign=campaign, record=record)


# --- withdrawal ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WithdrawalResult:
    participant_id: int
    withdrawn_at: datetime
    already: bool  # they had withdrawn before: nothing changed
    answers_deleted: int


@transaction.atomic
def withdraw_participant(
    *,
    campaign: Campaign,
    participant: Participant,
    by: str,
    note: str = "",
    now: datetime | None = None,
) -> WithdrawalResult:
    """Take `participant` out of `campaign`: their votes leave every board, tally and later export, their
    questionnaire answers are deleted, their consent is recorded as declined, and the change is recorded on
    their CampaignParticipation (when, by whom, the staff's note). The campaign's tallies are recounted.

    Withdrawing again changes nothing. Their votes stay stored (comparisons and quality checks refer to them)
    but no reader counts them (arena.models' counting rule); export manifests say how many withdrew.
    """
    if by not in WithdrawnBy.values:
        raise ApplicationError(f"by must be one of {', '.join(WithdrawnBy.values)}, not {by!r}")
    if len(note) > 500:
        raise ApplicationError("the note is at most 500 characters")
    row = _participations(campaign, [participant.pk])[participant.pk]
    if row.withdrawn_at is not None:
        return WithdrawalResult(participant.pk, row.withdrawn_at, already=True, answers_deleted=0)
    now = now or timezone.now()
    row.withdrawn_at, row.withdrawn_by, row.withdrawal_note, row.updated_at = now, by, note.strip(), now
    row.save(update_fields=["withdrawn_at", "withdrawn_by", "withdrawal_note", "updated_at"])
    deleted, _ = Answer.objects.filter(response__campaign=campaign, response__participant=participant).delete()
    if campaign.consent_version:
        ConsentDecision.objects.create(
            campaign=campaign, participant=participant, version=campaign.consent_version, accepted=False, decided_at=now
        )
    recount_tallies(campaign=campaign)
    return WithdrawalResult(participant.pk, now, already=False, answers_deleted=deleted)


def find_campaign_participant(*, campaign: Campaign, hashed_id: str = "", worker_id: str = "") -> Participant:
    """The participant of `campaign` a withdrawal request names: by the crowd's hashed id (Participant's
    external_id_hash), or by the raw Prolific or MTurk worker id, hashed here as crowd entry hashes it (the raw
    id is never stored). NotFound when no participant of the campaign has it."""
    hashed_id, worker_id = hashed_id.strip().lower(), worker_id.strip()
    if bool(hashed_id) == bool(worker_id):
        raise ApplicationError("give either the participant's hashed id or their worker id, not both or neither")
    candidates = [hashed_id]
    if worker_id:
        candidates = [hash_external_id(provider, worker_id) for provider in (PROLIFIC, MTURK)]
    took_part = Q(pk__in=CrowdAssignment.objects.filter(campaign=campaign).values("participant_id"))
    took_part |= Q(pk__in=campaign.comparisons.values("participant_id"))
    participant = Participant.objects.filter(took_part, external_id_hash__in=candidates).first()
    if participant is None:
        raise NotFound(f"no participant of campaign {campaign.slug!r} has this id")
    return participant


def count_withdrawn(*, campaign: Campaign) -> int:
    return CampaignParticipation.objects.filter(campaign=campaign, withdrawn_at__isnull=False).count()
