"""Benchmark: export time and peak memory of every export format on a synthetic campaign.

Targets (issue 7): on 100k votes over 10k populations of 6 small images, `population-jsonl` and
`votes-csv` at 50k or more rows per second; peak memory under 300 MB for every format, whatever
the campaign's size.

Run: .venv/bin/python bench/export_speed.py [--votes 100000] [--populations 10000] [--sizes 20000,100000]
     [--database-url postgres://postgres@127.0.0.1:5432] [--formats population-jsonl,votes-csv,...]
     [--image-size 32] [--votes-per-population 10]

It builds each campaign in a scratch SQLite database (or a scratch PostgreSQL database) with
unique 32x32 PNG files in a scratch media folder, written directly with bulk inserts (this
measures exports, not voting): 10 generators, population pairs of one prompt judged 5 times
each with sides drawn at random, 2 criteria per comparison. Each format is then exported by
a fresh process that times the export service alone (not interpreter start, Django setup or
the ranking library's import) and reports its own peak RSS, so one format's memory never
hides another's. Prints one JSON line per export.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMATS = [
    ("population-jsonl", {}),
    ("population-jsonl", {"copy_images": False}),
    ("votes-csv", {}),
    ("leaderboard-csv", {}),
    ("popalign-csv", {"criterion": "diversity"}),
    ("pickapic-parquet", {"criterion": "diversity"}),
    ("kto-csv", {"criterion": "diversity"}),
    ("genai-bench-parquet", {"criterion": "diversity"}),
]
GENERATORS = 10
POPULATION_SIZE = 6
VOTES_PER_PAIR = 5
CRITERIA = ("diversity", "quality")


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _png(index: int, size: int) -> bytes:
    """A unique PNG: a flat colour with the index written into the first row; large ones get smooth noise.

    The noise makes a large image compress about as badly as a generated photo (~1.5 MB at 1024 px).
    """
    import io

    from PIL import Image

    if size > 64:
        rng = random.Random(index)
        noise = Image.frombytes("RGB", (48, 48), bytes(rng.getrandbits(8) for _ in range(48 * 48 * 3)))
        image = noise.resize((size, size), Image.Resampling.BICUBIC)
    else:
        image = Image.new("RGB", (size, size), ((index * 37) % 256, (index * 91) % 256, (index * 13) % 256))
    for i, byte in enumerate(index.to_bytes(4, "big")):
        image.putpixel((i, 0), (byte, 255 - byte, byte))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def build(votes: int, populations: int, seed: int, image_size: int = 32) -> dict[str, int]:
    """Fill the scratch database and media folder; bulk inserts, as a finished campaign would leave them."""
    import hashlib
    from collections import Counter
    from datetime import timedelta

    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from annotation.models import Campaign, Criterion, Participant
    from arena.models import Comparison, PairTally, Vote
    from generation.models import Generator, Image, Population, Prompt

    call_command("migrate", verbosity=0)
    rng = random.Random(seed)
    comparisons_wanted = votes // len(CRITERIA)
    pairs_wanted = comparisons_wanted // VOTES_PER_PAIR
    prompts_count = populations // GENERATORS
    pairs_per_prompt = max(1, pairs_wanted // prompts_count)
    now = timezone.now()

    campaign = Campaign.objects.create(
        slug="bench", title="Export benchmark", population_size=POPULATION_SIZE, votes_per_pair=VOTES_PER_PAIR
    )
    criteria = [
        Criterion.objects.create(campaign=campaign, key=key, question=f"Which set is better on {key}?", position=i)
        for i, key in enumerate(CRITERIA)
    ]
    generators = [Generator.objects.create(name=f"g{g:02d}", source="builtin:tiny-random") for g in range(GENERATORS)]
    prompts = Prompt.objects.bulk_create(
        [Prompt(caption=f"a benchmark prompt number {p}", category=f"c{p % 7}") for p in range(prompts_count)]
    )
    campaign.generators.set(generators)
    campaign.prompts.set(prompts)
    rows = Population.objects.bulk_create(
        [
            Population(
                generator=g,
                prompt=p,
                size=POPULATION_SIZE,
                seeds=list(range(POPULATION_SIZE)),
                status="ready",
                ready_at=now,
            )
            for p in prompts
            for g in generators
        ],
        batch_size=2000,
    )
    media = Path(settings.MEDIA_ROOT)
    images = []
    counter = 0
    for population in rows:
        for index in range(POPULATION_SIZE):
            data = _png(counter, image_size)
            sha = hashlib.sha256(data).hexdigest()
            name = f"images/{sha[:2]}/{sha[:32]}.png"
            path = media / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            images.append(
                Image(
                    population=population,
                    index=index,
                    file=name,
                    seed=index,
                    generation_prompt=population.prompt.caption,
                    width=image_size,
                    height=image_size,
                    sha256=sha,
                )
            )
            counter += 1
        if len(images) >= 5000:
            Image.objects.bulk_create(images)
            images = []
    Image.objects.bulk_create(images)

    participants = Participant.objects.bulk_create([Participant() for _ in range(2000)])
    by_prompt: dict[int, list[Population]] = {}
    for population in rows:
        by_prompt.setdefault(population.prompt_id, []).append(population)
    comparisons = []
    for prompt_id, members in by_prompt.items():
        candidates = [(a, b) for i, a in enumerate(members) for b in members[i + 1 :]]
        for a, b in rng.sample(candidates, min(pairs_per_prompt, len(candidates))):
            for voter in rng.sample(participants, VOTES_PER_PAIR):
                left, right = (a, b) if rng.random() < 0.5 else (b, a)
                comparisons.append(
                    Comparison(
                        campaign=campaign,
                        participant=voter,
                        prompt_id=prompt_id,
                        left_population=left,
                        right_population=right,
                        status="voted",
                        lease_until=now + timedelta(minutes=10),
                        voted_at=now,
                    )
                )
    comparisons = Comparison.objects.bulk_create(comparisons, batch_size=5000)
    generator_of = {p.pk: p.generator_id for p in rows}
    tallies: Counter[tuple[int, int, int, str]] = Counter()
    vote_rows = []
    for comparison in comparisons:
        left = generator_of[comparison.left_population_id]
        right = generator_of[comparison.right_population_id]
        for criterion in criteria:
            # The lower-numbered generator tends to win, so ratings come out ordered.
            p_left = 0.5 + 0.04 * (right - left)
            weights = [p_left * 0.85, (1 - p_left) * 0.85, 0.1, 0.05]
            choice = rng.choices(["left", "right", "tie", "both_bad"], weights)[0]
            vote_rows.append(
                Vote(comparison=comparison, criterion=criterion, choice=choice, dwell_ms=rng.randint(800, 20000))
            )
            a, b = sorted((left, right))
            outcome = choice if choice in ("tie", "both_bad") else ("a" if (choice == "left") == (left == a) else "b")
            tallies[(criterion.pk, a, b, outcome)] += 1
    Vote.objects.bulk_create(vote_rows, batch_size=5000)
    pairs = {(c, a, b) for c, a, b, _ in tallies}
    PairTally.objects.bulk_create(
        [
            PairTally(
                campaign=campaign,
                criterion_id=c,
                category="",
                generator_a_id=a,
                generator_b_id=b,
                a_wins=tallies[(c, a, b, "a")],
                b_wins=tallies[(c, a, b, "b")],
                ties=tallies[(c, a, b, "tie")],
                both_bad=tallies[(c, a, b, "both_bad")],
            )
            for c, a, b in pairs
        ]
    )
    return {
        "votes": len(vote_rows),
        "comparisons": len(comparisons),
        "populations": len(rows),
        "images": counter,
        "participants": len(participants),
    }


def export_one(fmt: str, options: dict, out: Path) -> dict:
    """Run in a fresh process: time the export service alone and report this process's peak RSS."""
    import choix  # noqa: F401 (the ranking's lazy import: startup, like Django's, not export work)

    from exports.selectors import get_export_campaign
    from exports.services import ExportOptions, export_preferences

    campaign = get_export_campaign(slug="bench")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    result = export_preferences(campaign=campaign, options=ExportOptions(format=fmt, **options), out=out)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU time as well as wall time: on a shared 2-core machine the wall clock also measures the neighbours.
    cpu = usage.ru_utime + usage.ru_stime - cpu_before
    counts = result.manifest["counts"]
    rows = sum(counts["rows"].values())
    votes = counts["votes"]["read"] if isinstance(counts["votes"], dict) and "read" in counts["votes"] else None
    peak = usage.ru_maxrss
    return {
        "format": fmt,
        "options": options,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "rows": rows,
        "rows_per_s": round(rows / seconds),
        "rows_per_cpu_s": round(rows / cpu),
        "votes_read": votes,
        "votes_per_s": round(votes / seconds) if votes else None,
        "votes_per_cpu_s": round(votes / cpu) if votes else None,
        "pairs_kept": counts.get("pairs", {}).get("kept"),
        "images_copied": counts.get("images_copied"),
        "files": result.manifest["file_totals"]["files"],
        "megabytes_written": round(result.manifest["file_totals"]["bytes"] / 2**20, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_before_export_mb": round(before / 1024, 1),
    }


def _child(env: dict[str, str], *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000", help="comma-separated vote counts, one campaign each")
    parser.add_argument("--votes-per-population", type=float, default=10.0, help="votes / populations (issue: 10)")
    parser.add_argument("--formats", default="", help="comma-separated formats (default: all)")
    parser.add_argument("--database-url", default="", help="PostgreSQL server URL without a database name")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default="", help="keep the campaign here and reuse it if already built (one size)")
    parser.add_argument("--image-size", type=int, default=32, help="image side in pixels (issue: small images)")
    parser.add_argument(
        "--build", nargs=4, type=int, metavar=("VOTES", "POPULATIONS", "SEED", "SIZE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--export", nargs=3, metavar=("FORMAT", "OPTIONS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.build:
        _django()
        started = time.perf_counter()
        built = build(*args.build)
        print(json.dumps({**built, "build_s": round(time.perf_counter() - started, 1)}))
        return
    if args.export:
        _django()
        fmt, options, out = args.export
        print(json.dumps(export_one(fmt, json.loads(options), Path(out))))
        return

    from tests.servers import server_env

    wanted = {f for f in args.formats.split(",") if f}
    formats = [(f, o) for f, o in FORMATS if not wanted or f in wanted]
    machine = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(machine))
    for votes in (int(v) for v in args.sizes.split(",")):
        populations = int(votes / args.votes_per_population)
        with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
            work = Path(args.workdir or tmp)
            work.mkdir(parents=True, exist_ok=True)
            marker = work / "built.json"
            overrides = {"MEDIA_ROOT": str(work / "media"), "LOG_LEVEL": "WARNING"}
            database = None
            if args.database_url:
                import psycopg

                database = f"export_bench_{os.getpid()}"
                with psycopg.connect(f"{args.database_url}/postgres", autocommit=True) as admin:
                    admin.execute(f'CREATE DATABASE "{database}"')
                overrides["DATABASE_URL"] = f"{args.database_url}/{database}"
            env = server_env(work, **overrides)
            try:
                if marker.exists():
                    built = json.loads(marker.read_text())
                else:
                    size = str(args.image_size)
                    built = _child(env, "--build", str(votes), str(populations), str(args.seed), size)
                    marker.write_text(json.dumps(built))
                database_kind = "postgresql" if database else "sqlite"
                print(json.dumps({"campaign": built, "image_size": args.image_size, "database": database_kind}))
                for n, (fmt, options) in enumerate(formats):
                    out = work / f"out-{n}"
                    if out.exists():
                        import shutil

                        shutil.rmtree(out)
                    report = _child(env, "--export", fmt, json.dumps(options), str(out))
                    print(json.dumps({"campaign_votes": built["votes"], **report}), flush=True)
            finally:
                if database:
                    import psycopg

                    with psycopg.connect(f"{args.database_url}/postgres", autocommit=True) as admin:
                        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
