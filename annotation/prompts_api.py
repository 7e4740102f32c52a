"""Staff JSON API for a campaign's prompts: list them, add more (all or none, by the rules of a prompt file)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.permissions import StaffOrScope
from annotation.selectors import get_managed_campaign
from annotation.services import add_prompts_to_campaign
from core.api import ERROR
from core.errors import ApplicationError
from generation.prompt_files import PromptFileError, parse_prompt_records

MAX_PROMPTS_PER_REQUEST = 10_000


class PromptSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    caption = serializers.CharField()
    category = serializers.CharField(allow_blank=True)


class AddPromptsSerializer(serializers.Serializer):
    # Checked row by row by generation.prompt_files, which names every bad row at once.
    prompts = serializers.ListField(
        child=serializers.JSONField(), allow_empty=False, max_length=MAX_PROMPTS_PER_REQUEST
    )


class CampaignPromptsApi(APIView):
    """Staff who manage the campaign (a researcher only their own); a token needs `read` or `manage` to list,
    `manage` to add.

    Captions are added as the campaign owner's prompts (annotation.services.add_prompts_to_campaign): a
    caption another study has becomes a new prompt here, so `existing` says nothing about other studies
    and their image sets stay theirs.
    """

    permission_classes = [StaffOrScope("read", "manage", write=("manage",))]

    @extend_schema(responses={200: PromptSerializer(many=True), 403: ERROR, 404: ERROR})
    def get(self, request: Request, slug: str) -> Response:
        campaign = get_managed_campaign(slug=slug, user=request.user)
        prompts = campaign.prompts.order_by("category", "caption", "pk")
        return Response(PromptSerializer(prompts, many=True).data)

    @extend_schema(
        request=inline_serializer(
            "AddPrompts",
            {"prompts": PromptSerializer(many=True, help_text=f"at most {MAX_PROMPTS_PER_REQUEST} per request")},
        ),
        responses={
            200: inline_serializer(
                "AddedPrompts",
                {
                    "created": serializers.IntegerField(help_text="prompts new to this campaign owner's prompts"),
                    "existing": serializers.IntegerField(
                        help_text="prompts the campaign owner already had, or shared ones; never another study's"
                    ),
                    "added": serializers.IntegerField(help_text="prompts newly in this campaign"),
                },
            ),
            400: ERROR,
            403: ERROR,
            404: ERROR,
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = get_managed_campaign(slug=slug, user=request.user)
        body = AddPromptsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            rows = parse_prompt_records(body.validated_data["prompts"])
        except PromptFileError as error:
            raise ApplicationError(str(error)) from None
        counts = add_prompts_to_campaign(campaign=campaign, rows=rows)
        return Response(
            {"created": counts["created"], "existing": counts["existing"], "added": counts["added to campaign"]}
        )
