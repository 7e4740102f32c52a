"""Start-up validation of the environment: one clear line per misconfiguration, never a traceback."""

from __future__ import annotations

from typing import Any, NoReturn
from urllib.parse import urlsplit

import environ

SUPPORTED_DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "pgsql", "postgis")


def fail(variable: str, problem: str) -> NoReturn:
    """Stop the process with one line naming the variable (SystemExit prints it to stderr, exit 1)."""
    raise SystemExit(f"PopArena configuration error: {variable}: {problem}")


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_bool(variable: str, raw: str | None, *, default: bool) -> bool:
    """A strict boolean: a typo such as DEBUG=flase must not silently mean False."""
    if raw is None or raw.strip() == "":
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    fail(variable, f"{raw!r} is not a boolean (use true or false)")


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


RATE_PERIODS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")


def parse_rate(variable: str, raw: str | None, *, default: str) -> str | None:
    """A throttle rate such as 1200/min; 0, off or none turns the throttle off (None)."""
    value = default if raw is None or raw.strip() == "" else raw.strip().lower()
    if value in ("0", "off", "none"):
        return None
    count, _, period = value.partition("/")
    if not count.isdigit() or period not in RATE_PERIODS:
        fail(variable, f"{value!r} is not a rate; use a count per period such as 1200/min, 50/s or 0 to turn it off")
    if int(count) == 0:
        return None
    return value


def parse_seconds(variable: str, raw: str | None, *, default: float, maximum: float) -> float:
    """A duration in seconds: a finite number from 0 to `maximum` (such as 1 or 0.5); anything else stops the start."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        fail(variable, f"{raw!r} is not a number of seconds (use e.g. 1 or 0.5)")
    if not 0 <= value <= maximum:  # NaN fails this too
        fail(variable, f"{raw!r} is out of range: use a number of seconds from 0 to {maximum:g}")
    return value
