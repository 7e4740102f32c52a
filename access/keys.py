"""API token keys: their visible prefix and how they are hashed for storage (pure: no Django)."""

from __future__ import annotations

import hashlib

KEY_PREFIX = "pa_"


def hash_key(key: str) -> str:
    """The stored form of a key: a token row keeps only this, never the plain key."""
    return hashlib.sha256(key.encode()).hexdigest()
