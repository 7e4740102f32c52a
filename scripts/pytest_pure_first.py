"""pytest plugin that scripts/mutation loads: tests that use no database run first.

pytest-django moves database tests to the front, so a mutant of a core whose selection mixes pure and database
tests (the export writers) paid for a database set-up in its own process before the pure test that kills it at
once, and under load that set-up ran past mutmut's time limit (a "timeout" counted as a kill). Only the order
changes: the same tests run, each group in its own order.
"""

from __future__ import annotations

import pytest

DATABASE_FIXTURES = {"db", "transactional_db", "live_server", "django_db_reset_sequences"}


def _uses_database(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("django_db") is not None or bool(DATABASE_FIXTURES & fixtures)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_uses_database)  # a stable sort
