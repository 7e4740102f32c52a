"""Benchmark (issue 29): cookie-less `comparisons/next` requests from one address, an honest participant voting.

Only votes may spend image sets: a comparison nobody answers must give its sets' uses back when its lease runs
out, no generation queue may be asked for new sets because of it, and the per-address limit on new sessions
(THROTTLE_NEW_SESSION, default 60/hour) must stop one address from reserving a campaign's sets.

On the demo data (a fresh SQLite database in a temporary folder: `migrate`, `seed_demo`,
`run_generation_worker --once`; no worker runs during the flood), in process with Django's test client,
default settings (the scripted clients' dwell floor off, as in every load bench):
- --requests POSTs to `/api/v1/campaigns/demo/comparisons/next`, each without a cookie, all from one address;
- between every --honest-every of them, an honest participant (its own session and address) asks for a
  comparison and votes on it, and keeps doing so while the run waits for the leases to run out;
- the lease is shortened for the run by setting `arena.issuing.LEASE` (a module constant) to --lease-s
  seconds in the server's process: the only change to the code under test;
- sampled before, every --sample-every requests during, right after the flood and after the leases ran out
  (the honest participant's next request is the first issue after that, which gives unvoted uses back):
  servable sets (annotation.selectors.campaign_populations(servable=True)), the free uses left on them,
  and the demo's generation queues (generation.selectors.get_queue_states: `available` summed, queues
  below their low watermark, which the worker would refill, and pending populations).

Run on this checkout, and on older code (its files exported with `git archive`, the checkout untouched):
    .venv/bin/python bench/cookieless_flood.py [--code REV] [--requests 1000] [--lease-s 30] [--json]
Prints a summary; --json adds the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
FLOOD_ADDRESS, FLOOD_AGENT = "203.0.113.99", "python-requests/2.32"
HONEST_ADDRESS, HONEST_AGENT = "198.51.100.8", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
CAMPAIGN = "demo"


def flood(options: argparse.Namespace) -> dict[str, Any]:
    """Runs inside a process whose Django is the code under test."""
    import logging

    import django

    django.setup()
    logging.disable(logging.WARNING)  # 429s by the hundred are the point, not news
    from django.db.models import F, Sum
    from django.test import Client
    from django.test.utils import setup_test_environment

    import arena.issuing
    from annotation.models import Campaign
    from annotation.selectors import campaign_populations
    from generation.models import Population
    from generation.selectors import get_queue_states

    setup_test_environment()
    arena.issuing.LEASE = timedelta(seconds=options.lease_s)
    campaign = Campaign.objects.get(slug=CAMPAIGN)
    has_reserved = any(f.name == "reserved" for f in Population._meta.get_fields())

    def sample(label: str) -> dict[str, Any]:
        servable = campaign_populations(campaign, servable=True)
        taken = F("uses") + F("reserved") if has_reserved else F("uses")
        free = servable.aggregate(free=Sum(campaign.votes_per_pair - taken))["free"] or 0
        states = get_queue_states(owner=f"campaign:{CAMPAIGN}")
        return {
            "at": label,
            "servable_sets": servable.count(),
            "free_uses": int(free),
            "reserved_uses": (int(Population.objects.aggregate(r=Sum("reserved"))["r"] or 0) if has_reserved else None),
            "queues": len(states),
            "available_summed": sum(s.available for s in states),
            "queues_below_low_watermark": sum(1 for s in states if s.deficit > 0),
            "populations_the_worker_would_create": sum(s.deficit for s in states),
            "pending_populations": Population.objects.filter(status="pending").count(),
        }

    honest = Client(REMOTE_ADDR=HONEST_ADDRESS, HTTP_USER_AGENT=HONEST_AGENT)
    honest_answers: Counter[str] = Counter()
    honest_votes = 0

    def honest_turn() -> None:
        nonlocal honest_votes
        asked = honest.post(f"/api/v1/campaigns/{CAMPAIGN}/comparisons/next", data={}, content_type="application/json")
        code = asked.json().get("error", {}).get("code", "") if asked.status_code != 200 else ""
        honest_answers[f"{asked.status_code} {code}".strip()] += 1
        if asked.status_code != 200:
            return
        payload = asked.json()
        votes = [{"criterion": c["key"], "choice": "left"} for c in payload["criteria"]]
        vote = honest.post(
            f"/api/v1/comparisons/{payload['token']}/votes",
            data={"votes": votes, "dwell_ms": 1500},
            content_type="application/json",
        )
        honest_answers[f"vote {vote.status_code}"] += 1
        honest_votes += vote.status_code == 200

    samples = [sample("before")]
    attacker = Client(REMOTE_ADDR=FLOOD_ADDRESS, HTTP_USER_AGENT=FLOOD_AGENT)
    answers: Counter[str] = Counter()
    retry_after: set[str] = set()
    last_issued = None
    started = time.monotonic()
    for i in range(1, options.requests + 1):
        attacker.cookies.clear()  # every request is a new session
        response = attacker.post(
            f"/api/v1/campaigns/{CAMPAIGN}/comparisons/next", data={}, content_type="application/json"
        )
        code = response.json().get("error", {}).get("code", "") if response.status_code != 200 else ""
        answers[f"{response.status_code} {code}".strip()] += 1
        if response.status_code == 200:
            last_issued = time.monotonic()
        if response.status_code == 429:
            retry_after.add(response.get("Retry-After", "(none)"))
        if i % options.honest_every == 0:
            honest_turn()
        if i % options.sample_every == 0 and i < options.requests:
            samples.append(sample(f"after {i} requests"))
    flood_s = time.monotonic() - started
    samples.append(sample("right after the flood"))
    # The honest participant keeps voting while the last leases run out (every 3 s: a participant is never
    # shown a set revealed to them again, so the demo's 112 sets last one person about 56 votes).
    expires = (last_issued or time.monotonic()) + options.lease_s + 1
    while time.monotonic() < expires:
        honest_turn()
        time.sleep(3.0)
    honest_turn()  # the first issue after every lease ran out: it gives unvoted uses back
    samples.append(sample("leases run out"))
    return {
        "requests": options.requests,
        "lease_s": options.lease_s,
        "flood_s": round(flood_s, 1),
        "answers": dict(answers),
        "retry_after": sorted(retry_after)[:5],
        "honest": {"answers": dict(honest_answers), "votes": honest_votes},
        "votes_per_pair": campaign.votes_per_pair,
        "samples": samples,
    }


def print_summary(report: dict[str, Any]) -> None:
    print(
        f"code {report['code']}: demo built in {report['demo_build_s']} s; {report['requests']} cookie-less "
        f"requests in {report['flood_s']} s, lease {report['lease_s']} s (arena.issuing.LEASE set in process)"
    )
    print(f"answers: {report['answers']}; Retry-After: {report['retry_after']}")
    honest = report["honest"]
    asked = sum(n for k, n in honest["answers"].items() if not k.startswith("vote"))
    served = honest["answers"].get("200", 0)
    print(f"honest participant: {served} of {asked} asks served, {honest['votes']} votes; answers {honest['answers']}")
    columns = (
        "servable_sets",
        "free_uses",
        "reserved_uses",
        "available_summed",
        "queues_below_low_watermark",
        "pending_populations",
    )
    print(f"\n{'':<24}" + "".join(f"{c:>28}" for c in columns))
    for row in report["samples"]:
        print(f"{row['at']:<24}" + "".join(f"{str(row[c]):>28}" for c in columns))
    before, after = report["samples"][0], report["samples"][-1]
    spent = 2 * honest["votes"]
    print(
        f"\nfree uses before {before['free_uses']}, after the leases ran out {after['free_uses']}, "
        f"the honest votes spent {spent}: {before['free_uses'] - spent - after['free_uses']} uses lost to the flood"
    )
    print(
        f"targets: servable sets back once the leases expire: "
        f"{'met' if before['free_uses'] - spent - after['free_uses'] == 0 else 'MISSED'}; no regeneration asked: "
        f"{'met' if after['queues_below_low_watermark'] == 0 and after['pending_populations'] == 0 else 'MISSED'}; "
        f"honest participant served throughout: {'met' if served == asked else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", metavar="REV", default="", help="flood the code of git revision REV instead")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--lease-s", type=float, default=30.0, help="arena.issuing.LEASE for the run, in seconds")
    parser.add_argument("--honest-every", type=int, default=50, help="flood requests between honest turns")
    parser.add_argument("--sample-every", type=int, default=250, help="flood requests between samples")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON after the summary")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.requests < 1 or options.lease_s <= 0 or options.honest_every < 1 or options.sample_every < 1:
        parser.error("--requests, --honest-every and --sample-every must be >= 1 and --lease-s > 0")
    if options.inner:
        print(json.dumps(flood(options)))
        return
    sys.path.insert(0, str(HERE.parent))
    from anonymity_attack import run_on_demo

    arguments = [
        "--requests",
        str(options.requests),
        "--lease-s",
        str(options.lease_s),
        "--honest-every",
        str(options.honest_every),
        "--sample-every",
        str(options.sample_every),
    ]
    report = run_on_demo(HERE, arguments, options.code)
    print_summary(report)
    if options.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
