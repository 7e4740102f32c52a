"""Staff page of a campaign's participants: consent and questionnaire settings, questions, Prolific's export,
withdrawals on request. Each action parses a form, calls one service and says what it did."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotation.consent import get_consent_versions, set_participation_settings
from annotation.forms import ParticipationSettingsForm, QuestionForm, WithdrawalRequestForm
from annotation.models import Campaign, Question, WithdrawnBy
from annotation.permissions import staff_area
from annotation.questionnaire import import_prolific_demographics, retire_question, save_question
from annotation.selectors import get_managed_campaign
from arena.forms import PlatformRecordForm
from arena.participation import count_withdrawn, find_campaign_participant, withdraw_participant
from core.errors import ApplicationError


def _form_problems(form: object) -> str:
    errors = getattr(form, "errors", {})
    return "; ".join(f"{name}: {error}" for name, values in errors.items() for error in values)


@staff_area
def participants_page(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_managed_campaign(slug=slug, user=request.user)
    questions = (
        Question.objects.filter(campaign=campaign, is_current=True)
        .annotate(answer_count=Count("answers"))
        .order_by("position", "id")
    )
    context = {
        "campaign": campaign,
        "questions": questions,
        "consent_versions": get_consent_versions(campaign=campaign),
        "withdrawn": count_withdrawn(campaign=campaign),
        "settings_form": ParticipationSettingsForm(
            initial={
                "consent_text": campaign.consent_text,
                "questionnaire_timing": campaign.questionnaire_timing,
                "min_group_size": campaign.min_group_size,
            }
        ),
        "question_form": QuestionForm(),
        "import_form": PlatformRecordForm(),
        "withdraw_form": WithdrawalRequestForm(),
    }
    return render(request, "arena/staff/participants.html", context)


def _back(campaign: Campaign) -> HttpResponse:
    return redirect("staff-campaign-participants", slug=campaign.slug)


def _action(
    request: HttpRequest,
    slug: str,
    act: Callable[[Campaign, dict[str, Any]], str],
    form_class: type[forms.Form] | None = None,
) -> HttpResponse:
    """One staff action on the participants page: the form checked (its problems shown, nothing done), then `act`
    with the campaign and the form's cleaned data; what it says it did, or the service's refusal, is shown."""
    campaign = get_managed_campaign(slug=slug, user=request.user)
    data: dict[str, Any] = {}
    if form_class is not None:
        form = form_class(request.POST, request.FILES)
        if not form.is_valid():
            messages.error(request, _form_problems(form))
            return _back(campaign)
        data = form.cleaned_data
    try:
        done = act(campaign, data)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return _back(campaign)


@require_POST
@staff_area
def participants_settings(request: HttpRequest, slug: str) -> HttpResponse:
    def act(campaign: Campaign, data: dict[str, Any]) -> str:
        set_participation_settings(campaign=campaign, **data)
        return f"Saved; the consent text is at version {campaign.consent_version}."

    return _action(request, slug, act, ParticipationSettingsForm)


@require_POST
@staff_area
def question_save(request: HttpRequest, slug: str) -> HttpResponse:
    def act(campaign: Campaign, data: dict[str, Any]) -> str:
        question = save_question(campaign=campaign, spec=QuestionForm.spec_of(data))
        return f"Question {question.key!r} saved (version {question.version})."

    return _action(request, slug, act, QuestionForm)


@require_POST
@staff_area
def question_retire(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    def act(campaign: Campaign, data: dict[str, Any]) -> str:
        retire_question(campaign=campaign, key=key)
        return f"Question {key!r} is no longer asked."

    return _action(request, slug, act)


@require_POST
@staff_area
def demographics_import(request: HttpRequest, slug: str) -> HttpResponse:
    def act(campaign: Campaign, data: dict[str, Any]) -> str:
        result = import_prolific_demographics(campaign=campaign, data=data["record"])
        return "; ".join(result.lines()) + "."

    return _action(request, slug, act, PlatformRecordForm)


@require_POST
@staff_area
def withdrawal_request(request: HttpRequest, slug: str) -> HttpResponse:
    def act(campaign: Campaign, data: dict[str, Any]) -> str:
        participant = find_campaign_participant(
            campaign=campaign, hashed_id=data["hashed_id"], worker_id=data["worker_id"]
        )
        result = withdraw_participant(
            campaign=campaign, participant=participant, by=WithdrawnBy.STAFF, note=data["note"]
        )
        done = "had already withdrawn" if result.already else "is withdrawn: their votes and answers count nowhere"
        return f"The participant {done}."

    return _action(request, slug, act, WithdrawalRequestForm)
