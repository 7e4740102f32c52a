"""Publishing an export: its manifest of hashed files, the all-or-nothing swap into place, server-side folders."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from annotation.models import Campaign
from core.errors import NotFound
from exports.errors import OPTION, TargetConflict
from exports.selectors import MANIFEST

SERVER_EXPORT_NAME = re.compile(r"^[a-z0-9-]+$")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


_HASH_NAME = re.compile(r"[0-9a-f]{64}")


def _iter_files(folder: Path) -> Iterator[dict[str, Any]]:
    """Every file under the folder (sorted per directory), with its sha256; copied images are named by theirs."""
    root = str(folder)
    stack = [""]
    while stack:
        relative_dir = stack.pop()
        with os.scandir(os.path.join(root, relative_dir)) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in reversed(entries):
            if entry.is_dir(follow_symlinks=False):
                stack.append(f"{relative_dir}{entry.name}/")
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue
            relative = relative_dir + entry.name
            if relative == MANIFEST:
                continue
            stem = entry.name.split(".", 1)[0]
            # A copy was hashed when it was read and is named by that hash; re-reading every image would double the I/O.
            known = relative_dir.startswith("images/") and _HASH_NAME.fullmatch(stem)
            yield {
                "path": relative,
                "sha256": stem if known else _sha256_file(Path(entry.path)),
                "bytes": entry.stat(follow_symlinks=False).st_size,
            }


def write_manifest(folder: Path, header: dict[str, Any]) -> dict[str, int]:
    """manifest.json, its file list streamed so it never sits in memory; returns (and ends with) the totals."""
    files = total = 0
    with open(folder / MANIFEST, "w", encoding="utf-8") as handle:
        handle.write("{\n")
        for key, value in header.items():
            handle.write(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n")
        handle.write('  "files": [')
        for entry in _iter_files(folder):
            handle.write(("\n    " if files == 0 else ",\n    ") + json.dumps(entry, ensure_ascii=False))
            files += 1
            total += entry["bytes"]
        handle.write(f'\n  ],\n  "file_totals": {json.dumps({"files": files, "bytes": total})}\n}}\n')
    return {"files": files, "bytes": total}


def check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise TargetConflict(f"{out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise TargetConflict(f"{out} exists and is not empty; pass {OPTION} to replace it", option="overwrite")
    # --overwrite replaces an earlier export, never an arbitrary folder (think `--out .`).
    if not (out / MANIFEST).is_file():
        raise TargetConflict(
            f"{out} is not empty and holds no {MANIFEST}: {OPTION} only replaces an earlier export", option="overwrite"
        )


def publish(staging: Path, out: Path) -> None:
    """Swap the finished staging folder into place; a reader sees the old export or the new one, never half."""
    if out.exists():
        old = out.parent / f".{out.name}.{secrets.token_hex(4)}.old"
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, out)


# --- exports kept on the server ---------------------------------------------------------------------------


def exports_root() -> Path:
    """Where server-side exports live: settings.EXPORTS_ROOT, else var/exports (MEDIA_ROOT is served publicly)."""
    configured = getattr(settings, "EXPORTS_ROOT", None)
    return Path(configured) if configured else Path(settings.VAR_DIR) / "exports"


def campaign_exports_folder(campaign: Campaign) -> Path:
    """Where a campaign's server-side exports live: named by its primary key, never by its slug.

    A slug is an address that can change hands (renamed while a draft, or taken by a new campaign
    once the old one is gone); a primary key is never reused, so a new campaign never sees an
    older one's exports. Exports written by earlier versions under `<slug>/` are no longer listed.
    """
    return exports_root() / f"campaign-{campaign.pk}"


def get_server_export(*, campaign: Campaign, name: str) -> Path:
    """The folder of a finished server-side export; NotFound for anything else (names never leave the root)."""
    if not SERVER_EXPORT_NAME.fullmatch(name):
        raise NotFound(f"no export named {name!r}")
    folder = campaign_exports_folder(campaign) / name
    if not (folder / MANIFEST).is_file():
        raise NotFound(f"no export named {name!r} for campaign {campaign.slug!r}")
    return folder


def read_manifest(folder: Path) -> dict[str, Any]:
    with open(folder / MANIFEST, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data
