"""What API tokens need to know from the apps above access, registered by those apps when Django starts.

access sits at the bottom of the layers (core <- access <- generation <- ... <- annotation), yet which
scopes a user may give a token depends on their role (annotation.permissions), and a worker token may
be limited to generators (generation) or to campaigns (annotation). Those apps register the answers
here in their AppConfig.ready, so access imports none of them. Until an app has registered, its
question gets the cautious answer: every staff account counts as narrowed, an unknown limit allows nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LimitKind:
    """One kind of thing a worker token can be limited to ("generators", "campaigns")."""

    # Every one there is, as (id, name), for the admin form's choices.
    choices: Callable[[], list[tuple[int, str]]]
    # The ids of the things named (by generator name, by campaign slug); names not found are left out.
    ids_by_name: Callable[[Iterable[str]], dict[str, int]]
    # The generators a limit to these ids lets a worker claim, read at each request: a campaign's
    # generators change, and its token follows without being issued again.
    generator_ids: Callable[[Iterable[int]], set[int]]


LIMIT_KINDS: dict[str, LimitKind] = {}
_narrowed_staff: list[Callable[[Any], bool]] = []


def register_limit_kind(name: str, kind: LimitKind) -> None:
    LIMIT_KINDS[name] = kind


def register_narrowed_staff(check: Callable[[Any], bool]) -> None:
    """`check(user)` says whether a staff account has a narrowed role (a researcher: their own campaigns only)."""
    if check not in _narrowed_staff:
        _narrowed_staff.append(check)


def is_narrowed_staff(user: Any) -> bool:
    if not _narrowed_staff:
        return True
    return any(check(user) for check in _narrowed_staff)
