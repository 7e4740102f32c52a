"""Pure rules of a crowd arrival: which URL parameters make a Prolific or MTurk entry, and what each one names.

Prolific sends `PROLIFIC_PID`, `STUDY_ID` and `SESSION_ID`; MTurk frames the task with `workerId`,
`assignmentId`, `hitId` and `turkSubmitTo`, and while a worker only previews a HIT it sends
`assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`. An entry is complete only with every identifying
parameter, so a visitor who types the bare campaign URL, or adds one made-up parameter, is no
crowd worker. No Django here: the services decide what an entry admits to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROLIFIC = "prolific"
MTURK = "mturk"

PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
MTURK_PARAMS = ("workerId", "assignmentId", "hitId", "turkSubmitTo")
# Parameters an entry must carry, per provider; turkSubmitTo is checked when the work is handed back.
REQUIRED_PARAMS = {PROLIFIC: PROLIFIC_PARAMS, MTURK: MTURK_PARAMS[:3]}
# What MTurk sends as assignmentId while a worker only previews the HIT (before accepting it).
MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"


@dataclass(frozen=True)
class CrowdEntry:
    """One arrival from a crowd platform.

    `assignment` is the unit of paid work (MTurk's assignmentId, Prolific's SESSION_ID): a worker
    completes a campaign once, on one assignment. `study` is Prolific's STUDY_ID or MTurk's hitId.
    """

    provider: str
    worker: str
    assignment: str
    study: str
    submit_to: str = ""


def is_mturk_preview(params: Mapping[str, str]) -> bool:
    """A worker previewing a HIT: the task may be shown read-only; nothing is created."""
    return params.get("assignmentId") == MTURK_PREVIEW_ASSIGNMENT


def missing_params(provider: str, params: Mapping[str, str]) -> list[str]:
    """The parameters a `provider` entry needs that `params` lacks (empty values count as missing)."""
    return [name for name in REQUIRED_PARAMS[provider] if not params.get(name, "").strip()]


def parse_entry(provider: str, params: Mapping[str, str]) -> CrowdEntry | None:
    """The complete `provider` entry in `params`, or None (incomplete, or an MTurk preview)."""
    if missing_params(provider, params):
        return None
    if provider == PROLIFIC:
        return CrowdEntry(PROLIFIC, params["PROLIFIC_PID"], params["SESSION_ID"], params["STUDY_ID"])
    if is_mturk_preview(params):
        return None
    return CrowdEntry(
        MTURK, params["workerId"], params["assignmentId"], params["hitId"], params.get("turkSubmitTo", "")
    )


def parse_any_entry(params: Mapping[str, str]) -> CrowdEntry | None:
    """A complete entry of either provider, Prolific first; None when there is none."""
    return parse_entry(PROLIFIC, params) or parse_entry(MTURK, params)
