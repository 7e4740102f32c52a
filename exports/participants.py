"""Who the votes came from, as the consent allows: consent versions, the questionnaire, answers, withdrawals.

Answers go into an export only where the campaign asked consent, and only for participants whose latest
decision accepted it (a campaign without consent text never asked to share them); always as a separate table
keyed by the export's hashed participant id, with groups under the campaign's k suppressed
(exports/writers/answers_csv.py). Participants who withdrew are in no table, only in the counts.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from annotation.consent import consent_version_at, get_acceptances, get_consent_versions
from annotation.models import Campaign, CampaignParticipation, ConsentDecision, Question
from annotation.selectors import get_participant_answers
from exports.rows import ParticipantHasher
from exports.writers.answers_csv import ANSWERS_FILE, suppress_small_groups, write_answers
from exports.writers.votes_csv import ConsentLookup


def consent_lookup(campaign: Campaign) -> ConsentLookup | None:
    """The consent version in force for a participant's vote at a time, or None when the campaign never asked."""
    if not campaign.consent_version:
        return None
    history = get_acceptances(campaign=campaign)

    def lookup(participant_id: int, voted_at: str) -> int | None:
        return consent_version_at(history.get(participant_id), datetime.fromisoformat(voted_at))

    return lookup


def _consenting(campaign: Campaign) -> set[int]:
    """Participants whose latest consent decision in the campaign accepted it (withdrawals add a decline)."""
    latest: dict[int, bool] = {}
    rows = ConsentDecision.objects.filter(campaign=campaign).order_by("decided_at", "id")
    for participant_id, accepted in rows.values_list("participant_id", "accepted"):
        latest[participant_id] = accepted
    return {pk for pk, accepted in latest.items() if accepted}


def write_participants(folder: Path, campaign: Campaign, hasher: ParticipantHasher) -> dict[str, Any]:
    """Write participants.csv where the consent allows; returns the manifest's `participants` section."""
    k = campaign.min_group_size
    questions = list(Question.objects.filter(campaign=campaign).order_by("position", "key", "version"))
    keys = list(dict.fromkeys(q.key for q in questions if q.is_current))
    withdrawn = CampaignParticipation.objects.filter(campaign=campaign, withdrawn_at__isnull=False).count()
    section: dict[str, Any] = {
        "withdrawn": withdrawn,
        "min_group_size": k,
        "consent": {
            "asked": campaign.asks_consent,
            "current_version": campaign.consent_version or None,
            "versions": [
                {"version": v.version, "created_at": v.created_at.isoformat()}
                for v in get_consent_versions(campaign=campaign)
            ],
        },
        "questionnaire": [
            {
                "key": q.key,
                "version": q.version,
                "current": q.is_current,
                "text": q.text,
                "kind": q.kind,
                "choices": q.offered_choices,
                "min_value": q.min_value,
                "max_value": q.max_value,
                "required": q.required,
                "sensitive": q.sensitive,
            }
            for q in questions
        ],
        "answers_file": None,
        "answers_rows": 0,
        "composition": {},
        "suppressed_groups": {},
    }
    if not keys:
        return section
    if not campaign.asks_consent:
        section["answers_left_out"] = "the campaign asked no consent to share answers"
        return section
    consenting = _consenting(campaign)
    answers = {hasher.hex(pk): given for pk, given in get_participant_answers(campaign).items() if pk in consenting}
    table = suppress_small_groups(answers, keys, k)
    section["answers_file"] = ANSWERS_FILE
    section["answers_rows"] = write_answers(folder, table)
    section["composition"] = table.composition
    section["suppressed_groups"] = table.suppressed
    return section
