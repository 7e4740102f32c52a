"""Staff JSON API for image sets made elsewhere: the zip the staff page takes, imported by the same service and rules.

POST a zip (an ImageFolder with metadata.jsonl or metadata.csv, Parquet files, or a datasets save_to_disk folder)
to /api/v1/campaigns/SLUG/imports; annotation.importing checks every row against the campaign and stores the
whole import or nothing.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.permissions import StaffOrScope
from annotation.importing import MAX_IMPORT_BYTES, import_populations_zip
from annotation.selectors import get_managed_campaign
from core.api import ERROR
from core.errors import ApplicationError


class ImportTooLarge(ApplicationError):
    code = "import_too_large"


class ImportUploadSerializer(serializers.Serializer):
    archive = serializers.FileField(
        help_text=(
            "a zip of images with a metadata.jsonl or metadata.csv (file_name, prompt, generator, optional seed and "
            "set), of Parquet files, or of a datasets save_to_disk folder: the import_populations layouts; at most "
            f"{MAX_IMPORT_BYTES // 2**20} MB (larger: manage.py import_populations)"
        )
    )


class ImportResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField(help_text="images read")
    populations = serializers.IntegerField(help_text="new sets stored, each ready to be shown")
    images = serializers.IntegerField(help_text="images in the new sets")
    already_imported = serializers.IntegerField(help_text="sets whose images were imported before: added nothing")
    new_generators = serializers.ListField(
        child=serializers.CharField(), help_text="imported generators created for names new to the arena"
    )


class CampaignImportsApi(APIView):
    """Staff who manage the campaign (a researcher only their own); a token needs the `manage` scope.

    All or nothing, as the command and the staff page: every row is checked first (prompt one of the campaign's,
    N images per set, one image size, decodable and not blank images, a name no model the workers run has), and
    a refusal (400 import_refused) names every bad row with nothing stored. The same files again add nothing.
    """

    permission_classes = [StaffOrScope("manage")]
    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="Import image sets made elsewhere into the campaign (a zip), all or nothing",
        request={"multipart/form-data": ImportUploadSerializer},
        responses={
            200: ImportResultSerializer,
            400: OpenApiResponse(
                ERROR,
                description="import_refused: the message names every bad row (or an unreadable zip) and nothing was "
                "stored; import_too_large; invalid: no archive sent",
            ),
            403: ERROR,
            404: ERROR,
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = get_managed_campaign(slug=slug, user=request.user)
        body = ImportUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        archive = body.validated_data["archive"]
        if archive.size > MAX_IMPORT_BYTES:
            raise ImportTooLarge(
                f"the zip is {archive.size} bytes, more than the {MAX_IMPORT_BYTES // 2**20} MB the API takes: "
                "import it with manage.py import_populations"
            )
        result = import_populations_zip(campaign=campaign, data=archive)
        return Response(
            ImportResultSerializer(
                {
                    "rows": result.rows,
                    "populations": result.populations,
                    "images": result.images,
                    "already_imported": result.already_imported,
                    "new_generators": list(result.new_generators),
                }
            ).data
        )
