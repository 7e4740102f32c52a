"""OpenAI's Images API (`images.generate`) through the official client: `openai:MODEL`, `openai-compatible:MODEL`.

One request per image (n=1), so every image has its own request id, revised prompt and refusal. The
client's own retries are off (max_retries=0): the providers' one retry loop (ImageProvider.retried in
generation.providers.base) retries 429s (waiting out Retry-After), 5xx answers and timeouts, bounded by the
worker's limits. The Images API takes no seed;
an `openai-compatible` server that does gets one with `send_seed`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from generation.pipelines import GeneratedImage
from generation.providers.base import (
    ImageProvider,
    ProviderError,
    ProviderSettingsError,
    ProviderSpec,
    answer_error,
    check_base_url,
    check_options,
    common_spec,
    decode_base64_image,
    provided_image,
    redact,
    retry_after_seconds,
)

OPENAI_BASE_URL = "https://api.openai.com/v1"
# Error codes OpenAI answers a prompt or image its safety system refused with (DALL-E 3; GPT Image models).
REFUSAL_CODES = frozenset({"content_policy_violation", "moderation_blocked"})


def _text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 100


OPTIONS: Mapping[str, Callable[[object], bool]] = {
    # Passed to images.generate as given (see OpenAI's Images API reference for each model's values).
    "quality": _text,
    "style": _text,
    "background": _text,
    "moderation": _text,
    "output_format": _text,
    "output_compression": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100,
    "response_format": lambda v: v in ("b64_json", "url"),
    # Ours: where the API is served (required for openai-compatible), and whether that server takes a seed.
    "base_url": lambda v: isinstance(v, str),
    "send_seed": lambda v: isinstance(v, bool),
}
PASSED = ("quality", "style", "background", "moderation", "output_format", "output_compression", "response_format")


def spec_from_settings(source: str, provider: str, model: str, settings: Mapping[str, Any]) -> ProviderSpec:
    options = check_options(settings, OPTIONS)
    if provider == "openai-compatible" and "base_url" not in options:
        raise ProviderSettingsError("setting 'base_url' is required for an openai-compatible: generator")
    if "base_url" in options:
        options["base_url"] = check_base_url(options["base_url"])
    if options.get("send_seed") and provider == "openai":
        raise ProviderSettingsError("setting 'send_seed': OpenAI's Images API takes no seed (openai-compatible only)")
    if not model or len(model) > 200 or any(c.isspace() for c in model):
        raise ProviderSettingsError(f"source {source!r} must name a model after the colon, e.g. openai:gpt-image-1")
    return common_spec(source=source, provider=provider, model=model, settings=settings, options=options)


class OpenAIImages(ImageProvider):
    default_base_url = OPENAI_BASE_URL

    def _make_client(self, key: str) -> Any:
        import openai

        # The client's own retries are off: every retry goes through the one loop (ImageProvider.retried).
        return openai.OpenAI(api_key=key, base_url=self.base_url, max_retries=0, timeout=self.limits.timeout_s)

    def asked(self, prompt: str, seed: int) -> dict[str, Any]:
        """The request's fields, as sent and as recorded."""
        asked: dict[str, Any] = {"model": self.spec.model, "prompt": prompt, "n": 1, "size": self.spec.size}
        asked.update({name: self.spec.options[name] for name in PASSED if name in self.spec.options})
        if "response_format" not in asked and not self.spec.model.startswith("gpt-image"):
            # DALL-E and most compatible servers answer with a URL unless asked for the bytes; GPT Image models
            # always answer with base64 and refuse the parameter.
            asked["response_format"] = "b64_json"
        return asked

    def one(self, key: str, prompt: str, seed: int) -> GeneratedImage:
        what = f"{self.spec.source} ({self.spec.size})"
        asked = self.asked(prompt, seed)
        extra = {"seed": seed} if self.spec.options.get("send_seed") else None
        client = self.client(key, self._make_client)
        response = self.retried(lambda: self._request(client, key, asked, extra, what), what=what)
        data = getattr(response, "data", None)
        if not data or len(data) != 1:
            raise ProviderError(f"{what}: the answer held {len(data or [])} images, not 1")
        item = data[0]
        if getattr(item, "b64_json", None):
            image_bytes = decode_base64_image(item.b64_json, what=what)
        else:
            image_bytes = self.fetched(getattr(item, "url", None), what=what)
        usage: Any = getattr(response, "usage", None)
        answered = {
            "created": getattr(response, "created", None),
            "revised_prompt": getattr(item, "revised_prompt", None),
            "size": getattr(response, "size", None),
            "quality": getattr(response, "quality", None),
            "background": getattr(response, "background", None),
            "output_format": getattr(response, "output_format", None),
            "usage": usage.model_dump(mode="json") if hasattr(usage, "model_dump") else None,
        }
        provenance = {
            "provider": self.spec.provider,
            "endpoint": f"{self.base_url}/images/generations",
            "model": self.spec.model,
            "asked": asked,
            "answered": {k: v for k, v in answered.items() if v is not None},
            "request_id": getattr(response, "_request_id", None),
            # The Images API takes no seed: the stored seed is the population's, and reproduces nothing.
            "seed": seed if extra else None,
        }
        return provided_image(image_bytes, seed=seed, prompt=prompt, provenance=provenance, what=what)

    def _request(self, client: Any, key: str, asked: dict[str, Any], extra: dict[str, Any] | None, what: str) -> Any:
        import openai

        try:
            with self.reaching(timeouts=(openai.APITimeoutError,), unreachable=(openai.APIConnectionError,)):
                return client.images.generate(**asked, extra_body=extra)
        except openai.APIStatusError as exc:
            raise _status_error(exc, key=key, env=self.spec.api_key_env) from None
        except openai.APIResponseValidationError:
            raise ProviderError(f"{what}: the answer did not follow the Images API's format") from None


def _status_error(exc: Any, *, key: str, env: str) -> ProviderError:
    """What an error answer means to the worker; the provider's words where they help, never the key."""
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    words = redact(str(body.get("message") or ""), key) or f"HTTP {status}"
    code = exc.code or ""
    if status == 429 and code == "insufficient_quota":
        # A 429 that waiting does not cure: no retry.
        return ProviderError(f"the account behind {env} is out of quota: {words}")
    return answer_error(
        status=status,
        words=words,
        env=env,
        code=code,
        refused=code in REFUSAL_CODES or "safety system" in words.lower(),
        retry_after=retry_after_seconds(exc.response.headers.get("retry-after")),
    )
