"""Media storage for tests: the local filesystem, or S3-compatible object storage served by moto's standalone server.

A test that takes `media_storage` runs twice, once per backend, with the same assertions: what a user
notices (an image stored, served, measured, degraded, exported) must not depend on where the bytes live.
The S3 run points STORAGES' default at django-storages' S3 backend exactly as config/settings.py does when
AWS_STORAGE_BUCKET_NAME is set, against a fresh bucket of a moto server started once per test session (one
per pytest-xdist worker, on a free port), and then checks that nothing was written under MEDIA_ROOT.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILESYSTEM = "filesystem"
S3 = "s3"
REGION = "us-east-1"
# moto accepts any credentials; these are not secrets.
ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # noqa: S105
URL_LIFETIME_S = 600


@contextmanager
def running_moto() -> Iterator[str]:
    """moto's standalone S3 server on a free port of 127.0.0.1, in this process: its URL while the caller runs."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of an S3-compatible server (moto's standalone server on a free port of 127.0.0.1)."""
    with running_moto() as endpoint:
        yield endpoint


def make_bucket(endpoint: str) -> str:
    import boto3

    name = f"media-{secrets.token_hex(6)}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )
    client.create_bucket(Bucket=name)
    return name


def s3_settings(endpoint: str, bucket: str) -> dict[str, object]:
    """The storage settings config/settings.py makes of AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL, the region
    and AWS_QUERYSTRING_EXPIRE (tests/generation/test_storage_backends.py checks that it does)."""
    return {
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": REGION,
        "AWS_S3_ADDRESSING_STYLE": None,
        "AWS_LOCATION": "",
        "AWS_QUERYSTRING_AUTH": True,
        "AWS_QUERYSTRING_EXPIRE": URL_LIFETIME_S,
        "AWS_S3_SIGNATURE_VERSION": "s3v4",
        "AWS_DEFAULT_ACL": None,
        "AWS_S3_FILE_OVERWRITE": False,
        "SERVE_MEDIA": False,
    }


def use_s3(settings, monkeypatch: pytest.MonkeyPatch, endpoint: str, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """Media in `bucket` through django-storages, configured as config/settings.py configures it."""
    for name, value in s3_settings(endpoint, bucket).items():
        setattr(settings, name, value)
    # Keys come from the environment, as in production (boto3 reads them there).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    # Last: changing STORAGES drops the built default storage, so the next use builds it from the lines above.
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "core.media_storage.S3MediaStorage"}}


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture(params=[FILESYSTEM, S3])
def media_storage(request, settings, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Run the test on local media files, then on S3-compatible storage; yields the backend's name."""
    if request.param == S3:
        endpoint = request.getfixturevalue("s3_endpoint")
        use_s3(settings, monkeypatch, endpoint, make_bucket(endpoint))
    yield request.param
    if request.param == S3:
        assert files_under(Path(settings.MEDIA_ROOT)) == [], "media written to the local disk with S3 storage on"
