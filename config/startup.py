"""Start-up validation of the environment: one clear line per misconfiguration, never a traceback."""

from __future__ import annotations

from typing import Any, NoReturn
from urllib.parse import urlsplit

import environ

SUPPORTED_DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "pgsql", "postgis")


def fail(variable: str, problem: str) -> NoReturn:
    """Stop the process with one line naming the variable (SystemExit prints it to stderr, exit 1)."""
    raise SystemExit(f"PopArena configuration error: {variable}: {problem}")


def parse_database_url(url: str) -> dict[str, Any]:
    """DATABASE_URL -> Django DATABASES entry, or exit naming DATABASE_URL."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme not in SUPPORTED_DATABASE_SCHEMES:
        fail(
            "DATABASE_URL",
            f"{url!r} is not a database URL; expected postgres://USER@HOST:PORT/NAME or sqlite:///PATH",
        )
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # environ raises several types for malformed URLs
        fail("DATABASE_URL", f"{url!r} could not be parsed ({exc})")
    if not config.get("NAME"):
        fail("DATABASE_URL", f"{url!r} names no database")
    if scheme != "sqlite" and config.get("PORT") not in ("", None):
        try:
            int(config["PORT"])
        except (TypeError, ValueError):
            fail("DATABASE_URL", f"{url!r} has a port that is not a number")
    return config


def check_redis(url: str, timeout_s: float = 3.0) -> None:
    """Ping REDIS_URL once at start so a wrong URL fails now, not on the first WebSocket message."""
    import redis

    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        fail("REDIS_URL", f"{url!r} is not a Redis URL; expected redis://HOST:PORT/DB")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        client.ping()
        client.close()
    except ValueError as exc:
        fail("REDIS_URL", f"{url!r} could not be parsed ({exc})")
    except redis.RedisError as exc:
        fail("REDIS_URL", f"Redis at {url!r} is unreachable ({exc})")
