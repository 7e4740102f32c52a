"""JSON API for campaigns: the public list and one campaign with its criteria."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import Campaign, Criterion
from annotation.selectors import get_campaign, list_campaigns
from core.api import ERROR


class CriterionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Criterion
        fields = ["key", "question"]


class CampaignSerializer(serializers.ModelSerializer):
    prompt_count = serializers.IntegerField(read_only=True)
    generator_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "slug",
            "title",
            "status",
            "access",
            "population_size",
            "votes_per_pair",
            "prompt_count",
            "generator_count",
        ]


class CampaignDetailSerializer(CampaignSerializer):
    criteria = CriterionSerializer(many=True, read_only=True)

    class Meta(CampaignSerializer.Meta):
        fields = [*CampaignSerializer.Meta.fields, "instructions", "criteria"]


class CampaignListApi(APIView):
    serializer_class = CampaignSerializer

    @extend_schema(operation_id="campaigns_list", responses={200: CampaignSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(CampaignSerializer(list_campaigns(), many=True).data)


class CampaignDetailApi(APIView):
    serializer_class = CampaignDetailSerializer

    @extend_schema(operation_id="campaigns_retrieve", responses={200: CampaignDetailSerializer, 404: ERROR})
    def get(self, request: Request, slug: str) -> Response:
        return Response(CampaignDetailSerializer(get_campaign(slug=slug, listed_only=True)).data)
