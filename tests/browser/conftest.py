"""Browser tests: Debian's headless chromium driven by Playwright (never a downloaded browser).

Fixtures for a new browser module:

- `browser` (one chromium for the run), `page` (a fresh 1280x800 context per test), `playwright` (to launch a
  chromium with other flags: never start a second Playwright), and `wait_until` to wait on a condition in the
  page (never a fixed sleep).
- `shared_site`: ONE served site for every browser module of the run (each xdist worker its own), so a module
  costs seconds, not the 30-90 s of migrating, seeding, generating and starting a server of its own. Its
  database is a clone of one migrated once (tests/servers.py `site_env(migrated=True)`). Each collected module
  that defines `SITE_SEED` (`manage.py shell` code, run in a namespace of its own) is seeded, then ONE
  `run_generation_worker --once` makes the image sets of every open campaign, then each module's
  `SITE_SEED_WAITING` runs (campaigns whose sets a test makes itself, to watch them arrive), and daphne serves
  it: `shared_site.base`. Rules, so modules never meet: give your module its own campaign slugs, prompt
  categories and generator names; assert on your campaign's rows (or on counts before and after your test),
  never on the whole database; `shared_site.serve(...)` starts another server on the same database where a
  module needs other settings (the dwell floor, MTurk's origins, HTTPS), so settings never leak between
  modules. `shared_site.query` reads the database, `shared_site.manage` runs a command on it.
- pytest-django's `live_server` still serves tests that build their data through the ORM in the test itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import asgi_server, manage, site_env, site_query

CHROMIUM = Path(os.environ.get("POPARENA_CHROMIUM", "/usr/bin/chromium"))
# Without these, chromium tries to reach Google's services, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):  # type: ignore[no-untyped-def]
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def playwright():
    """One Playwright for the whole run: its sync API runs an event loop in this thread, and a second one started
    while it runs is refused, so every browser (other flags included) is launched from this one."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does) or set POPARENA_CHROMIUM")
    # The ORM calls made by the test itself (fixtures, assertions) are still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


# Runs every module's seed in one `manage.py shell`, each in a namespace of its own (their names never clash).
RUN_SEEDS = """
import json
for name, code in json.loads({seeds!r}):
    exec(compile(code, name, "exec"), {{"__name__": name}})
"""


@dataclass(frozen=True)
class SharedSite:
    """The run's one seeded, generated and served site (see the module docstring)."""

    base: str
    env: dict[str, str]

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """One read-only query; `?` placeholders on SQLite and PostgreSQL alike."""
        return site_query(self.env, sql, *params)

    def manage(self, *args: str) -> str:
        return manage(self.env, *args)

    @contextmanager
    def serve(
        self,
        server_name: str = "daphne",
        *,
        tls: tuple[Path, Path] | None = None,
        unset: Sequence[str] = (),
        **settings: str,
    ) -> Iterator[str]:
        """Another server on the same database and Redis prefixes, with `settings` changed and `unset` removed."""
        env = {key: value for key, value in self.env.items() if key not in unset}
        with asgi_server({**env, **settings}, server_name, tls=tls) as base:
            yield base


def _module_seeds(session: pytest.Session, attribute: str) -> list[tuple[str, str]]:
    modules = {item.module for item in session.items if getattr(item, "module", None) is not None}  # type: ignore[attr-defined]
    return sorted((module.__name__, getattr(module, attribute)) for module in modules if hasattr(module, attribute))


@pytest.fixture(scope="session")
def shared_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedSite]:
    env = site_env(tmp_path_factory.mktemp("shared-site"), migrated=True)
    for attribute in ("SITE_SEED", "SITE_SEED_WAITING"):
        seeds = _module_seeds(request.session, attribute)
        if seeds:
            manage(env, "shell", "--no-imports", "-c", RUN_SEEDS.format(seeds=json.dumps(seeds)))
        if attribute == "SITE_SEED":
            manage(env, "run_generation_worker", "--once")
    with asgi_server(env) as base:
        yield SharedSite(base=base, env=env)


@pytest.fixture(scope="session")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


def wait_until(page, expression: str, timeout_s: float = 10.0) -> None:
    """Poll a JavaScript expression until it is truthy.

    Playwright's wait_for_function evaluates its predicate with eval(), which the site's
    Content-Security-Policy rightly forbids; page.evaluate goes through the debugger instead.
    """
    import time

    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {expression}")
        time.sleep(0.05)
