"""The ASGI handler for the JSON API under /api/v1/: only the middleware a JSON API needs, in one thread hop.

Django's ASGIHandler builds one chain from settings.MIDDLEWARE for every path. The pages need
all of it; the API does not: messages (no template shows them), WhiteNoise (no static files
here), Django's CSRF middleware (every /api/v1/ view is a DRF APIView, which is csrf_exempt;
DRF's SessionAuthentication runs the same CSRF check itself for a logged-in session, and a
token request carries no cookie to forge) and the HTML page policies (X-Frame-Options and a
Content-Security-Policy written for pages, replaced by ApiHeadersMiddleware's stricter ones).

At most settings.API_CONCURRENCY requests (the database pool's size) run at once per process;
the others wait their turn in the event loop. Without the limit, 200 flat-out clients put 200
requests into threads at once, 192 of them waiting for one of the pool's 8 connections; once
queueing passed DB_POOL_TIMEOUT (10 s) some failed with 500 (bench/load_faults.py kill-worker
on the one-request path).

The chain is built sync-only and runs in one `sync_to_async` hop per request. The full chain
under ASGI hops three times: into a thread for the sync middleware, back to the event loop
(`async_to_sync`) for Django's async response path, and into a thread again for the sync
view. An async view added here later still works (Django's `_get_response` runs it with
`async_to_sync`), but should get a chain of its own rather than this one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string

API_PREFIX = "/api/v1/"


class ApiHandler(ASGIHandler):
    """ASGIHandler over settings.API_MIDDLEWARE (sync middleware only), for paths under API_PREFIX."""

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler.load_middleware for the sync case, over another list of middleware.
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]  # BaseHandler's own
        for path in reversed(settings.API_MIDDLEWARE):
            middleware = import_string(path)
            if not getattr(middleware, "sync_capable", True):
                raise RuntimeError(f"API_MIDDLEWARE: {path} cannot run synchronously")
            try:
                instance = middleware(handler)
            except MiddlewareNotUsed:
                continue
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler

    def __init__(self) -> None:
        super().__init__()
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # The whole sync chain (middleware and view) in one thread, as under WSGI.
        run = sync_to_async(self.get_response, thread_sensitive=True)
        if settings.API_CONCURRENCY <= 0:
            response: HttpResponseBase = await run(request)
            return response
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:  # a semaphore belongs to one event loop
            self._slots, self._slots_loop = asyncio.Semaphore(settings.API_CONCURRENCY), loop
        async with self._slots:
            response = await run(request)
        return response
