"""Security middleware: a Content-Security-Policy without inline scripts on every response; NUL bytes refused."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


class ContentSecurityPolicyMiddleware:
    """Scripts and styles only from this site; images also from the media origin when it is elsewhere.

    The admin keeps inline style attributes (Django's own templates use them); nothing anywhere
    may run inline script, so an injected <script> in a prompt or caption cannot execute.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        media = _origin(settings.MEDIA_URL)
        images = " ".join(filter(None, ["'self'", "data:", "blob:", media]))
        self.policy = (
            f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; connect-src 'self'; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
        )
        self.admin_policy = self.policy.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            admin = request.path.startswith("/admin/")
            policy = self.admin_policy if admin else self.policy
            if getattr(response, "mturk_frame", False):
                origins = " ".join(settings.MTURK_SUBMIT_ORIGINS)
                policy = policy.replace("frame-ancestors 'none'", f"frame-ancestors {origins}")
                policy = policy.replace("form-action 'self'", f"form-action 'self' {origins}")
            response["Content-Security-Policy"] = policy
        return response


class ApiHeadersMiddleware:
    """The JSON API's page policies: nothing may frame it, and a response loads nothing (it is data, not a page).

    Stands in for XFrameOptionsMiddleware and ContentSecurityPolicyMiddleware on /api/v1/
    (config/api_handler.py); a response that sets its own policy keeps it.
    """

    POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("X-Frame-Options", "DENY")
        response.setdefault("Content-Security-Policy", self.POLICY)
        return response


def allow_mturk_framing(response: HttpResponse) -> HttpResponse:
    """Let MTurk (and only MTurk) frame this page and receive its form: the ExternalQuestion flow."""
    response.mturk_frame = True  # type: ignore[attr-defined]
    response.xframe_options_exempt = True
    return response


class RejectNulMiddleware:
    """Refuse NUL characters in the path, the query string or a JSON body with a clear 400.

    No text field can hold one (PostgreSQL refuses them outright), no legitimate client sends
    one, and stopping them at the door keeps every view and query from having to.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = None
        if "\x00" in request.path:
            where = "the URL path"
        elif "\x00" in unquote(request.META.get("QUERY_STRING", "")):
            where = "the query string"
        elif request.content_type == "application/json" and (b"\x00" in request.body or b"\\u0000" in request.body):
            where = "the JSON body"
        if where is None:
            return self.get_response(request)
        message = f"{where} contains a NUL character (\\u0000), which no field accepts"
        if request.path.startswith("/api/"):
            return JsonResponse({"error": {"code": "invalid", "message": message}}, status=400)
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
