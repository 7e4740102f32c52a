"""Pages of a participant's part in a campaign beside voting: the questionnaire, withdrawal, the end of taking part.

Consent itself is shown on the vote page (arena.views.vote_page renders it through `gate_page`); these pages
take the questionnaire's answers, a withdrawal, and say politely that participation has ended.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from annotation.consent import ConsentDeclined, forget_consent, get_consent_state, require_consent
from annotation.crowd import MTURK, PROLIFIC
from annotation.models import Campaign, CampaignParticipation, Participant, QuestionnaireTiming, WithdrawnBy
from annotation.questionnaire import (
    QuestionnaireInvalid,
    QuestionnaireRequired,
    get_pending_questions,
    require_questionnaire,
    submit_questionnaire,
)
from annotation.selectors import get_campaign
from annotation.services import AlreadyTookPart, CrowdOnly
from arena.admission import admit_to_vote
from arena.participation import withdraw_participant
from core.errors import ApplicationError
from core.middleware import allow_mturk_framing

# What a crowd worker who ends their part is asked to do on the platform, so their place goes to someone else.
PLATFORM_RETURN = {
    PROLIFIC: (
        "Please return your submission on Prolific (\u201cReturn submission\u201d on the study's page), so the "
        "place goes to someone else; you will not be penalised for it.",
        "https://app.prolific.com/submissions",
    ),
    MTURK: ("Please return the HIT on MTurk (the \u201cReturn\u201d button), so the place goes to someone else.", ""),
}


def _framed(response: HttpResponse, participant: Participant | None) -> HttpResponse:
    return allow_mturk_framing(response) if participant and participant.kind == Participant.Kind.MTURK else response


def gate_page(request: HttpRequest, campaign: Campaign, participant: Participant) -> HttpResponse | None:
    """What the vote page shows instead of a comparison, or None to go on: the consent (rendered into the vote
    page's template), the end of participation after a decline or withdrawal, or the questionnaire when the
    campaign asks it first."""
    try:
        require_consent(campaign=campaign, participant=participant, session=request.session)
    except ConsentDeclined:
        return redirect("participation-ended", slug=campaign.slug)
    except ApplicationError:  # ConsentRequired
        consent = get_consent_state(campaign=campaign, participant=participant)
        context = {"campaign": campaign, "criteria": [], "comparison": None, "waiting": None, "consent": consent}
        return _framed(render(request, "arena/vote.html", context), participant)
    try:
        require_questionnaire(campaign=campaign, participant=participant, session=request.session)
    except QuestionnaireRequired:
        return redirect("questionnaire", slug=campaign.slug)
    return None


def questionnaire_due_after(campaign: Campaign, participant: Participant) -> bool:
    """Whether the completion page should first ask the questionnaire the campaign asks after the comparisons."""
    return campaign.questionnaire_timing == QuestionnaireTiming.AFTER and bool(
        get_pending_questions(campaign=campaign, participant=participant)
    )


def _admitted(request: HttpRequest, slug: str) -> tuple[Campaign, Participant] | HttpResponse:
    try:
        campaign = get_campaign(slug=slug)
        return campaign, admit_to_vote(campaign=campaign, session=request.session, user=request.user)
    except ApplicationError as exc:
        template = "arena/take-part.html" if isinstance(exc, CrowdOnly | AlreadyTookPart) else "arena/unavailable.html"
        return render(request, template, {"message": exc.message}, status=exc.status)


def _form_answers(request: HttpRequest, campaign: Campaign, participant: Participant) -> dict[str, object]:
    answers: dict[str, object] = {}
    for question in get_pending_questions(campaign=campaign, participant=participant):
        name = f"q-{question.key}"
        if question.kind == question.Kind.MULTIPLE:
            answers[question.key] = request.POST.getlist(name)
        elif name in request.POST:
            answers[question.key] = request.POST[name]
    return answers


def questionnaire_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The campaign's questions still pending for this participant (GET), and their answers stored (POST)."""
    admitted = _admitted(request, slug)
    if isinstance(admitted, HttpResponse):
        return admitted
    campaign, participant = admitted
    try:
        require_consent(campaign=campaign, participant=participant, session=request.session)
    except ConsentDeclined:
        return redirect("participation-ended", slug=campaign.slug)
    except ApplicationError:
        return redirect("vote", slug=campaign.slug)
    after = campaign.questionnaire_timing == QuestionnaireTiming.AFTER
    then = reverse("completion" if after else "vote", args=[campaign.slug])
    pending = get_pending_questions(campaign=campaign, participant=participant)
    if not pending:
        return redirect(then)
    errors: dict[str, str] = {}
    given: dict[str, object] = {}
    if request.method == "POST":
        given = _form_answers(request, campaign, participant)
        try:
            submit_questionnaire(campaign=campaign, participant=participant, answers=given)
            return redirect(then)
        except QuestionnaireInvalid as exc:
            errors = exc.errors
        except ApplicationError as exc:
            return render(request, "arena/unavailable.html", {"message": exc.message}, status=exc.status)
    rows = [
        {
            "question": q,
            "name": f"q-{q.key}",
            "error": errors.get(q.key, ""),
            "given": given.get(q.key, [] if q.kind == q.Kind.MULTIPLE else ""),
        }
        for q in pending
    ]
    context = {"campaign": campaign, "rows": rows, "errors": bool(errors), "after": after}
    return _framed(render(request, "arena/questionnaire.html", context, status=400 if errors else 200), participant)


def withdraw_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Ask (GET) and withdraw (POST): the participant's votes and answers leave every board and later export."""
    admitted = _admitted(request, slug)
    if isinstance(admitted, HttpResponse):
        return admitted
    campaign, participant = admitted
    if request.method == "POST":
        if request.POST.get("confirm") != "yes":
            return render(
                request,
                "arena/withdraw.html",
                {"campaign": campaign, "error": "Tick the box to confirm that you want to withdraw."},
                status=400,
            )
        withdraw_participant(campaign=campaign, participant=participant, by=WithdrawnBy.PARTICIPANT)
        forget_consent(campaign=campaign, session=request.session, withdrawn=participant)
        return redirect("participation-ended", slug=campaign.slug)
    return _framed(render(request, "arena/withdraw.html", {"campaign": campaign}), participant)


def participation_ended_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The polite end after declining consent or withdrawing, with the crowd platform's return path."""
    admitted = _admitted(request, slug)
    if isinstance(admitted, HttpResponse):
        return admitted
    campaign, participant = admitted
    withdrawn = CampaignParticipation.objects.filter(
        campaign=campaign, participant=participant, withdrawn_at__isnull=False
    ).exists()
    platform = PLATFORM_RETURN.get(participant.kind)
    context = {
        "campaign": campaign,
        "withdrawn": withdrawn,
        "platform_message": platform[0] if platform else "",
        "platform_url": platform[1] if platform else "",
    }
    return _framed(render(request, "arena/ended.html", context), participant)
