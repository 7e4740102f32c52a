"""Staff and worker JSON API: generators, queue depth per generator and demand, workers' leases."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import PurePath

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.permissions import HasScope, StaffOrScope
from core.api import ERROR
from generation.models import Generator
from generation.pipelines import looks_like_path
from generation.selectors import get_queue_depths, get_worker_leases, list_generators


def public_source(source: str) -> str:
    """A generator's source as API answers show it: hub ids and `builtin:NAME` as they are, a local folder by name only.

    Staff (researchers included) and `read` tokens need to tell generators apart, not to learn how the
    server's disks are laid out; the full path stays in the admin, for those who may edit generators.
    """
    return f"local:{PurePath(source).name}" if looks_like_path(source) else source


class GeneratorSerializer(serializers.Serializer):
    name = serializers.CharField()
    display_name = serializers.CharField(allow_blank=True)
    backend = serializers.CharField()
    source = serializers.SerializerMethodField(  # type: ignore[assignment]  # the stubs see Field.source
        help_text="a hub id, builtin:NAME, or local:FOLDER (a local folder's name only: no server paths)"
    )
    prompt_template = serializers.CharField()
    is_offline_standin = serializers.BooleanField()
    is_active = serializers.BooleanField()

    @extend_schema_field(str)
    def get_source(self, generator: Generator) -> str:
        return public_source(generator.source)


class QueueDepthSerializer(serializers.Serializer):
    generator = serializers.CharField()
    prompt_id = serializers.IntegerField()
    size = serializers.IntegerField()
    available = serializers.IntegerField(help_text="ready populations not yet used up")
    in_flight = serializers.IntegerField(help_text="pending or generating")
    low_watermark = serializers.IntegerField()
    high_watermark = serializers.IntegerField()
    deficit = serializers.IntegerField(help_text="populations the workers should create now")
    priority = serializers.FloatField()
    last_failed_at = serializers.DateTimeField(allow_null=True)


class WorkerLeaseSerializer(serializers.Serializer):
    worker = serializers.CharField(help_text="the lease holder, as the worker names itself")
    populations = serializers.ListField(child=serializers.IntegerField())
    generators = serializers.ListField(child=serializers.CharField())
    lease_until = serializers.DateTimeField()
    expired = serializers.BooleanField(help_text="the lease ran out: another worker will reclaim this work")


class GeneratorListApi(APIView):
    permission_classes = [StaffOrScope("read")]

    @extend_schema(responses={200: GeneratorSerializer(many=True), 403: ERROR})
    def get(self, request: Request) -> Response:
        return Response(GeneratorSerializer(list_generators(), many=True).data)


class QueueListApi(APIView):
    permission_classes = [StaffOrScope("worker", "read")]

    @extend_schema(
        parameters=[OpenApiParameter("owner", str, description='only this owner\'s demand, e.g. "campaign:demo"')],
        responses={200: QueueDepthSerializer(many=True), 403: ERROR},
    )
    def get(self, request: Request) -> Response:
        depths = get_queue_depths(owner=request.query_params.get("owner") or None)
        return Response(QueueDepthSerializer([asdict(d) for d in depths], many=True).data)


class WorkerListApi(APIView):
    """Staff only; a staff member's token needs `manage` or `worker`."""

    permission_classes = [IsAdminUser, HasScope("manage", "worker")]

    @extend_schema(responses={200: WorkerLeaseSerializer(many=True), 403: ERROR})
    def get(self, request: Request) -> Response:
        return Response(WorkerLeaseSerializer([asdict(lease) for lease in get_worker_leases()], many=True).data)
