"""JSON API for population metrics beside the votes: the metrics table with agreement, and one prompt's view."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.measuring import checked_attribute_specs
from annotation.permissions import can_manage_campaign
from arena.api import visible_campaign
from arena.selectors.metrics import NOTES, get_campaign_metrics, get_prompt_metrics
from core.api import ERROR
from core.errors import ApplicationError, Forbidden

# A campaign whose saved configuration no longer reads (Campaign.save lets one whose CLIP folder moved
# be paused) answers this rather than half a table: which attribute's stored measures are current is
# exactly what the configuration says, so none is shown until it reads again. Nothing is lost.
_CONFIG_INVALID = OpenApiResponse(
    ERROR,
    description=(
        "metrics_config_invalid: the campaign's saved metrics configuration cannot be read (e.g. a CLIP "
        "model folder has moved); the message names the field and folder. Stored measures are kept and "
        "are served again once the configuration is fixed."
    ),
)

_INTERVAL = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, allow_null=True)


class AttributeConfigSerializer(serializers.Serializer):
    name = serializers.CharField()
    backend = serializers.CharField()
    model = serializers.CharField(allow_null=True, help_text="CLIP model id or folder; null for shapes")
    classes = serializers.ListField(child=serializers.CharField())
    target = serializers.DictField(child=serializers.FloatField())


class AttributeRowSerializer(serializers.Serializer):
    shares = serializers.DictField(child=serializers.FloatField(), allow_null=True, help_text="pooled")
    discrepancy = serializers.FloatField(allow_null=True, help_text="pooled: L2 of shares - target (PopAlign)")
    kl = serializers.FloatField(allow_null=True, help_text="pooled: KL(shares || target), nats")
    entropy = serializers.FloatField(allow_null=True, help_text="pooled: entropy / log K")
    distinct = serializers.IntegerField(help_text="pooled: classes seen at least once")
    effective = serializers.FloatField(allow_null=True, help_text="pooled: exp(entropy), effective classes")
    counted = serializers.IntegerField(help_text="images read as one of the classes")
    prompts = serializers.IntegerField(
        help_text="prompts that leave the attribute open: the only ones its values count (on 'a red circle' red "
        "was asked for, not a skew)"
    )
    discrepancy_ci = _INTERVAL
    per_prompt = inline_serializer(
        "PerPromptMeans",
        {
            "discrepancy": serializers.FloatField(allow_null=True),
            "kl": serializers.FloatField(allow_null=True),
            "entropy": serializers.FloatField(allow_null=True),
            "distinct": serializers.FloatField(allow_null=True),
        },
    )
    per_prompt_discrepancy_ci = _INTERVAL


class BlankCountSerializer(serializers.Serializer):
    redrawn = serializers.IntegerField(help_text="blank images replaced by a redraw from a new seed in stored sets")
    failed_sets = serializers.IntegerField(help_text="sets that failed because an image came back blank every time")
    prompts = serializers.ListField(child=serializers.CharField(), help_text="the captions of those failed sets")


class MetricsRowSerializer(serializers.Serializer):
    generator = serializers.CharField()
    display_name = serializers.CharField()
    populations = serializers.IntegerField()
    prompts = serializers.IntegerField()
    images = serializers.IntegerField()
    attributes = serializers.DictField(child=AttributeRowSerializer())
    vendi = serializers.FloatField(allow_null=True)
    vendi_ci = _INTERVAL
    faithfulness = serializers.FloatField(allow_null=True)
    faithfulness_ci = _INTERVAL
    clip_score = serializers.FloatField(allow_null=True)
    clip_score_ci = _INTERVAL
    blank = BlankCountSerializer(help_text="blank images on the campaign's prompts (notes.blank)")


class AgreementSerializer(serializers.Serializer):
    criterion = serializers.CharField()
    measure = serializers.CharField(help_text="MEASURE[:ATTRIBUTE], e.g. discrepancy:colour")
    better = serializers.ChoiceField(choices=["lower", "higher"])
    votes = serializers.IntegerField(
        allow_null=True, help_text="decisive counted votes where the measure tells the sides apart"
    )
    agree = serializers.IntegerField(allow_null=True)
    share = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    intervals = serializers.ChoiceField(
        choices=["wilson", "participant bootstrap"],
        help_text="the whole crowd's share: Wilson; one group's: a bootstrap over its participants",
    )
    suppressed = serializers.BooleanField(
        required=False, help_text="a group of which fewer than min_group_size voted on this criterion: no figure"
    )
    spearman = serializers.FloatField(allow_null=True, help_text="vs the human Bradley-Terry ratings (the group's)")
    generators = serializers.IntegerField()


class CampaignMetricsSerializer(serializers.Serializer):
    campaign = serializers.CharField()
    category = serializers.CharField(allow_blank=True)
    population_size = serializers.IntegerField()
    attributes = AttributeConfigSerializer(many=True)
    rows = MetricsRowSerializer(many=True)
    agreement = AgreementSerializer(many=True)
    prompts = inline_serializer(
        "MetricsPromptChoice",
        {"id": serializers.IntegerField(), "caption": serializers.CharField(), "category": serializers.CharField()},
        many=True,
    )
    notes = serializers.DictField(child=serializers.CharField(), help_text="what each figure means")
    group = inline_serializer(
        "MetricsGroup",
        {
            "question": serializers.CharField(),
            "value": serializers.CharField(),
            "participants": serializers.IntegerField(help_text="the group's participants with counted votes"),
            "min_group_size": serializers.IntegerField(help_text="k: fewer of the group on a criterion: hidden"),
        },
        required=False,
        help_text="only with ?group=: the group whose votes the agreement is computed on",
    )


class MetricsApi(APIView):
    @extend_schema(
        summary="Population metrics per generator, and their agreement with the crowd",
        description=" ".join(f"{k}: {v}." for k, v in NOTES.items()),
        parameters=[
            OpenApiParameter("category", str, description="prompt category; default: all prompts"),
            OpenApiParameter(
                "group",
                str,
                description="QUESTION:VALUE: the agreement of that group's votes, with intervals from a bootstrap "
                "over its participants; 403 group_too_small under the campaign's min_group_size",
            ),
        ],
        responses={200: CampaignMetricsSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: _CONFIG_INVALID},
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign = visible_campaign(request, slug)
        checked_attribute_specs(campaign)
        return Response(
            get_campaign_metrics(
                campaign=campaign,
                category=request.query_params.get("category", ""),
                group=request.query_params.get("group", ""),
            )
        )


class PromptImageSerializer(serializers.Serializer):
    url = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True))


class PromptSideSerializer(serializers.Serializer):
    generator = serializers.CharField()
    display_name = serializers.CharField()
    population = serializers.IntegerField()
    images = PromptImageSerializer(many=True)
    attributes = serializers.DictField(child=serializers.DictField())
    vendi = serializers.FloatField(allow_null=True)
    faithfulness = serializers.FloatField(allow_null=True)
    clip_score = serializers.FloatField(allow_null=True)


class PromptMetricsSerializer(serializers.Serializer):
    campaign = serializers.CharField()
    prompt = inline_serializer(
        "MetricsPrompt",
        {"id": serializers.IntegerField(), "caption": serializers.CharField(), "category": serializers.CharField()},
    )
    attributes = serializers.ListField(child=serializers.CharField())
    generators = PromptSideSerializer(many=True)


class PromptMetricsApi(APIView):
    """The campaign's managers only: it names the generator of sets the arena may still serve.

    A set's images (their URLs, their look, their labels) beside its generator's name would let whoever
    reads them name that set's side in a comparison before voting; the public metrics table pools
    each generator's sets instead (README, "What the public sees").
    """

    @extend_schema(
        summary="One prompt: each generator's latest measured population, its images and their labels",
        description="Only for those who manage the campaign (403 otherwise): it names the generator of each set.",
        responses={200: PromptMetricsSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: _CONFIG_INVALID},
    )
    def get(self, request: Request, slug: str, prompt_id: int) -> Response:
        campaign = visible_campaign(request, slug)
        if not can_manage_campaign(request.user, campaign):
            raise Forbidden(
                "only those who manage this campaign see its sets image by image with their generators: "
                "that would name the sides of comparisons still to be served"
            )
        if prompt_id < 1:
            raise ApplicationError("prompt ids start at 1")
        checked_attribute_specs(campaign)
        return Response(get_prompt_metrics(campaign=campaign, prompt_id=prompt_id))
