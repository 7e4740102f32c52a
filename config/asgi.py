"""ASGI entry point: Django over HTTP and Channels consumers over WebSocket (daphne or uvicorn)."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Set up Django before importing anything that touches models (consumers, routing).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from arena.routing import websocket_urlpatterns  # noqa: E402
from config.api_handler import API_PREFIX, ApiHandler  # noqa: E402
from core.timing import ServerTimingMiddleware  # noqa: E402

# The JSON API gets a leaner middleware chain than the pages (config/api_handler.py).
django_api_app = ApiHandler()


async def django_http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    app = django_api_app if scope["path"].startswith(API_PREFIX) else django_asgi_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": ServerTimingMiddleware(django_http_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
