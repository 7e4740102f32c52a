"""Benchmark (issue 34): export, metrics and gold copies on S3-compatible storage against the local disk, same run.

The target: each of the three within 1.5x of the local filesystem's time. One campaign is built twice, once with
media on the local disk and once in a bucket of moto's S3 server (bench/object_store.py, its own process on
this machine's loopback, as a storage host would be its own machine), each on a scratch SQLite database, by the
same code through Django's storage API: G generators x P prompts, one ready set of N unique PNGs each (smooth
noise, so each compresses about as a generated picture of that size does), every pair of one prompt voted
twice on two criteria. Then each workload runs in a fresh process that times the service call alone:
- export: `population-jsonl` with its images copied (every image read from storage once);
- metrics: measure_populations with the built-in shapes classifier on colour (every image read and classified);
- gold: get_or_create_decoy for every set (its first image read, N degraded copies written), made afresh each time.
Beside them, not a target: every image read once through generation.media_io.read_stored, one after another
(one request each on S3: the round trip the three workloads overlap on their I/O threads).
The backends alternate (local, s3, s3, local per round), so a drift of the machine's other load weighs on both.
Printed as JSON: each workload's seconds per backend, the median ratio S3 / local, and whether it is within 1.5x.

Run:
    .venv/bin/python bench/storage_speed.py [--generators 4] [--prompts 10] [--size 6] [--image-px 64] [--rounds 2]
        [--endpoint URL]   # another S3-compatible server, already running (MinIO, a real bucket's region, ...)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadkit import free_port, revision_of  # noqa: E402
from tests.servers import manage, server_env  # noqa: E402

WORKLOADS = ("export", "metrics", "gold")
# Not a target: every image read once, one request after another: what the workloads' parallel reads overlap.
WORKLOADS_TIMED = (*WORKLOADS, "reads")
TARGET = 1.5
BUCKET = "poparena-media"

BUILD = """
import io, random
from itertools import combinations
from datetime import timedelta
from PIL import Image as Picture
from django.utils import timezone
from annotation.models import Campaign, Criterion, Participant
from arena.models import Comparison, Vote
from generation.models import Generator, Prompt
from generation.services import ImageInput, ImportedSet, store_imported_sets

rng = random.Random(7)

def picture(n):
    noise = Picture.frombytes("RGB", (8, 8), bytes(rng.getrandbits(8) for _ in range(192)))
    buffer = io.BytesIO()
    noise.resize((PX, PX), Picture.Resampling.BICUBIC).save(buffer, "PNG")
    return buffer.getvalue()

colour = {"colour": {"backend": "shapes", "classes": ["red", "green", "blue"]}}
campaign = Campaign.objects.create(slug="storage", title="storage", population_size=SIZE, votes_per_pair=2,
                                   metrics_attributes=colour)
criteria = [Criterion.objects.create(campaign=campaign, key=k, question=k, position=i)
            for i, k in enumerate(["diversity", "quality"])]
generators = [Generator.objects.create(name=f"g{g}", source="builtin:tiny-random", settings={"width": PX, "height": PX})
              for g in range(GENERATORS)]
prompts = [Prompt.objects.create(caption=f"a red shape {p}") for p in range(PROMPTS)]
campaign.generators.set(generators)
campaign.prompts.set(prompts)
sets = [ImportedSet(generator=g, prompt=p, images=[
            ImageInput(index=i, data=picture(i), extension="png", seed=i, prompt=p.caption, truncated=False,
                       width=PX, height=PX) for i in range(SIZE)])
        for p in prompts for g in generators]
populations = store_imported_sets(sets=sets)
voter = Participant.objects.create()
now = timezone.now()
by_prompt = {}
for population in populations:
    by_prompt.setdefault(population.prompt_id, []).append(population)
for prompt_id, members in by_prompt.items():
    for a, b in combinations(members, 2):
        for left, right in ((a, b), (b, a)):
            comparison = Comparison.objects.create(campaign=campaign, participant=voter, prompt_id=prompt_id,
                left_population=left, right_population=right, status="voted", lease_until=now + timedelta(minutes=9),
                voted_at=now)
            for criterion in criteria:
                Vote.objects.create(comparison=comparison, criterion=criterion, choice=rng.choice(["left", "right"]),
                                    dwell_ms=2000)
print("BUILT", len(populations))
"""

# Each workload in a fresh process: Django set up and the libraries it needs imported before the clock starts.
WORK = """
import json, tempfile, time
import core.media_storage  # noqa: boto3 and django-storages imported before the clock, as Django and choix are
from pathlib import Path
from annotation.models import Campaign
from generation.models import Population
campaign = Campaign.objects.get(slug="storage")
ids = list(Population.objects.filter(generator__in=campaign.generators.all(), status="ready",
                                     decoy_of__isnull=True).order_by("id").values_list("id", flat=True))
if WORKLOAD == "export":
    import choix  # noqa: the ranking's lazy import is start-up, not export work
    from exports.services import ExportOptions, export_preferences
    out = Path(tempfile.mkdtemp()) / "export"
    started = time.perf_counter()
    result = export_preferences(campaign=campaign, options=ExportOptions(format="population-jsonl"), out=out)
    seconds = time.perf_counter() - started
    files = result.manifest["file_totals"]["files"]
elif WORKLOAD == "metrics":
    from metrics.services import measure_populations
    from metrics.classifiers import load_backend
    specs = campaign.attribute_specs()
    load_backend("shapes", device="cpu")  # the classifier loaded once, as a worker keeps it
    started = time.perf_counter()
    report = measure_populations(population_ids=ids, attributes=specs, recompute=True)
    seconds = time.perf_counter() - started
    files = report.images
elif WORKLOAD == "reads":
    from django.core.files.storage import default_storage
    from generation.media_io import read_stored
    from generation.models import Image
    names = list(Image.objects.filter(population_id__in=ids).values_list("file", flat=True))
    started = time.perf_counter()
    for name in names:
        read_stored(default_storage, name)
    seconds = time.perf_counter() - started
    files = len(names)
else:
    from generation.services import get_or_create_decoy
    Population.objects.filter(decoy_of__isnull=False).delete()  # made afresh every time, outside the clock
    started = time.perf_counter()
    for population in Population.objects.filter(id__in=ids):
        get_or_create_decoy(population=population)
    seconds = time.perf_counter() - started
    files = Population.objects.filter(decoy_of__isnull=False).count()
print("RESULT " + json.dumps({"seconds": seconds, "files": files}))
"""


def start_store(folder: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "object_store.py"), "--address", "127.0.0.1", "--port", str(port),
         "--journal", str(folder / "s3.journal")],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("ready"):
        process.kill()
        raise RuntimeError(f"the S3 server did not start: {line}")
    return process, f"http://127.0.0.1:{port}"


def make_bucket(endpoint: str) -> None:
    import boto3

    key, secret = credentials()
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret
    )
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
        client.create_bucket(Bucket=BUCKET)


def credentials() -> tuple[str, str]:
    """The keys for --endpoint's server from the environment; moto takes any ("bench")."""
    return os.environ.get("AWS_ACCESS_KEY_ID", "bench"), os.environ.get("AWS_SECRET_ACCESS_KEY", "bench")


def site(folder: Path, backend: str, endpoint: str) -> dict[str, str]:
    extra = {"LOG_LEVEL": "WARNING", "MEDIA_ROOT": str(folder / "media")}
    if backend == "s3":
        extra.update(
            AWS_STORAGE_BUCKET_NAME=BUCKET,
            AWS_S3_ENDPOINT_URL=endpoint,
            AWS_S3_REGION_NAME="us-east-1",
            AWS_ACCESS_KEY_ID=credentials()[0],
            AWS_SECRET_ACCESS_KEY=credentials()[1],
            AWS_LOCATION=f"bench-{os.getpid()}",
        )
    return server_env(folder, **extra)


def build(env: dict[str, str], options: argparse.Namespace) -> None:
    manage(env, "migrate", "--noinput")
    code = BUILD
    for name in ("GENERATORS", "PROMPTS", "SIZE", "PX"):
        code = code.replace(name, str(getattr(options, name.lower() if name != "PX" else "image_px")))
    manage(env, "shell", "--no-imports", "-c", code)


def timed(env: dict[str, str], workload: str) -> dict[str, Any]:
    out = manage(env, "shell", "--no-imports", "-c", WORK.replace("WORKLOAD", repr(workload)))
    return json.loads(out.split("RESULT ", 1)[1].splitlines()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--size", type=int, default=6, help="images per set")
    parser.add_argument("--image-px", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of local, s3, s3, local")
    parser.add_argument(
        "--endpoint",
        help="an S3-compatible server already running (its keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) "
        "instead of moto's behind bench/object_store.py, started here",
    )
    options = parser.parse_args()
    if min(options.generators, options.prompts, options.size, options.image_px, options.rounds) < 1:
        parser.error("every count must be at least 1")
    if options.generators < 2:
        parser.error("--generators must be at least 2 (pairs are voted)")
    with tempfile.TemporaryDirectory(prefix="poparena-storage-") as tmp:
        root = Path(tmp)
        store, endpoint = start_store(root) if options.endpoint is None else (None, options.endpoint)
        make_bucket(endpoint)
        try:
            envs = {}
            for backend in ("local", "s3"):
                (root / backend).mkdir()
                envs[backend] = site(root / backend, backend, endpoint)
                build(envs[backend], options)
            seconds: dict[str, dict[str, list[float]]] = {w: {"local": [], "s3": []} for w in WORKLOADS_TIMED}
            files: dict[str, int] = {}
            for _ in range(options.rounds):
                for backend in ("local", "s3", "s3", "local"):
                    for workload in WORKLOADS_TIMED:
                        result = timed(envs[backend], workload)
                        seconds[workload][backend].append(result["seconds"])
                        files[workload] = result["files"]
        finally:
            if store is not None:
                store.terminate()
                store.wait(timeout=60)
    report: dict[str, Any] = {"code": revision_of(ROOT), "target": f"S3 within {TARGET}x of the local disk"}
    for workload in WORKLOADS_TIMED:
        local, s3 = seconds[workload]["local"], seconds[workload]["s3"]
        ratio = statistics.median(s3) / statistics.median(local)
        report[workload] = {
            "files": files[workload],
            "local_s": [round(s, 3) for s in local],
            "s3_s": [round(s, 3) for s in s3],
            "ratio_s3_to_local": round(ratio, 2),
            "s3_ms_per_file": round(1000 * statistics.median(s3) / max(1, files[workload]), 1),
        }
        if workload in WORKLOADS:
            report[workload]["within_target"] = ratio <= TARGET
    report["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    report["server"] = options.endpoint and "the server at --endpoint" or "moto behind bench/object_store.py"
    report["options"] = vars(options)
    report["when"] = time.strftime("%Y-%m-%d %H:%M")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
