"""Fetching an image a provider answered with a URL (Replicate's outputs, an Images API `url`): never with the key."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

from generation.providers.base import ProviderError, Transient, retry_after_seconds

# Larger than any hosted API's image at 4096x4096 as PNG; a stream past it is not an image we store.
MAX_IMAGE_BYTES = 64 * 2**20


def fetch_image(url: object, *, timeout_s: float, what: str) -> bytes:
    """The bytes at an output URL (http(s), or a data: URL as Replicate's sync answers give); errors name no URL query.

    The provider's key is never sent: output URLs are signed or public, and one may point anywhere.
    """
    import requests

    if not isinstance(url, str) or not url:
        raise ProviderError(f"{what}: the answer held no image URL")
    if url.startswith("data:"):
        _, _, payload = url.partition(",")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError(f"{what}: the answer's data URL is not base64") from None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError(f"{what}: the answer's image URL is not http(s)")
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}"  # signed URLs carry their signature in the query
    try:
        with requests.get(url, timeout=timeout_s, stream=True) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise Transient(
                    f"{what}: fetching {shown} answered {response.status_code}",
                    retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                )
            if response.status_code != 200:
                raise ProviderError(f"{what}: fetching {shown} answered {response.status_code}")
            data = b""
            for chunk in response.iter_content(1 << 16):
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise ProviderError(f"{what}: {shown} is larger than {MAX_IMAGE_BYTES} bytes")
            return data
    except requests.Timeout:
        raise Transient(f"{what}: fetching {shown} timed out after {timeout_s:g}s") from None
    except requests.RequestException as exc:
        raise Transient(f"{what}: fetching {shown} failed ({type(exc).__name__})") from None
