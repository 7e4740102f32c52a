"""Benchmark (issue 29): can a visitor or a participant name a side's generator before voting?

The scripted attack of issue 29, on the demo data, through the JSON API with Django's test client (in
process). A fresh SQLite database in a temporary folder: `migrate`, `seed_demo`, then
`run_generation_worker --once` (every demo queue filled: 4 generators x 14 prompts, real images).

(a) A visitor, never logged in, harvests every public surface: the metrics API (`metrics` and
    `metrics/prompts/ID` for every prompt id it can guess), the leaderboard API and page, the queue API,
    the vote page and the OpenAPI schema. Wherever a generator name sits beside image URLs or population
    ids, it records them, fetches the images and records their bytes' sha256 and sizes too.
(b) Session 1 (its own cookie, address A, user agent U) asks for --reveal-votes comparisons, fetches every
    picture, votes "tie" on every criterion and records the generator each reveal names, keyed by the
    picture's URL, the sha256 of its bytes, its size in bytes and its response headers (Date left out).
(c) Session 2 (new cookie, address A, user agent U) and session 3 (new cookie, address B, user agent V)
    each ask for --sides/2 comparisons and, BEFORE voting, try to name each side's generator from what was
    recorded (a side is named when the keys of its pictures point at exactly one generator), then vote to
    learn the truth.

Per session and key it counts the sides named and named correctly out of --sides, against chance: a random
guess among the campaign's generators names 1/k of the sides it is made on correctly. "Beyond chance" is
correct - named/k. For the targets: the public-surface and URL keys must name 0 sides beyond chance; byte
hashes (and sizes) are reported as measured, since a different client may be shown sets revealed to session
1 (README "Threat model": at most votes_per_pair - 1 further votes per set seen revealed).

Run on this checkout, and on older code (the files of git revision REV exported with `git archive` to a
temporary folder, the checkout untouched; migrated and served by that copy with this checkout's Python):
    .venv/bin/python bench/anonymity_attack.py [--code REV] [--sides 40] [--reveal-votes 30] [--json]
An endpoint that older code lacks (404 or 405) is skipped. Prints a summary table; --json adds the report.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
CAMPAIGN = "demo"
ADDRESS_A, AGENT_U = "203.0.113.7", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
ADDRESS_B, AGENT_V = "198.51.100.23", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15"
KEYS = ("public:url", "public:bytes", "public:size", "public:population", "url", "bytes", "size", "headers")
PUBLIC_KEYS = ("public:url", "public:bytes", "public:size", "public:population")
# Header values that change per response whatever is served: never a key.
VOLATILE_HEADERS = {"date", "expires", "x-request-id", "server-timing"}
IMAGE_URL = re.compile(r"""(?:https?://[^\s"'<>]+|/[^\s"'<>]*)\.(?:png|jpe?g|webp|gif)\b""")


# ------------------------------------------------------------------------------------------------ the attack
def attack(options: argparse.Namespace) -> dict[str, Any]:
    """Runs inside a process whose Django is the code under test (sys.path and cwd are its folder)."""
    import logging

    import django

    django.setup()
    logging.disable(logging.WARNING)  # the 403s and 404s of the harvest are expected, not news
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # 'testserver' allowed as a host; nothing else of the test runner is used
    skipped: list[str] = []

    def get(client: Client, url: str, **extra: Any) -> Any:
        return client.get(url, **extra)

    def body(response: Any) -> bytes:
        if getattr(response, "streaming", False):
            return b"".join(response.streaming_content)
        return bytes(response.content)

    # (a) A visitor on every public surface.
    visitor = Client(REMOTE_ADDR="192.0.2.50", HTTP_USER_AGENT="curl/8.5.0")
    public: dict[str, dict[Any, set[str]]] = defaultdict(lambda: defaultdict(set))
    unattributed_urls: set[str] = set()
    surfaces: dict[str, Any] = {}

    def harvest(name: str, url: str) -> None:
        response = get(visitor, url)
        surfaces[name] = response.status_code
        if response.status_code in (404, 405) and name in ("queue API", "schema"):
            skipped.append(f"{name}: {response.status_code}")
        if response.status_code != 200:
            return
        content_type = response.get("Content-Type", "")
        text = body(response).decode("utf-8", "replace")
        if "json" in content_type:
            walk(json.loads(text), None, public, unattributed_urls)
        else:
            # Pages: embedded JSON (json_script) is walked; other image URLs are kept without a name.
            for blob in re.findall(r'<script[^>]*type="application/json"[^>]*>(.*?)</script>', text, re.S):
                with suppress(ValueError):
                    walk(json.loads(blob), None, public, unattributed_urls)
            unattributed_urls.update(IMAGE_URL.findall(text))

    api = f"/api/v1/campaigns/{CAMPAIGN}"
    harvest("metrics API", f"{api}/metrics")
    for criterion in ("", "diversity", "quality"):
        harvest(f"leaderboard API {criterion or '(default)'}", f"{api}/leaderboard?criterion={criterion}")
    harvest("leaderboard page", f"/c/{CAMPAIGN}/leaderboard/")
    harvest("vote page", f"/c/{CAMPAIGN}/")
    harvest("queue API", f"{api}/queue")
    harvest("schema", "/api/schema/?format=json")
    prompt_answers: dict[int, int] = defaultdict(int)
    misses = 0
    for prompt_id in range(1, 200):  # prompt ids are small integers: a visitor tries them in turn
        response = get(visitor, f"{api}/metrics/prompts/{prompt_id}")
        prompt_answers[response.status_code] += 1
        if response.status_code == 200:
            misses = 0
            walk(json.loads(body(response)), None, public, unattributed_urls)
        else:
            misses += 1
            if misses >= 20 and prompt_id > 40:
                break
    surfaces["metrics/prompts/ID (answers by status)"] = dict(prompt_answers)
    # The images a public surface tied to a generator: their bytes and sizes become keys too.
    for url, names in list(public["public:url"].items()):
        response = get(visitor, url)
        if response.status_code == 200:
            data = body(response)
            public["public:bytes"][hashlib.sha256(data).hexdigest()].update(names)
            public["public:size"][len(data)].update(names)

    # (b) Session 1 votes "tie" on `reveal_votes` comparisons and records each revealed generator.
    record: dict[str, dict[Any, set[str]]] = defaultdict(lambda: defaultdict(set))
    record.update({k: v for k, v in public.items()})
    first = Client(REMOTE_ADDR=ADDRESS_A, HTTP_USER_AGENT=AGENT_U)
    revealer = run_session(first, options.reveal_votes, record=record, name=False, get=get, body=body, revealer=True)
    from annotation.models import Campaign

    generators = sorted(Campaign.objects.get(slug=CAMPAIGN).generators.values_list("name", flat=True))

    # (c) Sessions 2 and 3 name sides before voting.
    second = run_session(
        Client(REMOTE_ADDR=ADDRESS_A, HTTP_USER_AGENT=AGENT_U),
        options.sides // 2,
        record=record,
        name=True,
        get=get,
        body=body,
    )
    third = run_session(
        Client(REMOTE_ADDR=ADDRESS_B, HTTP_USER_AGENT=AGENT_V),
        options.sides // 2,
        record=record,
        name=True,
        get=get,
        body=body,
    )
    return {
        "surfaces": surfaces,
        "skipped": skipped,
        "public_keys_recorded": {k: len(public.get(k, {})) for k in PUBLIC_KEYS},
        "public_image_urls_without_a_name": len(unattributed_urls),
        "keys_recorded": {k: len(v) for k, v in record.items()},
        "session_1": summarise(revealer, generators),
        "session_2": summarise(second, generators),
        "session_3": summarise(third, generators),
        "generators": generators,
    }


def walk(node: Any, generator: str | None, out: dict[str, dict[Any, set[str]]], loose: set[str]) -> None:
    """Every image URL and population id in a JSON answer, under the generator named nearest above it."""
    if isinstance(node, dict):
        named = node.get("generator")
        here = named if isinstance(named, str) else generator
        for key, value in node.items():
            if key == "population" and isinstance(value, int) and here:
                out["public:population"][value].add(here)
            elif isinstance(value, str) and IMAGE_URL.fullmatch(value):
                (out["public:url"][value].add(here) if here else loose.add(value))
            else:
                walk(value, here, out, loose)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, str) and IMAGE_URL.fullmatch(item):
                (out["public:url"][item].add(generator) if generator else loose.add(item))
            else:
                walk(item, generator, out, loose)


def picture_keys(url: str, response: Any, data: bytes) -> dict[str, Any]:
    headers = tuple(
        sorted((k.lower(), v) for k, v in response.items() if k.lower() not in VOLATILE_HEADERS | {"content-length"})
    )
    digest = hashlib.sha256(data).hexdigest()
    return {
        "public:url": url,
        "url": url,
        "public:bytes": digest,
        "bytes": digest,
        "public:size": len(data),
        "size": len(data),
        "headers": headers,
    }


def run_session(
    client: Any,
    comparisons: int,
    *,
    record: dict[str, dict[Any, set[str]]],
    name: bool,
    get: Any,
    body: Any,
    revealer: bool = False,
) -> dict[str, Any]:
    """Ask, (name,) fetch the pictures, vote tie, learn the truth; the revealer records it under every key."""
    api = f"/api/v1/campaigns/{CAMPAIGN}"
    sides: list[dict[str, Any]] = []
    seen_bytes: set[str] = set()
    statuses: dict[int, int] = defaultdict(int)
    for _ in range(comparisons):
        response = client.post(f"{api}/comparisons/next", data={}, content_type="application/json")
        statuses[response.status_code] += 1
        if response.status_code != 200:
            break
        payload = response.json()
        shown: dict[str, list[dict[str, Any]]] = {}
        for side in ("left", "right"):
            pictures = []
            for url in payload[side]["images"]:
                picture = get(client, url)
                data = body(picture) if picture.status_code == 200 else b""
                pictures.append(picture_keys(url, picture, data))
            shown[side] = pictures
        guesses = {side: name_side(shown[side], record) for side in shown} if name else {}
        # Sets whose very bytes were recorded before (revealed to session 1, or on a public surface).
        known = {side: any(p["bytes"] in record.get("bytes", {}) for p in shown[side]) for side in shown}
        known = {
            side: was or any(p["bytes"] in record.get("public:bytes", {}) for p in shown[side])
            for side, was in known.items()
        }
        choice = [{"criterion": c["key"], "choice": "tie"} for c in payload["criteria"]]
        vote = client.post(
            f"/api/v1/comparisons/{payload['token']}/votes",
            data={"votes": choice, "dwell_ms": 1500},
            content_type="application/json",
        )
        statuses[vote.status_code] += 1
        if vote.status_code != 200:
            break
        revealed = vote.json()
        for side in ("left", "right"):
            truth = revealed[side]["generator"]
            digests = {p["bytes"] for p in shown[side]}
            sides.append(
                {
                    "truth": truth,
                    "guesses": guesses.get(side, {}),
                    "revealed_to_this_session_before": bool(digests & seen_bytes),
                    "set_recorded_before": known[side],
                }
            )
            seen_bytes |= digests
            if revealer:
                for picture in shown[side]:
                    for key in ("url", "bytes", "size", "headers"):
                        record[key][picture[key]].add(truth)
    return {"sides": sides, "statuses": dict(statuses)}


def name_side(pictures: list[dict[str, Any]], record: dict[str, dict[Any, set[str]]]) -> dict[str, str]:
    """Per key, the generator this side's pictures point at, where they point at exactly one."""
    named: dict[str, str] = {}
    for key in KEYS:
        table = record.get(key, {})
        found: set[str] = set()
        for picture in pictures:
            if key in picture:  # a population id never reaches a participant: nothing to look up
                found |= table.get(picture[key], set())
        if len(found) == 1:
            named[key] = next(iter(found))
    return named


def count_named(sides: list[dict[str, Any]], k: int) -> dict[str, dict[str, Any]]:
    """Per key (and any public key, any key): sides named, named correctly, the chance share, the generators."""
    per_key: dict[str, dict[str, Any]] = {}
    groups = {**{key: (key,) for key in KEYS}, "any public key": PUBLIC_KEYS, "any key": KEYS}
    for label, keys in groups.items():
        named = correct = 0
        right: dict[str, int] = defaultdict(int)
        for side in sides:
            guesses = [side["guesses"][key] for key in keys if key in side["guesses"]]
            if guesses:
                named += 1
                # With several keys, the one most keys agree on (ties: the first key's).
                guess = max(guesses, key=guesses.count)
                correct += guess == side["truth"]
                right[side["truth"]] += guess == side["truth"]
        per_key[label] = {
            "named": named,
            "correct": correct,
            "chance": round(named / k, 1),
            "beyond_chance": round(correct - named / k, 1),
            "correct_by_generator": dict(right),
        }
    return per_key


def summarise(session: dict[str, Any], generators: list[str]) -> dict[str, Any]:
    sides = session["sides"]
    k = max(1, len(generators))
    unseen = [side for side in sides if not side.get("set_recorded_before")]
    return {
        "sides": len(sides),
        "statuses": session["statuses"],
        "random_guess_correct_of_all_sides": round(len(sides) / k, 1),
        "sides_whose_set_this_session_saw_revealed_before": sum(s["revealed_to_this_session_before"] for s in sides),
        "sides_whose_set_was_recorded_before": len(sides) - len(unseen),
        "by_key": count_named(sides, k),
        # Sets nobody recorded: naming one is telling the generator apart, not recognising the same set.
        "by_key_sets_not_recorded": count_named(unseen, k),
    }


# ------------------------------------------------------------------------------------------------ the driver
def build_demo(root: Path, var: Path) -> tuple[dict[str, str], float]:
    from tests.servers import manage, server_env

    # The demo as a newcomer gets it, with the scripted clients' dwell floor off (as every load bench).
    env = server_env(var)
    started = time.monotonic()
    manage(env, "migrate", "--noinput", cwd=root)
    manage(env, "seed_demo", cwd=root)
    manage(env, "run_generation_worker", "--once", cwd=root, timeout=900)
    return env, time.monotonic() - started


def run_on_demo(script: Path, arguments: list[str], code: str) -> dict[str, Any]:
    """Build the demo on the code of `code` (this checkout if empty), run `script --inner ARGUMENTS` there.

    The inner run is a process whose Django is that code's (cwd and PYTHONPATH its folder); it prints its
    report as the last line of JSON. bench/cookieless_flood.py runs its flood the same way.
    """
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from loadkit import exported_tree, revision_of

    with (
        tempfile.TemporaryDirectory(prefix="poparena-demo-") as tmp,
        exported_tree(code) if code else nullcontext(ROOT) as root,
    ):
        env, fill_s = build_demo(Path(root), Path(tmp))
        env = {**env, "PYTHONPATH": str(root), "DJANGO_SETTINGS_MODULE": "config.settings"}
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, str(script), "--inner", *arguments],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode != 0:
            raise RuntimeError(f"the inner run failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        report.update(
            code=revision_of(Path(root)),
            demo_build_s=round(fill_s, 1),
            run_s=round(time.monotonic() - started, 1),
            load_average=[round(x, 2) for x in os.getloadavg()],
            machine=f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        )
        return report


def print_summary(report: dict[str, Any], sides: int) -> None:
    k = len(report["generators"])
    print(
        f"code {report['code']}: demo built in {report['demo_build_s']} s, attack {report['run_s']} s, "
        f"{k} generators (a random guess is right on 1/{k} of the sides it names)"
    )
    print(f"public surfaces (status): {report['surfaces']}")
    if report["skipped"]:
        print(f"skipped (this code lacks them): {', '.join(report['skipped'])}")
    print(
        f"keys recorded: {report['keys_recorded']}; public image URLs without a generator: "
        f"{report['public_image_urls_without_a_name']}"
    )
    one = report["session_1"]
    print(
        f"session 1 voted tie on {one['sides'] // 2} comparisons; sides whose set it had already seen revealed: "
        f"{one['sides_whose_set_this_session_saw_revealed_before']} of {one['sides']}"
    )
    labels = ["public:url", "any public key", "url", "headers", "bytes", "size", "any key"]
    sessions = (("session_2", "2: new cookie, same client"), ("session_3", "3: other address and agent"))
    for table, title in (("by_key", "every side"), ("by_key_sets_not_recorded", "sides whose set nobody recorded")):
        print(f"\nsides named before voting, {title} (named / correct / beyond chance):")
        print(f"{'session':<30}{'sides':>6}" + "".join(f"{label:>16}" for label in labels))
        for session, name in sessions:
            row = report[session]
            count = row["sides"] if table == "by_key" else row["sides"] - row["sides_whose_set_was_recorded_before"]
            cells = [
                f"{row[table][label]['named']}/{row[table][label]['correct']}/{row[table][label]['beyond_chance']:+.1f}"
                for label in labels
            ]
            print(f"{name:<30}{count:>6}" + "".join(f"{c:>16}" for c in cells))
    for session, name in sessions:
        row = report[session]
        print(
            f"session {name}: answers {row['statuses']}; sides whose set session 1 saw revealed (or a public surface "
            f"showed): {row['sides_whose_set_was_recorded_before']} of {row['sides']}; correct by size, per "
            f"generator: {row['by_key']['size']['correct_by_generator']}"
        )
    # The public surfaces: the metrics API and pages, URLs, headers, and sizes and formats of sets
    # nobody saw revealed. Recognising a set revealed to another client by its bytes is the stated bound.
    worst = max(
        report[s][table][key]["beyond_chance"]
        for s, _ in sessions
        for table, key in (
            ("by_key", "any public key"),
            ("by_key", "url"),
            ("by_key", "headers"),
            ("by_key_sets_not_recorded", "size"),
            ("by_key_sets_not_recorded", "bytes"),
        )
    )
    print(
        f"\ntarget: 0 of {sides} named beyond chance by public surfaces, URLs, headers, sizes and formats: "
        f"{'met' if worst <= 0 else 'MISSED'} (largest: {worst:+.1f}); by the bytes of sets revealed to session 1: "
        f"session 2 {report['session_2']['by_key']['bytes']['correct']}, session 3 "
        f"{report['session_3']['by_key']['bytes']['correct']} of {sides} (the threat model's bound)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", metavar="REV", default="", help="attack the code of git revision REV instead")
    parser.add_argument("--sides", type=int, default=40, help="sides each of sessions 2 and 3 tries to name")
    parser.add_argument("--reveal-votes", type=int, default=30, help="comparisons session 1 votes tie on")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON after the summary")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.sides < 2 or options.sides % 2 or options.reveal_votes < 1:
        parser.error("--sides must be an even number >= 2 and --reveal-votes >= 1")
    if options.inner:
        sys.path.insert(0, os.getcwd())
        print(json.dumps(attack(options)))
        return
    arguments = ["--sides", str(options.sides), "--reveal-votes", str(options.reveal_votes)]
    report = run_on_demo(HERE, arguments, options.code)
    print_summary(report, options.sides)
    if options.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
