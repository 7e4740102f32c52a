"""The remote generation worker's endpoints: claim work, renew or release leases, upload or fail a population.

Only an API token with the `worker` scope reaches them. The lease holder is named after the
token (`token-<id>:<label>`), so a worker can renew, upload to or fail only what its own token
claimed, and a token without `worker` cannot claim at all. A token limited to generators or
campaigns (ApiToken.worker_limits) claims only their generators' work, and renews, uploads to or
fails nothing outside them (a campaign's generators are read at each request).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import ApiToken
from access.permissions import WorkerTokenOnly, request_token
from access.selectors import get_worker_generator_ids
from core.api import ERROR
from core.errors import ApplicationError, Conflict, Forbidden, NotFound
from generation import services
from generation.image_files import BadImage, inspect_image
from generation.models import MAX_POPULATION_SIZE, Population
from generation.prompting import population_prompts

# Ids beyond a 64-bit integer name no population (and SQLite could not even compare them).
MAX_ID = 2**63 - 1
# 64 KB of provenance an image: an API's record of one is well under 4 KB, so more is a client's mistake.
MAX_PROVENANCE_CHARS = 64 * MAX_POPULATION_SIZE * 1024
LABEL = r"^[\w.:@/-]+$"


def worker_name(token: ApiToken, label: str) -> str:
    return f"token-{token.pk}:{label}"


def _token(request: Request) -> ApiToken:
    token = request_token(request)
    assert token is not None  # WorkerTokenOnly let the request in
    return token


def _worker(request: Request, label: str) -> str:
    return worker_name(_token(request), label)


class OutsideTokenLimits(Forbidden):
    code = "outside_token_limits"


def _check_within_limits(request: Request, population_ids: list[int]) -> None:
    """Forbidden naming the populations whose generator this request's token is not limited to."""
    allowed = get_worker_generator_ids(token=_token(request))
    if allowed is None:
        return
    outside = sorted(
        Population.objects.filter(pk__in=population_ids).exclude(generator_id__in=allowed).values_list("pk", flat=True)
    )
    if outside:
        raise OutsideTokenLimits(
            f"this worker token is limited to some generators or campaigns, and population(s) "
            f"{', '.join(map(str, outside))} are outside them; nothing was changed"
        )


class WorkerLabelField(serializers.RegexField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            LABEL,
            max_length=100,
            default="default",
            help_text="this process's name (host:pid:device), shown in the staff worker list",
            error_messages={"invalid": "use letters, digits and . : @ / - _ only"},
            **kwargs,
        )


class ClaimRequestSerializer(serializers.Serializer):
    worker = WorkerLabelField()
    max_images = serializers.IntegerField(min_value=1, max_value=256, help_text="images the batch may hold")
    lease_seconds = serializers.IntegerField(min_value=5, max_value=3600, default=120)
    owner = serializers.CharField(
        max_length=100, required=False, help_text='only this owner\'s queues, e.g. "campaign:demo"'
    )


class ClaimedGeneratorSerializer(serializers.Serializer):
    name = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]  # the stubs see Field.source
    settings = serializers.DictField()
    prompt_template = serializers.CharField()


class ClaimedPopulationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    size = serializers.IntegerField()
    seeds = serializers.ListField(child=serializers.IntegerField())
    prompts = serializers.ListField(child=serializers.CharField(), help_text="the exact text for image i")
    caption = serializers.CharField()
    category = serializers.CharField(allow_blank=True)
    generator = ClaimedGeneratorSerializer()


class ClaimSerializer(serializers.Serializer):
    worker = serializers.CharField(help_text="the lease holder's name on the server")
    lease_until = serializers.DateTimeField(allow_null=True)
    populations = ClaimedPopulationSerializer(many=True)


class ReleaseRequestSerializer(serializers.Serializer):
    worker = WorkerLabelField()
    populations = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), max_length=256)


class LeaseRequestSerializer(ReleaseRequestSerializer):
    lease_seconds = serializers.IntegerField(min_value=5, max_value=3600, default=120)


class UploadRequestSerializer(serializers.Serializer):
    worker = WorkerLabelField()
    generation_ms = serializers.IntegerField(min_value=0, max_value=2**31 - 1)
    images = serializers.ListField(
        child=serializers.FileField(), max_length=MAX_POPULATION_SIZE, help_text="PNG, JPEG or WebP, in image order"
    )
    truncated = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=MAX_POPULATION_SIZE - 1),
        required=False,
        max_length=MAX_POPULATION_SIZE,
        help_text="indexes of images whose prompt the pipeline's tokenizer cut",
    )
    provenance = serializers.CharField(
        required=False,
        max_length=MAX_PROVENANCE_CHARS,
        help_text="a JSON array with one object per image, in image order: what the image's source was asked and "
        "answered (a hosted API's model, request id, revised prompt...), stored as the image's provenance as a "
        "local worker's store records it; absent: none",
    )


class FailureRequestSerializer(serializers.Serializer):
    worker = WorkerLabelField()
    error = serializers.CharField(max_length=4000)


# What the lease endpoints answer: a count (renewed or released), or an error.
COUNT_RESPONSES = {200: serializers.DictField(child=serializers.IntegerField()), 400: ERROR, 401: ERROR, 403: ERROR}
# What the endpoints acting on one claimed population answer: its new status, or why not.
HELD_POPULATION_RESPONSES = {
    200: serializers.DictField(child=serializers.CharField()),
    400: ERROR,
    401: ERROR,
    403: ERROR,
    404: ERROR,
    409: OpenApiResponse(ERROR, description="this worker no longer holds the population"),
}


def _claimed(population: Population) -> dict[str, Any]:
    generator = population.generator
    return {
        "id": population.pk,
        "size": population.size,
        "seeds": population.seeds,
        "prompts": population_prompts(
            population.prompt.caption,
            template=generator.prompt_template,
            settings=generator.settings,
            seeds=population.seeds,
        ),
        "caption": population.prompt.caption,
        "category": population.prompt.category,
        "generator": {
            "name": generator.name,
            "source": generator.source,
            "settings": generator.settings,
            "prompt_template": generator.prompt_template,
        },
    }


def _population_id(value: int) -> int:
    if value > MAX_ID:
        raise NotFound(f"no population {value}")
    return value


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


class ClaimApi(APIView):
    """Claim a batch of one generator's pending (or abandoned) populations under a lease; an empty list when idle."""

    permission_classes = [WorkerTokenOnly]

    @extend_schema(request=ClaimRequestSerializer, responses={200: ClaimSerializer, 400: ERROR, 401: ERROR, 403: ERROR})
    def post(self, request: Request) -> Response:
        data = _valid(ClaimRequestSerializer, request)
        worker = _worker(request, data["worker"])
        owner = data.get("owner")
        lease = timedelta(seconds=data["lease_seconds"])
        generator_ids = get_worker_generator_ids(token=_token(request))

        batch = services.plan_and_claim(
            claim=lambda: services.claim_generation_batch(
                worker=worker, max_images=data["max_images"], lease=lease, owner=owner, generator_ids=generator_ids
            ),
            plan=lambda: services.plan_populations(owner=owner),
            # Now and then anyway: the cache lets one claim per interval plan, whichever worker sends it.
            plan_due=lambda: cache.add(f"generation:planned:{owner or ''}", 1, timeout=services.PLAN_EVERY_S),
        )
        lease_until = max((p.lease_until for p in batch if p.lease_until), default=None)
        return Response(
            ClaimSerializer(
                {"worker": worker, "lease_until": lease_until, "populations": [_claimed(p) for p in batch]}
            ).data
        )


class LeaseRenewApi(APIView):
    """Extend this worker's leases; `held` counts those it still holds (the rest were reclaimed)."""

    permission_classes = [WorkerTokenOnly]

    @extend_schema(
        request=LeaseRequestSerializer,
        responses=COUNT_RESPONSES,
    )
    def post(self, request: Request) -> Response:
        data = _valid(LeaseRequestSerializer, request)
        _check_within_limits(request, data["populations"])
        held = services.renew_leases(
            worker=_worker(request, data["worker"]),
            population_ids=data["populations"],
            lease=timedelta(seconds=data["lease_seconds"]),
        )
        return Response({"held": held})


class ReleaseApi(APIView):
    """Hand unfinished populations back to the queue (a stopping worker)."""

    permission_classes = [WorkerTokenOnly]

    @extend_schema(
        request=ReleaseRequestSerializer,
        responses=COUNT_RESPONSES,
    )
    def post(self, request: Request) -> Response:
        data = _valid(ReleaseRequestSerializer, request)
        released = services.release_claims(worker=_worker(request, data["worker"]), population_ids=data["populations"])
        return Response({"released": released})


class BadProvenance(ApplicationError):
    code = "invalid_provenance"


def _read_provenance(text: str | None, images: int) -> list[dict[str, Any]]:
    """The upload's `provenance` field: one JSON object per image, in image order; BadProvenance says what is wrong."""
    if text is None:
        return [{} for _ in range(images)]
    try:
        records = json.loads(text)
    except ValueError:
        raise BadProvenance("provenance: not JSON; send an array with one object per image") from None
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise BadProvenance("provenance: must be a JSON array with one object per image, in image order")
    if len(records) != images:
        raise BadProvenance(f"provenance: {len(records)} record(s) for {images} image(s); send one per image")
    for index, record in enumerate(records):
        if "blank_seeds" in record:
            # Redrawn blank images are counted from this key (generation.selectors.get_blank_counts); only the
            # server's own worker redraws, since an upload's seeds are the planned ones.
            raise BadProvenance(f"provenance[{index}]: 'blank_seeds' is recorded by the server only, not uploaded")
    return records


def _read_uploads(
    files: list[Any], truncated: set[int], provenance: list[dict[str, Any]]
) -> list[services.UploadedImage]:
    limit = settings.GENERATION_UPLOAD_MAX_BYTES
    uploads = []
    for index, upload in enumerate(files):
        if upload.size > limit:
            raise ApplicationError(f"images[{index}]: {upload.size} bytes is more than the limit of {limit}")
        data = upload.read()
        try:
            facts = inspect_image(data)
        except BadImage as error:
            raise ApplicationError(f"images[{index}] ({upload.name}): {error}", code="invalid_image") from None
        uploads.append(
            services.UploadedImage(data=data, facts=facts, truncated=index in truncated, provenance=provenance[index])
        )
    return uploads


class UploadApi(APIView):
    """Store all N images of a claimed population at once; it becomes ready, or nothing changes."""

    permission_classes = [WorkerTokenOnly]

    @extend_schema(
        request={"multipart/form-data": UploadRequestSerializer},
        responses=HELD_POPULATION_RESPONSES,
    )
    def post(self, request: Request, population_id: int) -> Response:
        data = _valid(UploadRequestSerializer, request)
        _check_within_limits(request, [_population_id(population_id)])
        provenance = _read_provenance(data.get("provenance"), len(data["images"]))
        uploads = _read_uploads(data["images"], set(data.get("truncated", ())), provenance)
        stored = services.store_uploaded_population(
            worker=_worker(request, data["worker"]),
            population_id=_population_id(population_id),
            uploads=uploads,
            generation_ms=data["generation_ms"],
        )
        if not stored:
            raise Conflict(
                f"population {population_id} is not held by this worker (its lease ran out and the work was "
                "reclaimed, or it was never claimed with this token); nothing was stored",
                code="not_held",
            )
        return Response({"status": Population.Status.READY.value})


class FailureApi(APIView):
    """Record a failed attempt: back to the queue while attempts remain, else failed for good."""

    permission_classes = [WorkerTokenOnly]

    @extend_schema(
        request=FailureRequestSerializer,
        responses=HELD_POPULATION_RESPONSES,
    )
    def post(self, request: Request, population_id: int) -> Response:
        data = _valid(FailureRequestSerializer, request)
        _check_within_limits(request, [_population_id(population_id)])
        status = services.fail_population(
            worker=_worker(request, data["worker"]), population_id=_population_id(population_id), error=data["error"]
        )
        if status is None:
            raise Conflict(f"population {population_id} is not held by this worker", code="not_held")
        return Response({"status": status})
