"""What every hosted image API provider shares: settings, keys, errors, retries, pacing and the images it returns.

Django-free, like generation.pipelines: the worker adapts a generator row to a provider and calls it as it
calls a pipeline. A provider's settings are checked here once (ProviderSettingsError names the field); its
key is read from the environment variable the generator names (`api_key_env`) when a call is made, and is
never put in a setting, a log line, an error message or an image's provenance (`redact` guards the texts
that come back from a provider).
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from generation.pipelines import GeneratedImage, PipelineError

logger = logging.getLogger("poparena.worker")

T = TypeVar("T")

_SIZE_RE = re.compile(r"^(?P<width>[1-9][0-9]{0,4})x(?P<height>[1-9][0-9]{0,4})$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Larger than any hosted API's largest image; a typo like 10240x10240 is refused when the generator is saved.
MAX_SIDE = 4096
REFUSAL_PREFIX = "content policy refusal"


class ProviderError(PipelineError):
    """A hosted API could not make an image; the message is for an operator and never holds the key."""


class ProviderSettingsError(ProviderError):
    """A generator's settings do not describe a usable provider call; the message names the field."""


class MissingKey(ProviderError):
    """The environment variable a generator's `api_key_env` names is not set where the worker runs."""


class ContentRefused(ProviderError):
    """The provider refused the prompt or its image under its content policy; `words` are the provider's own."""

    def __init__(self, words: str) -> None:
        self.words = words
        super().__init__(f"{REFUSAL_PREFIX}: {words}")


class Transient(ProviderError):
    """A failure worth another try (429, a 5xx, a timeout, a dropped connection); `retry_after` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


@dataclass(frozen=True)
class Limits:
    """How hard a worker may press one provider: the worker's defaults, lowered (never raised) by a generator's."""

    max_concurrency: int = 4
    requests_per_minute: float = 60.0
    max_retries: int = 4
    max_retry_wait_s: float = 60.0
    timeout_s: float = 120.0
    # The first backoff without a Retry-After; doubled per try up to max_retry_wait_s.
    backoff_s: float = 1.0


# Settings every API generator has; each provider adds its own options (ProviderSpec.options).
COMMON_SETTINGS = frozenset(
    {
        "api_key_env",
        "size",
        "price_per_image",
        "budget",
        "max_concurrency",
        "requests_per_minute",
        "max_retries",
        "timeout_s",
        "refusal_retries",
    }
)
# Settings the worker itself reads for any generator (generation.prompting's augmentation).
WORKER_SETTINGS = frozenset({"augment"})


def _number(settings: Mapping[str, Any], name: str, *, minimum: float, default: float | None) -> float | None:
    value = settings.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
        raise ProviderSettingsError(f"setting {name!r} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def _whole(settings: Mapping[str, Any], name: str, *, low: int, high: int) -> int | None:
    value = settings.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProviderSettingsError(f"setting {name!r} must be a whole number from {low} to {high}, got {value!r}")
    return value


def parse_size(value: object) -> tuple[int, int]:
    """`WIDTHxHEIGHT` as (width, height); ProviderSettingsError naming `size` otherwise."""
    match = _SIZE_RE.match(value) if isinstance(value, str) else None
    if match is None or int(match["width"]) > MAX_SIDE or int(match["height"]) > MAX_SIDE:
        raise ProviderSettingsError(f"setting 'size' must be \"WIDTHxHEIGHT\" (each 1 to {MAX_SIDE}), got {value!r}")
    return int(match["width"]), int(match["height"])


def check_base_url(value: object) -> str:
    """An http(s) URL with a host and no credentials or query: a URL is stored, so no key may ride in it."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username
        or parts.password
        or parts.query
        or parts.fragment
    ):
        raise ProviderSettingsError(
            "setting 'base_url' must be an http(s) URL with a host and no user, password or query "
            "(the key comes from api_key_env only)"
        )
    return str(value).rstrip("/")


@dataclass(frozen=True)
class ProviderSpec:
    """One API generator's call, checked: which provider and model, the key's variable, size, price and limits."""

    source: str
    provider: str
    model: str
    api_key_env: str
    width: int
    height: int
    price_per_image: float = 0.0
    budget: float | None = None
    max_concurrency: int | None = None
    requests_per_minute: float | None = None
    max_retries: int | None = None
    timeout_s: float | None = None
    refusal_retries: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def limits(self, defaults: Limits) -> Limits:
        """The worker's limits, each lowered to the generator's where it names a lower one."""
        return Limits(
            max_concurrency=min(defaults.max_concurrency, self.max_concurrency or defaults.max_concurrency),
            requests_per_minute=min(
                defaults.requests_per_minute, self.requests_per_minute or defaults.requests_per_minute
            ),
            max_retries=min(defaults.max_retries, self.max_retries if self.max_retries is not None else 99),
            max_retry_wait_s=defaults.max_retry_wait_s,
            timeout_s=min(defaults.timeout_s, self.timeout_s or defaults.timeout_s),
            backoff_s=defaults.backoff_s,
        )

    def key(self) -> str:
        """The key from the environment variable `api_key_env` names; MissingKey names the variable, never a value."""
        value = os.environ.get(self.api_key_env, "").strip()
        if not value:
            raise MissingKey(
                f"the environment variable {self.api_key_env} (setting 'api_key_env') is not set where this "
                "worker runs; set it there, the key is never stored in PopArena"
            )
        return value


def common_spec(
    *, source: str, provider: str, model: str, settings: Mapping[str, Any], options: Mapping[str, Any]
) -> ProviderSpec:
    """The settings every provider shares, checked; `options` are the provider's own, already checked."""
    env = settings.get("api_key_env")
    if not isinstance(env, str) or not _ENV_NAME_RE.match(env):
        raise ProviderSettingsError(
            "setting 'api_key_env' must name the environment variable that holds the key "
            f"(letters, digits and _), got {'a missing value' if env is None else type(env).__name__}"
        )
    width, height = parse_size(settings.get("size"))
    price = _number(settings, "price_per_image", minimum=0, default=0.0) or 0.0
    budget = _number(settings, "budget", minimum=0, default=None)
    refusal_retries = _whole(settings, "refusal_retries", low=0, high=3)
    if budget is not None and price <= 0:
        raise ProviderSettingsError("setting 'budget' needs a 'price_per_image' above 0 to count spend against")
    return ProviderSpec(
        source=source,
        provider=provider,
        model=model,
        api_key_env=env,
        width=width,
        height=height,
        price_per_image=price,
        budget=budget,
        max_concurrency=_whole(settings, "max_concurrency", low=1, high=64),
        requests_per_minute=_number(settings, "requests_per_minute", minimum=0.01, default=None),
        max_retries=_whole(settings, "max_retries", low=0, high=10),
        timeout_s=_number(settings, "timeout_s", minimum=1, default=None),
        refusal_retries=refusal_retries if refusal_retries is not None else 1,
        options=dict(options),
    )


def check_options(settings: Mapping[str, Any], allowed: Mapping[str, Callable[[object], bool]]) -> dict[str, Any]:
    """The provider's own options among `settings`; unknown settings are refused, naming the first."""
    known = COMMON_SETTINGS | WORKER_SETTINGS | set(allowed)
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ProviderSettingsError(f"unknown setting {unknown[0]!r} (allowed: {', '.join(sorted(known))})")
    options = {}
    for name, valid in allowed.items():
        if name in settings:
            if not valid(settings[name]):
                raise ProviderSettingsError(f"setting {name!r} has an unusable value {settings[name]!r}")
            options[name] = settings[name]
    return options


# --- texts from a provider ---------------------------------------------------------------------------------


def redact(text: str, secret: str | None) -> str:
    """`text` without `secret` in it, and cut short: what a provider said, fit for an error column or a log."""
    if secret:
        text = text.replace(secret, "[key]")
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


def answer_error(
    *, status: int, words: str, env: str, refused: bool, retry_after: float | None = None, code: str = ""
) -> ProviderError:
    """What a provider's error answer means to the worker, for every provider; `words` are its own, already redacted.

    A refused key names its variable and never repeats the answer (which may quote part of the key); a 429 or a
    5xx is worth another try (Transient, with the answer's Retry-After); a refusal under the provider's content
    policy (`refused`, by the provider's own code or words) is ContentRefused; anything else fails the try.
    """
    status_code = f"{status} {code}".strip()
    if status in (401, 403):
        return ProviderError(f"the key in {env} was refused ({status_code})")
    if status == 429 or status >= 500:
        return Transient(f"{status}: {words}", retry_after=retry_after)
    if refused:
        return ContentRefused(words)
    return ProviderError(f"{status_code}: {words}")


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's seconds (the delta form; an HTTP date counts as no hint), or None."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


# --- pacing, retries, concurrency --------------------------------------------------------------------------


def _sleep(seconds: float) -> None:
    # One seam for tests: they record the waits (a 429's Retry-After) instead of sleeping through them.
    time.sleep(seconds)


class Pacer:
    """Request starts at most `per_minute` a minute, across every thread of this process calling one provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_at = 0.0

    def wait(self, per_minute: float) -> None:
        interval = 60.0 / per_minute
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_at)
            self._next_at = start + interval
        if start > now:
            time.sleep(start - now)


_pacers: dict[tuple[str, str], Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(spec: ProviderSpec) -> Pacer:
    """One pacer per provider and key variable: two generators on one account share its rate."""
    with _pacers_lock:
        return _pacers.setdefault((spec.provider, spec.api_key_env), Pacer())


def with_retries(call: Callable[[], T], *, limits: Limits, pacer: Pacer, what: str) -> T:
    """`call()`, tried again after a Transient up to `limits.max_retries` times with backoff; bounded in all.

    A Retry-After hint is waited out as given, up to `limits.max_retry_wait_s` (past that the try is
    given up: the provider wants longer than a claim's lease can wait). Other errors go straight up.
    """
    tries = 0
    while True:
        pacer.wait(limits.requests_per_minute)
        try:
            return call()
        except Transient as exc:
            tries += 1
            if tries > limits.max_retries:
                raise ProviderError(f"{what}: gave up after {tries} tries: {exc}") from None
            if exc.retry_after is not None:
                if exc.retry_after > limits.max_retry_wait_s:
                    raise ProviderError(
                        f"{what}: the provider asked to wait {exc.retry_after:g}s, more than the "
                        f"{limits.max_retry_wait_s:g}s a worker waits: {exc}"
                    ) from None
                wait = exc.retry_after
            else:
                backoff = limits.backoff_s * 2 ** (tries - 1)
                wait = min(limits.max_retry_wait_s, backoff * random.uniform(0.8, 1.2))  # noqa: S311 - jitter only
            logger.warning("%s: %s; try %d of %d in %.1fs", what, exc, tries + 1, limits.max_retries + 1, wait)
            _sleep(wait)


def run_concurrently(jobs: Sequence[Callable[[], T]], *, max_concurrency: int) -> list[T]:
    """Every job's result in order, at most `max_concurrency` at once; the first error is raised after all end."""
    if len(jobs) <= 1 or max_concurrency <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(max_concurrency, len(jobs)), thread_name_prefix="provider") as pool:
        futures = [pool.submit(job) for job in jobs]
        errors = [error for future in futures if (error := future.exception()) is not None]
        # A refusal says the most about the prompt; report it before other failures of the same batch.
        errors.sort(key=lambda error: not isinstance(error, ContentRefused))
        if errors:
            raise errors[0]
        return [future.result() for future in futures]


# --- images -------------------------------------------------------------------------------------------------


def decode_image(data: bytes, *, what: str) -> Any:
    """Decoded pixels (a PIL image) of bytes a provider sent; a malformed answer is a ProviderError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return opened.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ProviderError(f"{what}: the answer held no decodable image ({type(exc).__name__})") from None


def decode_base64_image(text: object, *, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise ProviderError(f"{what}: the answer held no image data")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError(f"{what}: the answer's image data is not base64") from None


def provided_image(data: bytes, *, seed: int, prompt: str, provenance: dict[str, Any], what: str) -> GeneratedImage:
    """A provider's image as the worker stores any generated one, with what was asked and answered."""
    image = decode_image(data, what=what)
    return GeneratedImage(
        image=image,
        seed=seed,
        prompt=prompt,
        truncated=False,
        width=image.width,
        height=image.height,
        provenance=provenance,
    )


class ImageProvider:
    """A hosted API the worker calls like a pipeline: one image per (prompt, seed), in order.

    A provider implements `one` with the helpers here, which every provider shares: its official client kept per
    key (`client`), each request and each output fetch through one retry loop (`retried`, `fetched`), transport
    failures as tries worth repeating (`reaching`) and error answers read by one rule (`answer_error`).
    """

    # Where the provider's API is served unless a generator's `base_url` says otherwise.
    default_base_url = ""

    def __init__(self, spec: ProviderSpec, *, defaults: Limits) -> None:
        self.spec = spec
        self.limits = spec.limits(defaults)
        self.pacer = pacer_for(spec)
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return str(self.spec.options.get("base_url", self.default_base_url))

    def client(self, key: str, make: Callable[[str], Any]) -> Any:
        """The official client made by `make(key)`, kept for that key: the key goes to the client only, and a
        rotated key (a new value in the variable) gets a new client."""
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                client = make(key)
                self._clients = {key: client}
            return client

    def retried(self, call: Callable[[], T], *, what: str) -> T:
        """`call()` through the one retry loop (with_retries), paced and bounded by this provider's limits."""
        return with_retries(call, limits=self.limits, pacer=self.pacer, what=what)

    def fetched(self, url: object, *, what: str) -> bytes:
        """The image at an output URL, fetched without the key through the same retry loop."""
        from generation.providers.fetching import fetch_image

        return self.retried(lambda: fetch_image(url, timeout_s=self.limits.timeout_s, what=what), what=what)

    @contextmanager
    def reaching(
        self, *, timeouts: tuple[type[BaseException], ...], unreachable: tuple[type[BaseException], ...]
    ) -> Iterator[None]:
        """A client call whose transport failures are tries worth repeating: no answer in time (one of `timeouts`,
        checked first, since clients make a timeout a kind of connection error) or the server not reached."""
        try:
            yield
        except timeouts:
            raise Transient(f"no answer within {self.limits.timeout_s:g}s") from None
        except unreachable as exc:
            raise Transient(f"could not reach {self.base_url} ({type(exc.__cause__ or exc).__name__})") from None

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        """One image per pair, `limits.max_concurrency` requests at a time; a refusal gets `refusal_retries` more."""
        if len(prompts) != len(seeds):
            raise ProviderError(f"got {len(prompts)} prompts but {len(seeds)} seeds; they must pair up")
        key = self.spec.key()
        jobs = [
            (lambda prompt=prompt, seed=seed: self._one_with_refusals(key, prompt, seed))
            for prompt, seed in zip(prompts, seeds, strict=True)
        ]
        try:
            return run_concurrently(jobs, max_concurrency=self.limits.max_concurrency)
        except ProviderError:
            raise
        except Exception as exc:  # a client's own bug or an answer it could not parse: this work fails, not the worker
            # Only the type: a third-party message may quote anything, the request's headers included.
            logger.error("%s: the call failed unexpectedly (%s)", self.spec.source, type(exc).__name__)
            raise ProviderError(f"{self.spec.source}: the call failed unexpectedly ({type(exc).__name__})") from None

    def _one_with_refusals(self, key: str, prompt: str, seed: int) -> GeneratedImage:
        refusals: list[str] = []
        while True:
            try:
                image = self.one(key, prompt, seed)
            except ContentRefused as exc:
                refusals.append(exc.words)
                if len(refusals) > self.spec.refusal_retries:
                    raise
                logger.warning("%s refused a prompt (%s); asking once more", self.spec.source, exc.words)
                continue
            if refusals and image.provenance is not None:
                image.provenance["refused_before"] = refusals
            return image

    def one(self, key: str, prompt: str, seed: int) -> GeneratedImage:
        """One image; ContentRefused, MissingKey or ProviderError when none came. Providers implement it."""
        raise NotImplementedError
