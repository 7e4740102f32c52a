"""Demand owners as workers name them: generation stores owners as opaque strings, the apps above say what a name means.

A worker asks for one owner's queues by a name people use (`campaign:demo`), while the rows carry
what the owning app chose to store (annotation stores `campaign:<primary key>`, so a slug passing to
a new campaign never hands it the old one's queues). An app registers, per kind (the part before
the colon), how to turn a name into the stored owner; generation imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable

# kind -> (name -> the stored owner, or None when the name is unknown)
_resolvers: dict[str, Callable[[str], str | None]] = {}


def register_owner_kind(kind: str, resolve: Callable[[str], str | None]) -> None:
    _resolvers[kind] = resolve


def stored_owner(owner: str) -> str:
    """The owner demand rows carry for `owner` as a worker names it; unchanged when no registered kind knows it."""
    kind, sep, name = owner.partition(":")
    resolve = _resolvers.get(kind) if sep else None
    found = resolve(name) if resolve is not None else None
    return owner if found is None else found
