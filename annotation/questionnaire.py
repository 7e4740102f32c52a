"""The questionnaire: campaign-defined questions, participants' answers (asked here or imported from Prolific).

Answers are checked here, server-side, whatever sent them (the page's form, the JSON API, an import): a choice
among the question's options, several distinct ones, a number in the question's range, a short text; a
required question must be answered; a sensitive one always accepts "prefer not to say". Submitting is all or
none, and a participant is asked once per campaign. A question is edited in place while nobody has answered
it; once answers exist, an edit makes a new version (and old answers keep theirs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation import reconciliation
from annotation.models import (
    MAX_TEXT_ANSWER,
    PREFER_NOT_TO_SAY,
    Answer,
    AnswerSource,
    Campaign,
    CampaignParticipation,
    CrowdAssignment,
    Participant,
    ParticipantKind,
    Question,
    QuestionKind,
    QuestionnaireResponse,
    QuestionnaireTiming,
)
from annotation.selectors import AnswerValue, current_question_ids, get_current_questions
from annotation.services import hash_external_id
from core.errors import ApplicationError, Conflict, Forbidden

MAX_QUESTIONS = 50
MAX_CHOICES = 100
MAX_CHOICE_LENGTH = 200


class QuestionnaireInvalid(ApplicationError):
    """Answers that cannot be stored: `errors` maps each question key (or "answers") to what is wrong."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        listed = "; ".join(f"{key}: {message}" for key, message in self.errors.items())
        super().__init__(f"the questionnaire's answers cannot be stored ({listed})", code="invalid_answers")


class AnswerError(ValueError):
    """One answer that does not fit its question."""


def _missing(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip()) or (isinstance(raw, list) and not raw)


def _choice(question: Question, raw: object) -> str:
    if not isinstance(raw, str):
        raise AnswerError("expected one of the options, as text")
    value = raw.strip()
    if value not in question.offered_choices:
        raise AnswerError(f"{value[:60]!r} is not one of the options ({', '.join(question.offered_choices)})")
    return value


def _single(question: Question, raw: object) -> AnswerValue:
    return _choice(question, raw)


def _multiple(question: Question, raw: object) -> AnswerValue:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise AnswerError("expected a list of options")
    values = [_choice(question, item) for item in items]
    if len(set(values)) != len(values):
        raise AnswerError("an option is chosen twice")
    if PREFER_NOT_TO_SAY in values and len(values) > 1:
        raise AnswerError(f"{PREFER_NOT_TO_SAY!r} goes alone, without other options")
    return [choice for choice in question.offered_choices if choice in values]  # in the question's order


def _number(question: Question, raw: object) -> AnswerValue:
    if question.sensitive and raw == PREFER_NOT_TO_SAY:
        return PREFER_NOT_TO_SAY
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise AnswerError("expected a number")
    try:
        number = float(raw.strip()) if isinstance(raw, str) else float(raw)
    except ValueError:
        raise AnswerError(f"{str(raw)[:60]!r} is not a number") from None
    if not math.isfinite(number):
        raise AnswerError("expected a finite number")
    low, high = question.min_value, question.max_value
    if (low is not None and number < low) or (high is not None and number > high):
        raise AnswerError(f"{number:g} is outside the range {_range(question)}")
    return int(number) if number.is_integer() else number


def _text(question: Question, raw: object) -> AnswerValue:
    if not isinstance(raw, str):
        raise AnswerError("expected text")
    value = " ".join(raw.split())
    if len(value) > MAX_TEXT_ANSWER:
        raise AnswerError(f"at most {MAX_TEXT_ANSWER} characters, not {len(value)}")
    if any(ord(ch) < 32 or ch in "\x7f\ufffe\uffff" for ch in value):
        raise AnswerError("the text holds control characters")
    return value


def _range(question: Question) -> str:
    low = "" if question.min_value is None else f"{question.min_value:g}"
    high = "" if question.max_value is None else f"{question.max_value:g}"
    return f"{low or '-inf'} to {high or 'inf'}"


# Each kind's check: the raw answer (JSON or a form's strings) -> the stored value, or AnswerError.
CHECKS: dict[str, Callable[[Question, object], AnswerValue]] = {
    QuestionKind.SINGLE: _single,
    QuestionKind.MULTIPLE: _multiple,
    QuestionKind.NUMBER: _number,
    QuestionKind.TEXT: _text,
}


def clean_answer(question: Question, raw: object) -> AnswerValue | None:
    """The value to store for `raw`, None for no answer to an optional question; AnswerError when it does not fit."""
    if _missing(raw):
        if question.required:
            hint = f' (or "{PREFER_NOT_TO_SAY}")' if question.sensitive else ""
            raise AnswerError(f"this question needs an answer{hint}")
        return None
    return CHECKS[question.kind](question, raw)


# --- asking ------------------------------------------------------------------------------------------------------


def get_pending_questions(*, campaign: Campaign, participant: Participant) -> list[Question]:
    """The current questions `participant` is still to be asked in `campaign`: none once they submitted the
    questionnaire here (asked once), nor those an import already answered (matched by key)."""
    response = QuestionnaireResponse.objects.filter(campaign=campaign, participant=participant).first()
    if response is not None and response.asked_at is not None:
        return []
    answered = (
        set()
        if response is None
        else set(Answer.objects.filter(response=response).values_list("question__key", flat=True))
    )
    return [q for q in get_current_questions(campaign=campaign) if q.key not in answered]


class QuestionnaireRequired(Forbidden):
    """The campaign asks its questionnaire before the first comparison, and this participant has not answered it."""

    def __init__(self, campaign: Campaign, pending: list[Question]) -> None:
        super().__init__(
            f"{campaign.title!r} asks {len(pending)} question(s) before the first comparison "
            f"({', '.join(q.key for q in pending)}): answer them first (GET, then POST "
            f"/api/v1/campaigns/{campaign.slug}/questionnaire with the answers).",
            code="questionnaire_required",
        )


def _answered_key(campaign: Campaign) -> str:
    return f"questionnaire:{campaign.pk}"


def require_questionnaire(*, campaign: Campaign, participant: Participant, session: SessionBase) -> None:
    """Raise QuestionnaireRequired while `participant` has questions pending in a campaign that asks them before
    the first comparison. Every way to a comparison or a vote passes here (arena.admission), so the questionnaire
    cannot be skipped by calling the API directly.

    No query on a campaign that asks its questionnaire after the comparisons, nor on one without questions (its
    copy from get_live_campaign holds its current questions); otherwise at most the pending check once per
    session and set of questions: the session keeps that this participant had nothing pending under them.
    """
    if campaign.questionnaire_timing != QuestionnaireTiming.BEFORE:
        return
    questions = current_question_ids(campaign)
    if not questions:
        return
    done = [participant.pk, list(questions)]
    if session.get(_answered_key(campaign)) == done:
        return
    pending = get_pending_questions(campaign=campaign, participant=participant)
    if pending:
        raise QuestionnaireRequired(campaign, pending)
    session[_answered_key(campaign)] = done


@dataclass(frozen=True)
class QuestionnaireResult:
    stored: dict[str, AnswerValue]  # question key -> value as stored
    asked_at: datetime


def _response(campaign: Campaign, participant: Participant) -> QuestionnaireResponse:
    response, _ = QuestionnaireResponse.objects.select_for_update().get_or_create(
        campaign=campaign, participant=participant
    )
    return response


def _refuse_withdrawn(campaign: Campaign, participant: Participant) -> None:
    if CampaignParticipation.objects.filter(
        campaign=campaign, participant=participant, withdrawn_at__isnull=False
    ).exists():
        raise ApplicationError("you withdrew from this campaign: nothing more is stored", code="withdrawn", status=403)


@transaction.atomic
def submit_questionnaire(
    *, campaign: Campaign, participant: Participant, answers: Mapping[str, object], now: datetime | None = None
) -> QuestionnaireResult:
    """Store `participant`'s answers (question key -> raw answer) to the questions pending for them; all or none.

    QuestionnaireInvalid names every answer that does not fit (and keys that are no pending question);
    Conflict when they submitted already (asked once). Simulated participants answer nothing.
    """
    if participant.kind == ParticipantKind.SIMULATED:
        raise ApplicationError("simulated participants answer no questionnaire")
    if not isinstance(answers, Mapping):
        raise QuestionnaireInvalid({"answers": "expected an object of question key -> answer"})
    _refuse_withdrawn(campaign, participant)
    response = _response(campaign, participant)
    if response.asked_at is not None:
        raise Conflict("you have answered this campaign's questionnaire already", code="questionnaire_answered")
    pending = get_pending_questions(campaign=campaign, participant=participant)
    errors: dict[str, str] = {}
    known = {q.key for q in pending}
    for key in answers:
        if key not in known:
            errors[str(key)[:64]] = "no such question is asked of you here"
    cleaned: dict[str, tuple[Question, AnswerValue]] = {}
    for question in pending:
        try:
            value = clean_answer(question, answers.get(question.key))
        except AnswerError as exc:
            errors[question.key] = str(exc)
            continue
        if value is not None:
            cleaned[question.key] = (question, value)
    if errors:
        raise QuestionnaireInvalid(errors)
    now = now or timezone.now()
    Answer.objects.bulk_create(
        [
            Answer(response=response, question=question, value=value, source=AnswerSource.ASKED, answered_at=now)
            for question, value in cleaned.values()
        ]
    )
    response.asked_at = now
    response.save(update_fields=["asked_at", "updated_at"])
    return QuestionnaireResult(stored={key: value for key, (_, value) in cleaned.items()}, asked_at=now)


# --- defining ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionSpec:
    """A question as staff define it (the admin form, a command): what `save_question` checks and stores."""

    key: str
    text: str
    kind: str
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    required: bool = True
    sensitive: bool = False
    position: int = 0
    prolific_column: str = ""

    def problems(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not self.key or not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in self.key):
            errors["key"] = "letters, digits, '-' and '_' only"
        elif len(self.key) > 64:
            errors["key"] = "at most 64 characters"
        if not self.text.strip():
            errors["text"] = "the question needs a text"
        if self.kind not in QuestionKind.values:
            errors["kind"] = f"one of {', '.join(QuestionKind.values)}"
        choice_kind = self.kind in (QuestionKind.SINGLE, QuestionKind.MULTIPLE)
        cleaned = [c.strip() for c in self.choices]
        if choice_kind and len([c for c in cleaned if c != PREFER_NOT_TO_SAY]) < 2:
            errors["choices"] = "a choice question needs at least two options"
        elif choice_kind and (len(set(cleaned)) != len(cleaned) or "" in cleaned):
            errors["choices"] = "options must be distinct and not empty"
        elif len(cleaned) > MAX_CHOICES or any(len(c) > MAX_CHOICE_LENGTH for c in cleaned):
            errors["choices"] = f"at most {MAX_CHOICES} options of at most {MAX_CHOICE_LENGTH} characters"
        elif not choice_kind and cleaned:
            errors["choices"] = "only choice questions have options"
        bounds = [b for b in (self.min_value, self.max_value) if b is not None]
        if self.kind != QuestionKind.NUMBER and bounds:
            errors["min_value"] = "only number questions have a range"
        elif any(not math.isfinite(b) for b in bounds):
            errors["min_value"] = "the range's bounds must be finite numbers"
        elif self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            errors["max_value"] = "the range's maximum is below its minimum"
        if len(self.prolific_column) > 100:
            errors["prolific_column"] = "at most 100 characters"
        return errors

    def values(self) -> dict[str, Any]:
        return {
            "text": self.text.strip(),
            "kind": self.kind,
            "choices": [c.strip() for c in self.choices],
            "min_value": self.min_value,
            "max_value": self.max_value,
            "required": self.required,
            "sensitive": self.sensitive,
            "position": self.position,
            "prolific_column": self.prolific_column.strip(),
        }


class QuestionRefused(ApplicationError):
    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        listed = "; ".join(f"{name}: {message}" for name, message in self.errors.items())
        super().__init__(f"the question cannot be saved ({listed})", code="invalid_question")


# Edits that change nothing a participant saw or answered: made in place even when answers exist.
_IN_PLACE = ("position", "prolific_column")


@transaction.atomic
def save_question(*, campaign: Campaign, spec: QuestionSpec) -> Question:
    """Create the question `spec.key` or change it: in place while nobody answered it (or only its order and
    import column change), else as a new current version, the old one kept for its answers."""
    if errors := spec.problems():
        raise QuestionRefused(errors)
    values = spec.values()
    current = Question.objects.select_for_update().filter(campaign=campaign, key=spec.key, is_current=True).first()
    if current is None:
        if Question.objects.filter(campaign=campaign, is_current=True).count() >= MAX_QUESTIONS:
            raise QuestionRefused({"key": f"a campaign has at most {MAX_QUESTIONS} questions"})
        last = Question.objects.filter(campaign=campaign, key=spec.key).order_by("-version").first()
        return Question.objects.create(
            campaign=campaign, key=spec.key, version=1 if last is None else last.version + 1, **values
        )
    changed = [name for name, value in values.items() if getattr(current, name) != value]
    if not changed:
        return current
    if not current.answers.exists() or set(changed) <= set(_IN_PLACE):
        for name in changed:
            setattr(current, name, values[name])
        current.save(update_fields=changed)
        return current
    current.is_current = False
    current.save(update_fields=["is_current"])
    return Question.objects.create(campaign=campaign, key=spec.key, version=current.version + 1, **values)


@transaction.atomic
def retire_question(*, campaign: Campaign, key: str) -> None:
    """Stop asking question `key`: deleted when nobody answered it, else kept (no longer current) for its answers."""
    current = Question.objects.select_for_update().filter(campaign=campaign, key=key, is_current=True).first()
    if current is None:
        raise ApplicationError(f"campaign {campaign.slug!r} has no question {key!r}", code="not_found", status=404)
    if current.answers.exists():
        current.is_current = False
        current.save(update_fields=["is_current"])
    else:
        current.delete()


# --- importing Prolific's demographic export ----------------------------------------------------------------


@dataclass(frozen=True)
class DemographicsImport:
    rows: int
    participants: int  # of this campaign, matched by hashed id and given answers
    answers: int
    not_ours: int  # rows of workers who never took part here
    skipped: dict[str, int] = field(default_factory=dict)  # column -> values Prolific holds no data for

    def lines(self) -> list[str]:
        skipped = ", ".join(f"{n} in {column!r}" for column, n in sorted(self.skipped.items()) if n)
        return [
            f"{self.rows} row(s) of Prolific's export read",
            f"{self.answers} answer(s) stored for {self.participants} participant(s) of this campaign",
            f"{self.not_ours} row(s) of workers who never took part here",
            f"values with no data (expired, revoked or empty): {skipped or 'none'}",
        ]


def _imported_value(question: Question, raw: str) -> object:
    """A Prolific cell as an answer to `question`: options matched ignoring case; several split on commas."""
    if raw.strip().lower() in ("prefer not to say", "rather not say") and question.sensitive:
        return PREFER_NOT_TO_SAY
    if question.kind in (QuestionKind.SINGLE, QuestionKind.MULTIPLE):
        by_lower = {choice.lower(): choice for choice in question.offered_choices}
        whole = by_lower.get(raw.strip().lower())
        if question.kind == QuestionKind.SINGLE or whole is not None:
            return whole if whole is not None else raw
        return [by_lower.get(part.strip().lower(), part.strip()) for part in raw.split(",")]
    return raw


@transaction.atomic
def import_prolific_demographics(*, campaign: Campaign, data: bytes, now: datetime | None = None) -> DemographicsImport:
    """Fill the campaign's questions that name a Prolific column from Prolific's export; all or none.

    Rows are matched to participants by the keyed hash of the PROLIFIC_PID (annotation.services.hash_external_id,
    as crowd entry and reconciliation use): the raw ids are never stored. Only participants who took part in
    this campaign and have not withdrawn get answers; their own answers given here are never overwritten, an
    earlier import's are. A value that fits no question's check refuses the whole file, naming its row and
    column; values Prolific holds no data for (expired, revoked, empty) are skipped and counted.
    """
    questions = [q for q in get_current_questions(campaign=campaign) if q.prolific_column]
    if not questions:
        raise ApplicationError(
            f"no question of campaign {campaign.slug!r} names a Prolific column to import", code="nothing_to_import"
        )
    try:
        rows = reconciliation.parse_demographics(
            data, columns=tuple(dict.fromkeys(q.prolific_column for q in questions))
        )
    except reconciliation.RecordError as exc:
        raise ApplicationError(f"Prolific's export cannot be read: {exc}", code="bad_record") from None
    took_part = Q(pk__in=CrowdAssignment.objects.filter(campaign=campaign).values("participant_id")) | Q(
        pk__in=campaign.comparisons.values("participant_id")
    )
    withdrawn = CampaignParticipation.objects.filter(campaign=campaign, withdrawn_at__isnull=False).values(
        "participant_id"
    )
    ours = dict(
        Participant.objects.filter(took_part, kind=ParticipantKind.PROLIFIC)
        .exclude(pk__in=withdrawn)
        .values_list("external_id_hash", "pk")
    )
    now = now or timezone.now()
    skipped: dict[str, int] = {}
    found: dict[int, dict[Question, AnswerValue]] = {}
    not_ours = 0
    for row in rows:
        participant_id = ours.get(hash_external_id(reconciliation.PROLIFIC, row.worker))
        if participant_id is None:
            not_ours += 1
            continue
        for question in questions:
            raw = row.values[question.prolific_column]
            if raw.strip().upper() in reconciliation.PROLIFIC_NO_DATA:
                skipped[question.prolific_column] = skipped.get(question.prolific_column, 0) + 1
                continue
            try:
                value = CHECKS[question.kind](question, _imported_value(question, raw))
            except AnswerError as exc:
                raise ApplicationError(
                    f"Prolific's export, row {row.row}, column {question.prolific_column!r}: {exc} "
                    f"(question {question.key!r})",
                    code="bad_record",
                ) from None
            found.setdefault(participant_id, {})[question] = value
    stored = _store_imported(campaign, found, now)
    return DemographicsImport(
        rows=len(rows), participants=len(found), answers=stored, not_ours=not_ours, skipped=skipped
    )


def _store_imported(campaign: Campaign, found: Mapping[int, Mapping[Question, AnswerValue]], now: datetime) -> int:
    if not found:
        return 0
    QuestionnaireResponse.objects.bulk_create(
        [QuestionnaireResponse(campaign=campaign, participant_id=pk) for pk in found], ignore_conflicts=True
    )
    responses = dict(
        QuestionnaireResponse.objects.filter(campaign=campaign, participant_id__in=list(found)).values_list(
            "participant_id", "pk"
        )
    )
    existing = {
        (response_id, key): (answer_id, source)
        for answer_id, response_id, key, source in Answer.objects.filter(
            response_id__in=responses.values()
        ).values_list("pk", "response_id", "question__key", "source")
    }
    replace: list[int] = []
    new: list[Answer] = []
    for participant_id, answers in found.items():
        response_id = responses[participant_id]
        for question, value in answers.items():
            held = existing.get((response_id, question.key))
            if held is not None and held[1] == AnswerSource.ASKED:
                continue  # their own answer here wins
            if held is not None:
                replace.append(held[0])
            new.append(
                Answer(
                    response_id=response_id,
                    question=question,
                    value=value,
                    source=AnswerSource.PROLIFIC,
                    answered_at=now,
                )
            )
    Answer.objects.filter(pk__in=replace).delete()
    Answer.objects.bulk_create(new, batch_size=1000)
    return len(new)
