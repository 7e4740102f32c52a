"""RemoteQueue: the generation worker's queue over the HTTP API, for a worker on another machine.

It holds no database connection: a claim's populations arrive as JSON and become unsaved
model instances carrying what the worker reads (generator source and settings, prompt, seeds).
The API key comes from the environment, never the command line. Requests go through requests
with urllib3's Retry: connection failures, 5xx answers (a server restarting) and 429 (throttled,
waiting as long as its Retry-After asks) are retried with backoff, so one throttled request does
not stop a GPU worker; any other 4xx is the server saying no, raised as RemoteQueueError with its
message.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from generation.models import Generator, Population, Prompt
from generation.services import ImageInput, ImagesRefused

CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


class RemoteQueueError(Exception):
    """The server refused a request (4xx, `status` set) or could not be reached after every retry."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def multipart_body(
    fields: Sequence[tuple[str, str]], files: Sequence[tuple[str, str, str, bytes]]
) -> tuple[bytes, str]:
    """Encode form `fields` and `files` (field, filename, content type, data) as multipart/form-data."""
    boundary = f"poparena-{secrets.token_hex(12)}"
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, content_type, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def population_from_claim(row: dict[str, Any]) -> Population:
    """An unsaved Population (with its generator and prompt) from one claimed row of the API."""
    spec = row["generator"]
    generator = Generator(
        name=spec["name"], source=spec["source"], settings=spec["settings"], prompt_template=spec["prompt_template"]
    )
    prompt = Prompt(caption=row["caption"], category=row["category"])
    return Population(pk=row["id"], generator=generator, prompt=prompt, size=row["size"], seeds=row["seeds"])


class RemoteQueue:
    """generation.services' six queue functions, as calls to /api/v1/generation/ on `server`."""

    def __init__(
        self, *, server: str, key: str, timeout_s: float = 60.0, retries: int = 6, backoff_s: float = 0.5
    ) -> None:
        if not key.startswith("pa_"):
            raise RemoteQueueError("the worker's API key must be a PopArena token (pa_...)")
        self.base = server.rstrip("/") + "/api/v1/generation/"
        self.timeout_s = timeout_s
        self.retries = retries
        retry = Retry(
            total=retries,
            backoff_factor=backoff_s,
            backoff_max=10.0,
            status_forcelist=(429, 500, 502, 503, 504),
            # Every call here is safe to repeat: claims, renewals and releases name the worker, and
            # an upload or failure report for a population no longer held is refused with 409.
            allowed_methods=None,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.headers.update({"Authorization": f"Bearer {key}", "Accept": "application/json"})

    def _post(self, path: str, body: bytes, content_type: str) -> Any:
        try:
            response = self.session.post(
                self.base + path, data=body, headers={"Content-Type": content_type}, timeout=self.timeout_s
            )
        except requests.RequestException as error:
            raise RemoteQueueError(f"{path}: {error} (gave up after {self.retries + 1} tries)") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise RemoteQueueError(
                f"{path}: {response.status_code} {_message(response)} (gave up after {self.retries + 1} tries)"
            )
        if response.status_code >= 400:
            raise RemoteQueueError(f"{path}: {response.status_code} {_message(response)}", status=response.status_code)
        return response.json()

    def _post_json(self, path: str, payload: dict[str, Any]) -> Any:
        return self._post(path, json.dumps(payload).encode(), "application/json")

    # --- the queue ------------------------------------------------------------------------------------------

    def plan_populations(self, *, owner: str | None = None) -> int:
        return 0  # the server plans when a claim comes in

    def claim_generation_batch(
        self, *, worker: str, max_images: int, lease: timedelta, owner: str | None = None
    ) -> list[Population]:
        payload: dict[str, Any] = {
            "worker": worker,
            "max_images": max_images,
            "lease_seconds": int(lease.total_seconds()),
        }
        if owner is not None:
            payload["owner"] = owner
        claim = self._post_json("claims", payload)
        return [population_from_claim(row) for row in claim["populations"]]

    def renew_leases(self, *, worker: str, population_ids: Iterable[int], lease: timedelta) -> int:
        payload = {"worker": worker, "populations": list(population_ids), "lease_seconds": int(lease.total_seconds())}
        return int(self._post_json("leases", payload)["held"])

    def release_claims(self, *, worker: str, population_ids: Iterable[int]) -> int:
        return int(self._post_json("releases", {"worker": worker, "populations": list(population_ids)})["released"])

    def fail_population(self, *, worker: str, population_id: int, error: str) -> str | None:
        try:
            answer = self._post_json(f"populations/{population_id}/failures", {"worker": worker, "error": error[:4000]})
        except RemoteQueueError as refused:
            if refused.status == 409:  # no longer held: the lease ran out and the work was reclaimed
                return None
            raise
        return str(answer["status"])

    def store_population(
        self, *, worker: str, population_id: int, images: Sequence[ImageInput], generation_ms: int
    ) -> bool:
        ordered = sorted(images, key=lambda image: image.index)
        fields = [("worker", worker), ("generation_ms", str(generation_ms))]
        fields += [("truncated", str(image.index)) for image in ordered if image.truncated]
        # What each image's source was asked and answered, as the local store records it (Image.provenance).
        fields.append(("provenance", json.dumps([image.provenance for image in ordered])))
        files = [
            ("images", f"{image.index}.{image.extension}", CONTENT_TYPES[image.extension], image.data)
            for image in ordered
        ]
        body, content_type = multipart_body(fields, files)
        try:
            self._post(f"populations/{population_id}/images", body, content_type)
        except RemoteQueueError as refused:
            if refused.status == 409:
                return False
            if refused.status == 400:  # refused images, as the local store refuses them
                raise ImagesRefused(str(refused)) from None
            raise
        return True


def _message(response: requests.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except Exception:  # not our JSON shape (a proxy's page): the status line says enough
        return response.reason or "error"
