"""Security middleware: a Content-Security-Policy without inline scripts on every response; NUL bytes refused;
the cookies MTurk's cross-site frame needs, only where it needs them."""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import Morsel
from typing import Any
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
                ancestors = " ".join(settings.MTURK_FRAME_ANCESTORS) or "'none'"
                policy = policy.replace("frame-ancestors 'none'", f"frame-ancestors {ancestors}")
                submit_to = " ".join(settings.MTURK_SUBMIT_ORIGINS)
                policy = policy.replace("form-action 'self'", f"form-action 'self' {submit_to}")
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
    """Let MTurk (MTURK_FRAME_ANCESTORS) frame this page and receive its form: the ExternalQuestion flow.

    With CROSS_SITE_FRAME_COOKIES on, its cookies are also the kind a cross-site frame sends
    (CrossSiteFrameCookiesMiddleware).
    """
    response.mturk_frame = True  # type: ignore[attr-defined]
    response.xframe_options_exempt = True
    return response


# Set in a session whose pages MTurk framed: every later response of it (the API calls of the framed
# page) keeps its cookies the kind the frame sends.
CROSS_SITE_FRAME_SESSION_KEY = "poparena.cross_site_frame"


class PartitionedMorsel(Morsel[str]):
    """A cookie written with the `Partitioned` attribute (CHIPS), which http.cookies before Python 3.14 lacks."""

    def OutputString(self, attrs: Any = None) -> str:  # noqa: N802 (http.cookies' name)
        return f"{super().OutputString(attrs)}; Partitioned"


class CrossSiteFrameCookiesMiddleware:
    """With CROSS_SITE_FRAME_COOKIES on: the session and CSRF cookies of MTurk's frame `SameSite=None; Partitioned`.

    MTurk shows a HIT's page in an iframe on its own site, so every request of that page is
    cross-site and a browser sends no `SameSite=Lax` cookie with it: the worker is admitted on
    arrival, but the page's API calls come without a session and no vote can be cast. A cookie
    the frame sends must be `SameSite=None` (which browsers accept only with `Secure`, so only
    over HTTPS), and browsers that block third-party cookies still keep one that is
    `Partitioned` (CHIPS): stored under the framing site, never sent when PopArena is visited
    directly or framed by anyone else. Django 5.2 cannot write that attribute; this writes it.

    Only where needed: the responses of pages MTurk may frame (`allow_mturk_framing`) and every
    later response of a session one of them began (CROSS_SITE_FRAME_SESSION_KEY), which are the
    framed page's own API calls. Every other cookie keeps Django's `SameSite=Lax`. CSRF works
    as before: the page reads its token from the (partitioned) CSRF cookie and sends it as a
    header from PopArena's own origin. Sits outside SessionMiddleware, to see the cookies it set.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not settings.CROSS_SITE_FRAME_COOKIES:
            return response
        session = getattr(request, "session", None)
        framed_page = getattr(response, "mturk_frame", False)
        if (
            framed_page
            and session is not None
            and not session.is_empty()
            and not session.get(CROSS_SITE_FRAME_SESSION_KEY)
        ):
            # Once per session; SessionMiddleware has already saved it, so save again.
            session[CROSS_SITE_FRAME_SESSION_KEY] = True
            session.save()
        names = [name for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME) if name in response.cookies]
        # Checked only when a cookie is being set, so other responses never load the session for this.
        if names and (framed_page or (session is not None and session.get(CROSS_SITE_FRAME_SESSION_KEY))):
            for name in names:
                response.cookies[name] = _cross_site_frame_cookie(response.cookies[name])
        return response


def _cross_site_frame_cookie(cookie: Morsel[str]) -> PartitionedMorsel:
    relaxed = PartitionedMorsel()
    relaxed.set(cookie.key, cookie.value, cookie.coded_value)
    relaxed.update(cookie)
    relaxed["samesite"] = "None"
    relaxed["secure"] = True
    return relaxed


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
