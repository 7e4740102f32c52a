"""API plumbing shared by every app: errors in one JSON shape, {"error": {"code", "message"}}."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError, StorageUnavailable

# The one error shape in the OpenAPI schema: every app's views name it, so there is one component.
ERROR = inline_serializer(
    "Error",
    {"error": inline_serializer("ErrorBody", {"code": serializers.CharField(), "message": serializers.CharField()})},
)


def _first_message(detail: Any) -> str:
    """Flatten DRF's nested error details into one readable sentence naming the field."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _first_message(value)
            return inner if field == "non_field_errors" else f"{field}: {inner}"
        return "invalid request"
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "invalid request"
    return str(detail)


def error_response(code: str, message: str, http_status: int) -> Response:
    return Response({"error": {"code": code, "message": message}}, status=http_status)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        refused = error_response(exc.code, exc.message, exc.status)
        if isinstance(exc, StorageUnavailable):
            refused["Retry-After"] = str(exc.retry_after_s)
        return refused
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.ValidationError):
        code = "invalid"
    detail = getattr(exc, "detail", response.data)
    message = _first_message(detail)
    if isinstance(exc, exceptions.Throttled):
        # DRF has already set Retry-After; say which limit and when to come back in words too.
        limit = getattr(context.get("request"), "throttled_by", "this client")
        seconds = getattr(exc, "wait", None)
        wait = f" in {math.ceil(seconds)} s" if seconds is not None else " later"
        message = f"too many requests from {limit}; try again{wait}"
    response.data = {"error": {"code": code, "message": message}}
    return response


def storage_down_response(error: StorageUnavailable) -> HttpResponse:
    """A plain Django view's answer while the media storage cannot be reached: the API's error shape, Retry-After,
    never cached (an <img> shows nothing either way; a script can tell why and when to come back)."""
    down = JsonResponse({"error": {"code": error.code, "message": error.message}}, status=error.status)
    down["Retry-After"] = str(error.retry_after_s)
    down["Cache-Control"] = "no-store"
    return down


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: a URL under /api/ that matches no route (a bad slug, say) answers in the API's shape."""
    if _is_api(request):
        return JsonResponse(
            {"error": {"code": "not_found", "message": f"no API endpoint at {request.path}"}}, status=404
        )
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: what Django refuses before any view runs (too many form fields or files, a body over
    its limit, a Host it does not serve) answers an API client in the API's shape, naming the limit."""
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, TooManyFieldsSent):
        message = f"the request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields"
    elif isinstance(exception, TooManyFilesSent):
        message = f"the request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files"
    elif isinstance(exception, RequestDataTooBig):
        message = f"the request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
    else:
        message = "bad request"
    return JsonResponse({"error": {"code": "bad_request", "message": message}}, status=400)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: API clients get JSON they can parse, people the usual page."""
    if _is_api(request):
        return JsonResponse({"error": {"code": "server_error", "message": "internal server error"}}, status=500)
    return defaults.server_error(request)
