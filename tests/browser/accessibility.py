"""axe-core's WCAG 2.1 A and AA rules, run in the page as a participant's browser shows it.

axe-core is the npm package pinned in tests/browser/package.json, installed next to it by `npm ci`
(.ci/run and scripts/test do; no CDN). Its source is evaluated through Playwright's debugger channel, which
the site's Content-Security-Policy does not govern, so the page is checked under its real policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

PACKAGE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0 and 2.1, levels A and AA: what universities and crowd platforms ask a study's pages to meet.
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@dataclass(frozen=True)
class Violation:
    """One failed rule: its id, what it asks, and the elements that fail it (CSS selectors)."""

    rule: str
    help: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        shown = ", ".join(self.targets[:5]) + (f" (+{len(self.targets) - 5} more)" if len(self.targets) > 5 else "")
        return f"{self.rule}: {self.help} [{len(self.targets)} element(s): {shown}]"


@cache
def axe_source() -> str:
    if not PACKAGE.is_file():
        pytest.fail(f"{PACKAGE} is missing: run `npm ci --prefix tests/browser` (scripts/test and .ci/run do)")
    return PACKAGE.read_text(encoding="utf-8")


def axe_violations(page: Any) -> list[Violation]:
    """Run axe-core's WCAG 2.1 AA rules on the page as it is now; every violation found."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source() + "\n;undefined")
    results = page.evaluate(
        """async (tags) => {
             const options = {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]};
             const result = await axe.run(document, options);
             return result.violations.map(v => ({
               rule: v.id, help: v.help, targets: v.nodes.map(n => n.target.join(" "))}));
           }""",
        WCAG_21_AA,
    )
    return [Violation(rule=r["rule"], help=r["help"], targets=tuple(r["targets"])) for r in results]
