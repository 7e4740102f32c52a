"""JSON API for a participant's part in a campaign beside voting: consent, the questionnaire, withdrawal."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.consent import forget_consent, get_consent_state, record_consent, require_consent
from annotation.models import PREFER_NOT_TO_SAY, Question, WithdrawnBy
from annotation.questionnaire import QuestionnaireInvalid, get_pending_questions, submit_questionnaire
from annotation.selectors import get_current_questions, get_live_campaign
from annotation.services import find_participant
from arena.admission import admit_to_vote
from arena.api import visible_campaign
from arena.participation import withdraw_participant
from core.api import ERROR, error_response
from core.errors import ApplicationError


class ConsentRequestSerializer(serializers.Serializer):
    accept = serializers.BooleanField(help_text="true: accept; false: decline (ends your part in the campaign)")
    version = serializers.IntegerField(min_value=1, help_text="the consent version you were shown")


ConsentStateSerializer = inline_serializer(
    "ConsentState",
    {
        "required": serializers.BooleanField(help_text="false: this campaign asks no consent"),
        "version": serializers.IntegerField(allow_null=True),
        "text": serializers.CharField(help_text="the consent text, Markdown"),
        "html": serializers.CharField(help_text="the text rendered (any HTML in the text is escaped)"),
        "accepted": serializers.BooleanField(),
        "declined": serializers.BooleanField(),
    },
)


def _consent_body(data: object) -> tuple[bool, int]:
    """The body's decision, taken strictly (a consent is not inferred from "1" or "yes"); ApplicationError else."""
    if not isinstance(data, dict) or not data.keys() <= {"accept", "version"}:
        raise ApplicationError('expected {"accept": true or false, "version": the consent version you were shown}')
    accept, version = data.get("accept"), data.get("version")
    if type(accept) is not bool:
        raise ApplicationError("accept: expected true or false")
    if type(version) is not int or version < 1:
        raise ApplicationError("version: expected the consent version you were shown, a whole number from 1")
    return accept, version


def declined_url(slug: str) -> str:
    return reverse("participation-ended", args=[slug])


class ConsentApi(APIView):
    @extend_schema(responses={200: ConsentStateSerializer, 404: ERROR})
    def get(self, request: Request, slug: str) -> Response:
        campaign = visible_campaign(request, slug)
        state = get_consent_state(
            campaign=campaign, participant=find_participant(session=request.session, user=request.user)
        )
        if state is None:
            return Response(
                {"required": False, "version": None, "text": "", "html": "", "accepted": False, "declined": False}
            )
        return Response({"required": True, **state.as_dict()})

    @extend_schema(
        request=ConsentRequestSerializer,
        responses={
            200: inline_serializer(
                "ConsentRecorded",
                {
                    "accepted": serializers.BooleanField(),
                    "version": serializers.IntegerField(),
                    "decided_at": serializers.DateTimeField(),
                    "exit_url": serializers.CharField(
                        allow_null=True, help_text="after a decline: the page that ends participation"
                    ),
                },
            ),
            400: OpenApiResponse(ERROR, description="no_consent: the campaign asks none; a bad body"),
            403: OpenApiResponse(ERROR, description="consent_declined: declined or withdrew before; crowd_only"),
            409: OpenApiResponse(ERROR, description="consent_version: the text changed since it was shown"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        accept, version = _consent_body(request.data)
        campaign = get_live_campaign(slug=slug)
        participant = admit_to_vote(campaign=campaign, session=request.session, user=request.user)
        result = record_consent(
            campaign=campaign, participant=participant, accept=accept, version=version, session=request.session
        )
        return Response(
            {
                "accepted": result.accepted,
                "version": result.version,
                "decided_at": result.decided_at.isoformat(),
                "exit_url": None if result.accepted else declined_url(campaign.slug),
            }
        )


def question_payload(question: Question) -> dict[str, object]:
    return {
        "key": question.key,
        "version": question.version,
        "text": question.text,
        "kind": question.kind,
        "choices": question.offered_choices,
        "min_value": question.min_value,
        "max_value": question.max_value,
        "required": question.required,
        "sensitive": question.sensitive,
    }


QuestionSerializer = inline_serializer(
    "Question",
    {
        "key": serializers.CharField(),
        "version": serializers.IntegerField(),
        "text": serializers.CharField(),
        "kind": serializers.ChoiceField(choices=["single", "multiple", "number", "text"]),
        "choices": serializers.ListField(
            child=serializers.CharField(), help_text=f'sensitive questions always offer "{PREFER_NOT_TO_SAY}"'
        ),
        "min_value": serializers.FloatField(allow_null=True),
        "max_value": serializers.FloatField(allow_null=True),
        "required": serializers.BooleanField(),
        "sensitive": serializers.BooleanField(),
    },
    many=True,
)


class QuestionnaireApi(APIView):
    @extend_schema(
        responses={
            200: inline_serializer(
                "Questionnaire",
                {
                    "timing": serializers.ChoiceField(choices=["before", "after"]),
                    "questions": QuestionSerializer,
                    "pending": serializers.ListField(
                        child=serializers.CharField(), help_text="keys still to be answered by this session"
                    ),
                },
            ),
            404: ERROR,
        }
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign = visible_campaign(request, slug)
        participant = find_participant(session=request.session, user=request.user)
        questions = get_current_questions(campaign=campaign)
        pending = (
            questions if participant is None else get_pending_questions(campaign=campaign, participant=participant)
        )
        return Response(
            {
                "timing": campaign.questionnaire_timing,
                "questions": [question_payload(q) for q in questions],
                "pending": [q.key for q in pending],
            }
        )

    @extend_schema(
        request=inline_serializer(
            "QuestionnaireAnswers",
            {"answers": serializers.DictField(help_text="question key -> answer (text, list of texts or number)")},
        ),
        responses={
            200: inline_serializer("QuestionnaireStored", {"stored": serializers.DictField()}),
            400: OpenApiResponse(ERROR, description="invalid_answers: the message names each answer that is wrong"),
            403: OpenApiResponse(
                ERROR, description="consent_required: accept the campaign's consent first; consent_declined; withdrawn"
            ),
            409: OpenApiResponse(ERROR, description="questionnaire_answered: asked once"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        data = request.data
        if not isinstance(data, dict) or not isinstance(data.get("answers"), dict):
            raise ApplicationError('expected {"answers": {question key: answer}}')
        campaign = get_live_campaign(slug=slug)
        participant = admit_to_vote(campaign=campaign, session=request.session, user=request.user)
        # Answers are personal data: none is stored before the campaign's consent is accepted.
        require_consent(campaign=campaign, participant=participant, session=request.session)
        try:
            result = submit_questionnaire(campaign=campaign, participant=participant, answers=data["answers"])
        except QuestionnaireInvalid as exc:
            answer = error_response(exc.code, exc.message, exc.status)
            answer.data["error"]["fields"] = exc.errors
            return answer
        return Response({"stored": result.stored})


class WithdrawApi(APIView):
    @extend_schema(
        request=inline_serializer("WithdrawRequest", {"confirm": serializers.BooleanField()}),
        responses={
            200: inline_serializer(
                "Withdrawn", {"withdrawn_at": serializers.DateTimeField(), "already": serializers.BooleanField()}
            ),
            400: ERROR,
            403: ERROR,
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        if not isinstance(request.data, dict) or request.data.get("confirm") is not True:
            raise ApplicationError('send {"confirm": true} to withdraw: your votes and answers leave the study')
        campaign = get_live_campaign(slug=slug)
        participant = admit_to_vote(campaign=campaign, session=request.session, user=request.user)
        result = withdraw_participant(campaign=campaign, participant=participant, by=WithdrawnBy.PARTICIPANT)
        forget_consent(campaign=campaign, session=request.session, withdrawn=participant)
        return Response({"withdrawn_at": result.withdrawn_at.isoformat(), "already": result.already})
