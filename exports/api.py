"""Staff-only JSON API for exports: run one into a server-side folder, list them, download one as a zip."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

# The one error shape of the API, so the schema has one Error component.
from access.permissions import HasScope
from annotation.permissions import StaffArea
from arena.api import ERROR
from exports.options import ExportOptions
from exports.publish import campaign_exports_folder, get_server_export, read_manifest
from exports.rows import TIES_DROP, TIES_SOFT
from exports.selectors import get_export_campaign, list_exports
from exports.services import export_to_server
from exports.views import zip_response
from exports.writers import FORMATS


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=list(FORMATS))
    criterion = serializers.CharField(required=False, max_length=64)
    ties = serializers.ChoiceField(choices=[TIES_DROP, TIES_SOFT], required=False)
    min_votes = serializers.IntegerField(required=False, min_value=1)
    min_margin = serializers.IntegerField(required=False, min_value=0)
    validation_fraction = serializers.FloatField(required=False, min_value=0.0, max_value=0.99, default=0.0)
    skip_missing = serializers.BooleanField(required=False, default=False)
    include_flagged = serializers.BooleanField(required=False, default=False)
    include_simulated = serializers.BooleanField(
        required=False, default=False, help_text="keep the votes of a simulated crowd (simulate_votes)"
    )
    copy_images = serializers.BooleanField(required=False, default=True)
    not_worse_on = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        default=list,
        help_text="criteria a kept pair's winner must not have lost on (pair formats)",
    )
    generators = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        default=list,
        help_text="keep only pairs whose two sides both come from these generators, at least two (pair formats)",
    )

    def options(self) -> ExportOptions:
        data: dict[str, Any] = self.validated_data
        return ExportOptions(
            format=data["format"],
            criterion=data.get("criterion"),
            ties=data.get("ties"),
            min_votes=data.get("min_votes"),
            min_margin=data.get("min_margin"),
            validation_fraction=data["validation_fraction"],
            skip_missing=data["skip_missing"],
            include_flagged=data["include_flagged"],
            include_simulated=data["include_simulated"],
            copy_images=data["copy_images"],
            not_worse_on=tuple(data["not_worse_on"]),
            generators=tuple(data["generators"]),
        )


class ExportSummarySerializer(serializers.Serializer):
    name = serializers.CharField()
    format = serializers.CharField()
    created_at = serializers.DateTimeField()
    filters = serializers.DictField()
    counts = serializers.DictField()
    download = serializers.CharField()


class ExportCreatedSerializer(serializers.Serializer):
    # No server path: where the server keeps exports is its business; the name is the export's id.
    name = serializers.CharField(help_text="the export's id among the campaign's exports")
    download = serializers.CharField(help_text="URL of the export as a zip")
    warnings = serializers.ListField(child=serializers.CharField())
    manifest = serializers.DictField(help_text="manifest.json: format, campaign, filters, counts, every file's sha256")


def _download_url(slug: str, name: str) -> str:
    return reverse("api-campaign-export-download", kwargs={"slug": slug, "name": name})


class CampaignExportsApi(APIView):
    """Exports run synchronously into a new folder on the server; the response carries the manifest."""

    permission_classes = [StaffArea, HasScope("export")]

    @extend_schema(responses={200: ExportSummarySerializer(many=True), 403: ERROR, 404: ERROR})
    def get(self, request: Request, slug: str) -> Response:
        campaign = get_export_campaign(slug=slug, user=request.user)
        found = list_exports(folder=campaign_exports_folder(campaign))
        return Response([{**e, "download": _download_url(campaign.slug, e["name"])} for e in found])

    @extend_schema(
        request=ExportRequestSerializer,
        responses={
            201: ExportCreatedSerializer,
            400: ERROR,
            403: ERROR,
            404: OpenApiResponse(ERROR, description="unknown campaign or criterion"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        body = ExportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        campaign = get_export_campaign(slug=slug, user=request.user)
        result = export_to_server(campaign=campaign, options=body.options())
        payload = {
            "name": result.path.name,
            "download": _download_url(campaign.slug, result.path.name),
            "warnings": result.warnings,
            "manifest": read_manifest(result.path),
        }
        return Response(payload, status=status.HTTP_201_CREATED)


class ExportDownloadApi(APIView):
    permission_classes = [StaffArea, HasScope("export")]

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY, 403: ERROR, 404: ERROR})
    def get(self, request: Request, slug: str, name: str) -> StreamingHttpResponse:
        campaign = get_export_campaign(slug=slug, user=request.user)
        folder = get_server_export(campaign=campaign, name=name)
        return zip_response(folder, f"{campaign.slug}-{name}")
