"""ASGI wrapper that reports the server's own time per request in a `Server-Timing` header.

Measured from the moment the server hands the request to the application until the response
headers go out: the time a client waits on us, without its network or its own scheduling.
Benchmarks read it; browsers show it in their developer tools.
"""

from __future__ import annotations

import time
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


class ServerTimingMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                duration = (time.perf_counter() - started) * 1000
                headers = [*message.get("headers", []), (b"server-timing", f"app;dur={duration:.1f}".encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)
