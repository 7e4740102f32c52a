"""JSON API for boards per group, the group test and the weighted board (arena.group_boards says what each holds)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arena.api import BoardRowSerializer, visible_campaign
from arena.group_boards import get_group_test, get_weighted_leaderboard
from arena.selectors import default_criterion
from core.api import ERROR
from core.errors import ApplicationError

GROUP_TOO_SMALL = OpenApiResponse(
    ERROR, description="group_too_small: fewer participants than the campaign's min_group_size (never shown)"
)


class GroupRowSerializer(BoardRowSerializer):
    ties = serializers.IntegerField(help_text="tie and both_bad votes")


class GroupBoardSerializer(serializers.Serializer):
    votes = serializers.FloatField(help_text="votes fitted (weighted votes on the weighted board)")
    method = serializers.CharField()
    intervals = serializers.CharField(help_text='"participant bootstrap": whole participants are resampled')
    interval_level = serializers.FloatField()
    bootstrap_rounds = serializers.IntegerField()
    rows = GroupRowSerializer(many=True)


class GroupInTestSerializer(GroupBoardSerializer):
    value = serializers.CharField(help_text="the answer that makes the group")
    participants = serializers.IntegerField()


class DifferenceSerializer(serializers.Serializer):
    generator = serializers.CharField()
    display_name = serializers.CharField()
    group = serializers.CharField()
    reference = serializers.CharField()
    difference = serializers.FloatField(allow_null=True, help_text="rating in the group minus in the reference")
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)


class GroupTestSerializer(serializers.Serializer):
    criterion = serializers.CharField()
    category = serializers.CharField(allow_blank=True)
    question = serializers.CharField()
    statistic = serializers.FloatField(help_text="likelihood ratio: one Bradley-Terry fit against one per group")
    p_value = serializers.FloatField(help_text="from permuting group labels among participants")
    permutations = serializers.IntegerField()
    min_group_size = serializers.IntegerField()
    suppressed_groups = serializers.IntegerField(help_text="groups left out for being smaller than min_group_size")
    reference = serializers.CharField(help_text="the largest group, which the differences are taken against")
    groups = GroupInTestSerializer(many=True)
    differences = DifferenceSerializer(many=True)


class CompositionSerializer(serializers.Serializer):
    margin = serializers.CharField()
    cell = serializers.ListField(child=serializers.CharField())
    target = serializers.FloatField()
    participants = serializers.IntegerField(allow_null=True)
    sample = serializers.FloatField(allow_null=True, help_text="the sample's share, unweighted")
    weighted = serializers.FloatField(allow_null=True, help_text="the share after raking")
    suppressed = serializers.BooleanField(help_text="a cell of fewer than min_group_size participants")


class WeightedBoardSerializer(serializers.Serializer):
    criterion = serializers.CharField()
    category = serializers.CharField(allow_blank=True)
    weighted = GroupBoardSerializer()
    unweighted = GroupBoardSerializer()
    composition = CompositionSerializer(many=True)
    empty_cells = inline_serializer(
        "EmptyCell",
        {"margin": serializers.CharField(), "cell": serializers.ListField(child=serializers.CharField())},
        many=True,
    )
    participants = serializers.IntegerField(help_text="participants weighted (answered every question raked on)")
    excluded = serializers.IntegerField(allow_null=True)
    effective_size = serializers.FloatField(help_text="Kish's effective sample size")
    cap = serializers.FloatField(help_text="the largest weight, times the mean weight")
    at_cap = serializers.IntegerField()
    converged = serializers.BooleanField(help_text="every target share met (a binding cap can keep one from it)")
    min_group_size = serializers.IntegerField()


def _criterion_and_category(request: Request, campaign_criterion: str) -> tuple[str, str]:
    return request.query_params.get("criterion") or campaign_criterion, request.query_params.get("category", "")


class GroupTestApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("question", str, required=True, description="question key whose answers make the groups"),
            OpenApiParameter("criterion", str, description="criterion key; default: the campaign's first"),
            OpenApiParameter("category", str, description="prompt category; default: all prompts"),
        ],
        responses={200: GroupTestSerializer, 400: ERROR, 404: ERROR, 409: ERROR},
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign = visible_campaign(request, slug)
        question = request.query_params.get("question", "")
        if not question:
            raise ApplicationError("question is required: the key of the question whose answers make the groups")
        criterion, category = _criterion_and_category(request, default_criterion(campaign))
        return Response(get_group_test(campaign=campaign, criterion=criterion, question=question, category=category))


class WeightedLeaderboardApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("criterion", str, description="criterion key; default: the campaign's first"),
            OpenApiParameter("category", str, description="prompt category; default: all prompts"),
        ],
        responses={200: WeightedBoardSerializer, 400: ERROR, 403: GROUP_TOO_SMALL, 404: ERROR},
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign = visible_campaign(request, slug)
        criterion, category = _criterion_and_category(request, default_criterion(campaign))
        return Response(get_weighted_leaderboard(campaign=campaign, criterion=criterion, category=category))
