"""Benchmark: in a real browser, how soon after the deciding key press the next comparison is on screen.

Target (issue 5): the next comparison visible within 100 ms of the click. "Visible" here means
the prompt and both grids show the next comparison and every one of its images has loaded
(decoded, non-zero size), measured in the page with `performance.now()` from the keydown that
completes the vote to the next animation frame after that state is reached.

Run (Debian's chromium at /usr/bin/chromium, as the browser tests use):
    .venv/bin/python bench/vote_swap_latency.py [--votes 40] [--server daphne|uvicorn]

It builds a campaign on two tiny random-weight generators in a scratch SQLite database (the
embedded default), fills the queues with the real generation worker, starts the ASGI server
and votes with the keyboard. Page scripts run under our CSP; the measuring script is injected
through the DevTools protocol (Playwright's `bypass_csp`), not by the page.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import asgi_server, manage, server_env  # noqa: E402

SETUP = """
from annotation.models import Campaign
from annotation.services import SeedReport, set_campaign_status, sync_criteria
from generation.models import Prompt
from generation.services import GeneratorSpec, sync_generator

campaign = Campaign.objects.create(slug="swap", title="Swap timing", population_size=6, votes_per_pair=1)
criteria = [("diversity", "Which set is more varied?"), ("quality", "Which set looks better?")]
sync_criteria(campaign=campaign, criteria=criteria, report=SeedReport())
for seed in (1, 2):
    generator, _ = sync_generator(spec=GeneratorSpec(
        name=f"model-{{seed}}", display_name=f"Model {{seed}}", description="", source="builtin:tiny-random",
        settings={{"steps": 2, "width": 32, "height": 32, "init_seed": seed}}))
    campaign.generators.add(generator)
for i in range({prompts}):
    campaign.prompts.add(Prompt.objects.create(caption=f"a shape number {{i}}", category="shape"))
set_campaign_status(campaign=campaign, status="open")
"""

# Installed before each vote: remembers the deciding keydown, then waits for the next comparison
# (told apart by its first image URL: image names are random per image).
WATCH = """(before) => {
  window.__swap = null;
  document.addEventListener("keydown", () => (window.__keydown = performance.now()), { capture: true });
  const done = () => {
    const imgs = Array.from(document.querySelectorAll("#grid-left img, #grid-right img"));
    const first = document.querySelector("#grid-left img");
    return first && first.src !== before && imgs.every((i) => i.complete && i.naturalWidth > 0);
  };
  const check = () => {
    if (done()) requestAnimationFrame(() => (window.__swap = performance.now() - window.__keydown));
    else requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}"""

CURRENT = "() => (document.querySelector('#grid-left img') || {}).src || ''"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=40)
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--chromium", default=os.environ.get("POPARENA_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = server_env(Path(tmp), LOG_LEVEL="WARNING")
        manage(env, "migrate", "--noinput")
        manage(env, "shell", "--no-imports", "-c", SETUP.format(prompts=args.votes + 10))
        manage(env, "run_generation_worker", "--once", "--campaign", "swap", timeout=1800)
        with asgi_server(env, args.server) as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            context = browser.new_context(bypass_csp=True, viewport={"width": 1366, "height": 768})
            page = context.new_page()
            page.goto(base + "/c/swap/")
            page.wait_for_selector("#grid-left img")
            timings: list[float] = []
            for _ in range(args.votes):
                before = page.evaluate(CURRENT)
                # Give the page its normal life: the prefetch of the next comparison has landed.
                time.sleep(0.4)
                page.evaluate(WATCH, before)
                page.keyboard.press("1")
                page.keyboard.press("2")
                deadline = time.monotonic() + 10
                while (swap := page.evaluate("() => window.__swap")) is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the next comparison did not appear within 10 s")
                    time.sleep(0.005)
                timings.append(swap)
            browser.close()

    ordered = sorted(timings)
    result = {
        "votes": len(timings),
        "visible_ms_p50": round(statistics.median(timings), 1),
        "visible_ms_p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "visible_ms_max": round(max(timings), 1),
        "target_ms": 100,
        "server": args.server,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
