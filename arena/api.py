"""JSON API for voting: issue the next comparison, cast votes, keep a comparison alive, queue state."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.throttling import NewSessionThrottle
from annotation.models import Campaign, Participant
from annotation.permissions import can_manage_campaign
from annotation.selectors import get_live_campaign
from annotation.services import admit_to_campaign, find_participant
from arena.admission import admit_to_vote, require_first_steps
from arena.clients import client_hash
from arena.group_boards import get_group_leaderboard
from arena.issuing import extend_lease, issue_comparison
from arena.models import Vote
from arena.selectors import default_criterion, get_comparison_payload, get_leaderboard, get_queue_summary
from arena.turns import NextWanted, take_turn
from arena.voting import MAX_DWELL_MS, VoteInput
from core.api import ERROR
from core.choices import CHOICES
from core.errors import ApplicationError, Forbidden


class ImagesSerializer(serializers.Serializer):
    images = serializers.ListField(child=serializers.CharField())


class ComparisonSerializer(serializers.Serializer):
    token = serializers.CharField()
    prompt = serializers.CharField()
    criteria = inline_serializer(
        "ComparisonCriterion", {"key": serializers.CharField(), "question": serializers.CharField()}, many=True
    )
    left = ImagesSerializer()
    right = ImagesSerializer()
    expires_at = serializers.DateTimeField()
    progress = inline_serializer(
        "Progress", {"votes_cast": serializers.IntegerField(), "quota": serializers.IntegerField(allow_null=True)}
    )


MAX_EXCLUDED = 10
MAX_VOTES = 20


class NextRequestSerializer(serializers.Serializer):
    exclude = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        max_length=MAX_EXCLUDED,
        help_text="tokens already held",
    )


class VoteSerializer(serializers.Serializer):
    criterion = serializers.CharField(max_length=64)
    choice = serializers.ChoiceField(choices=Vote.Choice.values)


class VotesRequestSerializer(serializers.Serializer):
    votes = serializers.ListField(child=VoteSerializer(), allow_empty=False, max_length=MAX_VOTES)
    dwell_ms = serializers.IntegerField(min_value=0, max_value=MAX_DWELL_MS)
    next = NextRequestSerializer(
        required=False,
        help_text="ask for the next comparison in the same request (one round trip per comparison); "
        "`exclude` as for comparisons/next",
    )


# A string CharField(max_length=64) keeps exactly as given: nothing to trim, no null or surrogate characters.
_PLAIN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _plain(value: object) -> bool:
    return type(value) is str and _PLAIN.fullmatch(value) is not None


def plain_next_body(data: object) -> dict[str, Any] | None:
    """NextRequestSerializer's validated data for a body in plain form (see `plain_votes_body`), else None."""
    if type(data) is not dict or not data.keys() <= {"exclude"}:
        return None
    if "exclude" not in data:
        return {}
    exclude = data["exclude"]
    if type(exclude) is not list or len(exclude) > MAX_EXCLUDED or not all(_plain(token) for token in exclude):
        return None
    return {"exclude": list(exclude)}


def plain_votes_body(data: object) -> dict[str, Any] | None:
    """VotesRequestSerializer's validated data for a body in plain form, or None: then the serializer decides.

    Every vote's body passes here, and the serializer's field tree costs about a millisecond of CPU to build
    and run. Only bodies the serializer keeps exactly as sent are taken: JSON objects with its keys and no
    others, strings of letters, digits, '-' and '_', whole numbers in range. Anything else, valid or not, goes
    to the serializer, which says what is wrong (tests/arena/test_vote_body.py checks that the two agree).
    """
    if type(data) is not dict or not data.keys() <= {"votes", "dwell_ms", "next"}:
        return None
    votes, dwell_ms = data.get("votes"), data.get("dwell_ms")
    if type(votes) is not list or not 1 <= len(votes) <= MAX_VOTES:
        return None
    for vote in votes:
        if type(vote) is not dict or vote.keys() != {"criterion", "choice"}:
            return None
        if not _plain(vote["criterion"]) or type(vote["choice"]) is not str or vote["choice"] not in CHOICES:
            return None
    if type(dwell_ms) is not int or not 0 <= dwell_ms <= MAX_DWELL_MS:
        return None
    body: dict[str, Any] = {"votes": [dict(vote) for vote in votes], "dwell_ms": dwell_ms}
    if "next" in data:
        following = plain_next_body(data["next"])
        if following is None:
            return None
        body["next"] = following
    return body


class SideSerializer(serializers.Serializer):
    generator = serializers.CharField()
    display_name = serializers.CharField()
    is_offline_standin = serializers.BooleanField()


class RevealSerializer(serializers.Serializer):
    left = SideSerializer()
    right = SideSerializer()
    votes_cast = serializers.IntegerField()
    next = ComparisonSerializer(
        required=False, allow_null=True, help_text="only when the request asked for it: the next comparison, or null"
    )
    next_error = inline_serializer(
        "NextError",
        {"code": serializers.CharField(), "message": serializers.CharField()},
        required=False,
        allow_null=True,
        help_text="why `next` is null (nothing_ready, quota_reached, ...); the vote itself was stored",
    )


class QueueSerializer(serializers.Serializer):
    ready = serializers.IntegerField(help_text="image sets made and waiting to be compared")
    wanted = serializers.IntegerField(help_text="image sets the campaign keeps ready")
    in_progress = serializers.IntegerField(help_text="image sets a worker is making now")
    waiting = serializers.IntegerField(help_text="image sets planned and queued for a worker")
    images_per_s = serializers.FloatField(allow_null=True, help_text="the workers' measured speed lately")
    first_comparison_s = serializers.IntegerField(
        allow_null=True, help_text="estimated seconds until a first comparison can be made (0: one can)"
    )
    all_ready_s = serializers.IntegerField(allow_null=True, help_text="estimated seconds until every queue is full")


def holder_for(request: Request) -> Participant:
    """The participant who may act on a comparison they were issued; a request with none creates none."""
    participant = find_participant(session=request.session, user=request.user)
    if participant is None:
        raise Forbidden("no comparison was issued to this session")
    return participant


def throttle_new_session(request: Request, view: APIView) -> None:
    """Count a comparison asked for by a session that holds none yet (NewSessionThrottle); 429 past the limit."""
    throttle = NewSessionThrottle()
    if not throttle.allow_request(request, view):
        view.throttled(request, throttle.wait() or 1.0)


def visible_campaign(request: Request, slug: str) -> Campaign:
    campaign = get_live_campaign(slug=slug)
    admit_to_campaign(campaign=campaign, session=request.session)
    return campaign


class NextComparisonApi(APIView):
    @extend_schema(
        request=NextRequestSerializer,
        responses={
            200: ComparisonSerializer,
            403: OpenApiResponse(
                ERROR,
                description="crowd_only: a Prolific or MTurk campaign, and this session did not arrive from it; "
                "consent_required: the campaign asks consent (POST .../consent) and this participant has not "
                "accepted its current version; consent_declined: declined or withdrew; questionnaire_required: "
                "the campaign asks its questionnaire before the first comparison (GET, then POST "
                ".../questionnaire) and this participant has not answered it",
            ),
            404: ERROR,
            409: OpenApiResponse(ERROR, description="nothing ready yet"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        data = plain_next_body(request.data or {})
        if data is None:
            body = NextRequestSerializer(data=request.data or {})
            body.is_valid(raise_exception=True)
            data = body.validated_data
        campaign = get_live_campaign(slug=slug)
        known = find_participant(session=request.session, user=request.user)
        if known is None:
            throttle_new_session(request, self)
        participant = admit_to_vote(campaign=campaign, session=request.session, user=request.user, known=known)
        # 403 consent_required / questionnaire_required until done (no query on a campaign that asks neither).
        require_first_steps(campaign=campaign, participant=participant, session=request.session)
        comparison = issue_comparison(
            campaign=campaign,
            participant=participant,
            exclude_tokens=tuple(data.get("exclude", ())),
            client=client_hash(request),
        )
        return Response(get_comparison_payload(comparison=comparison, participant=participant))


class VotesApi(APIView):
    @extend_schema(
        request=VotesRequestSerializer,
        responses={
            200: RevealSerializer,
            400: ERROR,
            403: OpenApiResponse(
                ERROR,
                description="consent_required, consent_declined or questionnaire_required, as for comparisons/next: "
                "a comparison held from before the campaign asked it is voted on only once it is done",
            ),
            404: ERROR,
            409: ERROR,
            410: ERROR,
        },
    )
    def post(self, request: Request, token: str) -> Response:
        data = plain_votes_body(request.data)
        if data is None:
            body = VotesRequestSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
        wanted = data.get("next")
        outcome = take_turn(
            token=token,
            participant=holder_for(request),
            votes=[VoteInput(v["criterion"], v["choice"]) for v in data["votes"]],
            dwell_ms=data["dwell_ms"],
            session=request.session,
            user=request.user,
            client=client_hash(request),
            next_wanted=None if wanted is None else NextWanted(exclude=tuple(wanted.get("exclude", ()))),
        )
        # The same fields RevealSerializer documents, without building its field tree per vote.
        answer = outcome.reveal.as_dict()
        if wanted is not None:
            refused = outcome.next_error
            answer["next"] = outcome.next
            answer["next_error"] = None if refused is None else {"code": refused.code, "message": refused.message}
        return Response(answer)


class LeaseApi(APIView):
    @extend_schema(
        request=None, responses={200: inline_serializer("Lease", {"expires_at": serializers.DateTimeField()})}
    )
    def post(self, request: Request, token: str) -> Response:
        comparison = extend_lease(token=token, participant=holder_for(request))
        return Response({"expires_at": comparison.lease_until.isoformat()})


class BoardRowSerializer(serializers.Serializer):
    """One generator's row of any board (arena.selectors.standing_row)."""

    generator = serializers.CharField()
    display_name = serializers.CharField()
    rating = serializers.FloatField()
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    rank = serializers.IntegerField()
    votes = serializers.IntegerField()
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()


class LeaderboardRowSerializer(BoardRowSerializer):
    both_bad = serializers.IntegerField()
    both_bad_rate = serializers.FloatField()


class LeaderboardSerializer(serializers.Serializer):
    criterion = serializers.CharField()
    category = serializers.CharField(allow_blank=True)
    includes_flagged = serializers.BooleanField()
    votes = serializers.IntegerField()
    updated_at = serializers.DateTimeField(allow_null=True)
    method = serializers.CharField(help_text="how the ratings were fitted, with every note on the data")
    intervals = serializers.ChoiceField(
        choices=["bootstrap", "sandwich"],
        help_text="how the intervals were computed: the percentile bootstrap, or the closed-form robust "
        "(sandwich) normal interval that live pushes carry",
    )
    interval_level = serializers.FloatField(help_text="the intervals' coverage, e.g. 0.95")
    bootstrap_rounds = serializers.IntegerField(help_text="0 for sandwich intervals")
    rows = LeaderboardRowSerializer(many=True)
    pairwise = inline_serializer(
        "Pairwise",
        {
            "generators": serializers.ListField(child=serializers.CharField()),
            "display_names": serializers.ListField(child=serializers.CharField()),
            "win_rate": serializers.ListField(
                child=serializers.ListField(child=serializers.FloatField(allow_null=True))
            ),
        },
    )


class LeaderboardApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("criterion", str, description="criterion key; default: the campaign's first"),
            OpenApiParameter("category", str, description="prompt category; default: all prompts"),
            OpenApiParameter(
                "intervals",
                str,
                enum=["bootstrap", "sandwich"],
                description="bootstrap (default: 1,000 rounds) or sandwich (closed form, what live pushes carry)",
            ),
            OpenApiParameter(
                "include_flagged",
                bool,
                description="the campaign's managers only: count flagged participants' votes too",
            ),
            OpenApiParameter(
                "group",
                str,
                description="QUESTION:VALUE: the board of the participants who gave that answer, with intervals from "
                "a bootstrap over participants; 403 group_too_small under the campaign's min_group_size",
            ),
        ],
        responses={200: LeaderboardSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign = visible_campaign(request, slug)
        criterion = request.query_params.get("criterion") or default_criterion(campaign)
        category = request.query_params.get("category", "")
        if group := request.query_params.get("group"):
            board = get_group_leaderboard(campaign=campaign, criterion=criterion, group=group, category=category)
            return Response(board)
        include_flagged = request.query_params.get("include_flagged", "false").lower()
        if include_flagged not in ("true", "false", "1", "0"):
            raise ApplicationError(f"include_flagged must be true or false, not {include_flagged!r}")
        flagged = include_flagged in ("true", "1")
        if flagged and not can_manage_campaign(request.user, campaign):
            raise Forbidden("only staff who manage this campaign can include flagged participants' votes")
        return Response(
            get_leaderboard(
                campaign=campaign,
                criterion=criterion,
                category=category,
                include_flagged=flagged,
                intervals=request.query_params.get("intervals") or "bootstrap",
            )
        )


class QueueApi(APIView):
    @extend_schema(responses={200: QueueSerializer, 404: ERROR})
    def get(self, request: Request, slug: str) -> Response:
        return Response(get_queue_summary(campaign=visible_campaign(request, slug)).as_dict())
