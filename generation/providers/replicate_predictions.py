"""Replicate's predictions API through the official `replicate` client: `replicate:OWNER/MODEL[:VERSION]`.

Create a prediction (POST /v1/models/OWNER/MODEL/predictions, or POST /v1/predictions with a version),
poll it (GET /v1/predictions/ID) until it ends, then fetch its output URL without the key. Creating is
retried here (429 with Retry-After, 5xx, timeouts); the client retries its own polls on 429/503/504, with
every Retry-After cut to the worker's longest wait. Most image models take a seed: it is sent as the input
named by `seed_input` (default "seed"; null sends none) and then recorded as reproducing the image.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from generation.pipelines import GeneratedImage
from generation.providers.base import (
    ContentRefused,
    ImageProvider,
    Limits,
    ProviderError,
    ProviderSettingsError,
    ProviderSpec,
    _sleep,
    answer_error,
    check_base_url,
    check_options,
    common_spec,
    provided_image,
    redact,
    retry_after_seconds,
)

REPLICATE_BASE_URL = "https://api.replicate.com"
_MODEL_RE = re.compile(r"^(?P<owner>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+)(?::(?P<version>[0-9a-f]{8,128}))?$")
_INPUT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Replicate has no refusal code: a failed prediction whose error reads like one of these is a refusal.
REFUSAL_WORDS = re.compile(r"nsfw|safety|content polic|flagged|sensitive content|moderation", re.IGNORECASE)

OPTIONS: Mapping[str, Callable[[object], bool]] = {
    # The model's own inputs beside prompt, size and seed (see the model's API page), e.g. {"num_inference_steps": 4}.
    "input": lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v) and "prompt" not in v,
    # "width_height" sends the size as the inputs width and height; "none" leaves it to `input` (aspect_ratio...).
    "size_inputs": lambda v: v in ("width_height", "none"),
    "seed_input": lambda v: v is None or (isinstance(v, str) and bool(_INPUT_NAME_RE.match(v))),
    "poll_interval_s": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0.01 <= v <= 30,
    "base_url": lambda v: isinstance(v, str),
}


def spec_from_settings(source: str, provider: str, model: str, settings: Mapping[str, Any]) -> ProviderSpec:
    options = check_options(settings, OPTIONS)
    if _MODEL_RE.match(model) is None:
        raise ProviderSettingsError(
            f"source {source!r} must be replicate:OWNER/MODEL or replicate:OWNER/MODEL:VERSION (a hex version id)"
        )
    if "base_url" in options:
        options["base_url"] = check_base_url(options["base_url"])
    return common_spec(source=source, provider=provider, model=model, settings=settings, options=options)


_seen = threading.local()


def _transport(cap_s: float) -> Any:
    """httpx transport that notes each answer's Retry-After (ReplicateError drops headers) and caps it at `cap_s`."""
    import httpx

    class HintKeeping(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            hint = retry_after_seconds(response.headers.get("Retry-After"))
            _seen.retry_after = hint
            if hint is not None and hint > cap_s:
                # The client's own poll retries sleep whatever Retry-After says; a worker waits at most cap_s.
                response.headers["Retry-After"] = f"{cap_s:g}"
            return response

    return HintKeeping()


class ReplicatePredictions(ImageProvider):
    default_base_url = REPLICATE_BASE_URL

    def __init__(self, spec: ProviderSpec, *, defaults: Limits) -> None:
        super().__init__(spec, defaults=defaults)
        match = _MODEL_RE.match(spec.model)
        assert match is not None  # spec_from_settings checked it
        self.model = f"{match['owner']}/{match['name']}"
        self.version = match["version"]

    def _make_client(self, key: str) -> Any:
        import httpx
        import replicate

        timeout = httpx.Timeout(self.limits.timeout_s, connect=min(10.0, self.limits.timeout_s))
        return replicate.Client(
            api_token=key, base_url=self.base_url, timeout=timeout, transport=_transport(self.limits.max_retry_wait_s)
        )

    def model_input(self, prompt: str, seed: int) -> dict[str, Any]:
        """The prediction's input, as sent and as recorded."""
        model_input: dict[str, Any] = {"prompt": prompt}
        if self.spec.options.get("size_inputs", "width_height") == "width_height":
            model_input.update(width=self.spec.width, height=self.spec.height)
        seed_input = self.spec.options.get("seed_input", "seed")
        if seed_input is not None:
            model_input[seed_input] = seed
        model_input.update(self.spec.options.get("input", {}))
        return model_input

    def one(self, key: str, prompt: str, seed: int) -> GeneratedImage:
        what = f"{self.spec.source} ({self.spec.size})"
        client = self.client(key, self._make_client)
        model_input = self.model_input(prompt, seed)
        prediction = self.retried(lambda: self._create(client, key, model_input), what=what)
        prediction = self._wait(prediction, key, what)
        output = prediction.output
        url = output[0] if isinstance(output, list) and output else output
        image_bytes = self.fetched(url, what=what)
        parts = urlsplit(url) if isinstance(url, str) and not url.startswith("data:") else None
        seed_input = self.spec.options.get("seed_input", "seed")
        provenance = {
            "provider": "replicate",
            "endpoint": self.base_url,
            "model": self.model,
            "version": getattr(prediction, "version", None) or self.version,
            "asked": {"input": model_input, **({"version": self.version} if self.version else {})},
            "answered": {
                "status": prediction.status,
                "metrics": getattr(prediction, "metrics", None),
                "created_at": getattr(prediction, "created_at", None),
                "completed_at": getattr(prediction, "completed_at", None),
                "output": f"{parts.scheme}://{parts.netloc}{parts.path}" if parts else "data URL",
            },
            "request_id": prediction.id,
            "seed": seed if seed_input is not None else None,
        }
        return provided_image(image_bytes, seed=seed, prompt=prompt, provenance=provenance, what=what)

    def _create(self, client: Any, key: str, model_input: dict[str, Any]) -> Any:
        if self.version:
            return self._call(lambda: client.predictions.create(version=self.version, input=model_input), key)
        return self._call(lambda: client.models.predictions.create(model=self.model, input=model_input), key)

    def _call(self, call: Callable[[], Any], key: str) -> Any:
        import httpx
        from replicate.exceptions import ReplicateError

        _seen.retry_after = None
        try:
            with self.reaching(timeouts=(httpx.TimeoutException,), unreachable=(httpx.TransportError,)):
                return call()
        except ReplicateError as exc:
            raise _status_error(exc, key=key, env=self.spec.api_key_env) from None
        except (ValueError, TypeError, KeyError) as exc:  # an answer the client could not read as a prediction
            raise ProviderError(f"the answer was not a prediction ({type(exc).__name__})") from None

    def _wait(self, prediction: Any, key: str, what: str) -> Any:
        """Poll until the prediction ends; a refusal, a failure or the deadline end the try."""
        interval = float(self.spec.options.get("poll_interval_s", 1.0))
        deadline = time.monotonic() + self.limits.timeout_s
        while prediction.status not in ("succeeded", "failed", "canceled"):
            if time.monotonic() > deadline:
                self._call(prediction.cancel, key)
                raise ProviderError(
                    f"{what}: prediction {prediction.id} did not finish within {self.limits.timeout_s:g}s (canceled)"
                )
            _sleep(interval)
            self._call(prediction.reload, key)
        if prediction.status == "succeeded":
            if not prediction.output:
                raise ProviderError(f"{what}: prediction {prediction.id} succeeded with no output")
            return prediction
        words = redact(str(prediction.error or prediction.status), key)
        if REFUSAL_WORDS.search(words):
            raise ContentRefused(words)
        raise ProviderError(f"{what}: prediction {prediction.id} {prediction.status}: {words}")


def _status_error(exc: Any, *, key: str, env: str) -> ProviderError:
    status = exc.status or 0
    words = redact(str(exc.detail or exc.title or ""), key) or f"HTTP {status}"
    return answer_error(
        status=status,
        words=words,
        env=env,
        refused=bool(REFUSAL_WORDS.search(words)),
        retry_after=getattr(_seen, "retry_after", None),
    )
