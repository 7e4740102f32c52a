"""Benchmark: the PopAlign loop on the demo, and what changes its bias drop (issue 15's targets).

Target: the tuned model's red share on open-colour prompts falls from about 0.7 to at most 0.40 with
faithfulness to named attributes within 5 points of `base`, the whole loop under 15 minutes on the CPU.
Also: each objective on the same export (bias drop, faithfulness, time), and the effect of the
simulated crowd's noise and of votes per pair.

Run: nice -n 10 .venv/bin/python bench/training_loop.py [--parts loop,objectives,noise,votes,repeat] [--eval-seeds 64]
The `repeat` part runs the whole loop once per `--seeds` value (default 0,1,2): each run's campaign draws
its own image seeds, so the runs show how far one loop's outcome moves from the next. The `variants` part
trains `base` again on one finished loop's export (`--from-loop VAR`, a folder kept with `--keep DIR`)
with the loop's own training options, some overridden (`--variants "steps=450;preserve_weight=20,lr=2e-4"`),
and measures each result; `--train-seeds 0,1` trains each variant once per seed.
Each part runs `manage.py` commands against a fresh SQLite database in a temporary POPARENA_VAR_DIR, so
nothing of the developer's own database is touched. Prints one JSON line per run; the results go into
BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
OBJECTIVES = ("popalign", "popalign-paired", "dpo", "kto")


def manage(var: Path, *args: str) -> str:
    env = {**os.environ, "POPARENA_VAR_DIR": str(var), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def loop(var: Path, docs: Path, *extra: str) -> dict:
    manage(var, "migrate", "-v0")
    started = time.perf_counter()
    manage(var, "demo_loop", "--docs", str(docs), *extra)
    record = json.loads((docs / "bias-loop.json").read_text())
    record["wall_s"] = round(time.perf_counter() - started, 1)
    return record


def measure_only(var: Path, names: list[str], seeds: int) -> dict:
    """Red share and faithfulness of generators already registered in `var`'s database."""
    code = (
        "import json, django; django.setup();"
        "from pathlib import Path; from django.conf import settings;"
        "from training.demo_loop import measure;"
        f"print(json.dumps(measure({names!r}, {seeds}, cache_dir=Path(settings.POPARENA_MODEL_CACHE))))"
    )
    env = {
        **os.environ,
        "POPARENA_VAR_DIR": str(var),
        "HF_HUB_OFFLINE": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# Run in a child process against a loop's database: train_generator with demo_loop's training options.
TRAIN_CODE = """
import json, sys
import django
django.setup()
from django.core.management import call_command
from training.demo_loop import PRESERVED, LoopSettings
job = json.loads(sys.argv[1])
d = LoopSettings()
keys = ("objective", "steps", "lr", "beta", "batch", "min_timestep", "preserve_weight")
defaults = {**{k: getattr(d, k) for k in keys}, "preserve_unconditional": False}
def cast(key, value):
    default = defaults[key]
    return value in (True, "1", "true", "yes") if isinstance(default, bool) else type(default)(value)
options = {k: cast(k, job["overrides"].get(k, v)) for k, v in defaults.items()}
unknown = set(job["overrides"]) - set(defaults)
if unknown:
    sys.exit(f"unknown training options: {sorted(unknown)}")
preserve = list(PRESERVED) if options["preserve_weight"] else []
call_command("train_generator", export=job["export"], base="base", name=job["name"], seed=job["seed"],
             preserve=preserve, no_progress=True, **options)
"""


def train_variant(var: Path, name: str, overrides: dict[str, str], seed: int) -> float:
    """train_generator on `var`'s loop export with demo_loop's training options, `overrides` applied; seconds."""
    job = {"export": str(var / "loop" / "export-popalign-loop"), "name": name, "seed": seed, "overrides": overrides}
    env = {**os.environ, "POPARENA_VAR_DIR": str(var), "HF_HUB_OFFLINE": "1"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    started = time.perf_counter()
    command = [PYTHON, "-c", TRAIN_CODE, json.dumps(job)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"training {name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return round(time.perf_counter() - started, 1)


def summary(results: dict, tuned: str) -> dict:
    row = results[tuned]
    return {
        "red_share": row["red_share_open_colour"],
        "faithfulness": row["faithfulness"],
        "by_attribute": {k: v["value"] for k, v in row["faithfulness_by_attribute"].items()},
        "base_red_share": results["base"]["red_share_open_colour"]["value"],
        "base_faithfulness": results["base"]["faithfulness"]["value"],
    }


def emit(part: str, **fields: object) -> None:
    fields.update(
        part=part,
        load_average=[round(x, 2) for x in os.getloadavg()],
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
    )
    print(json.dumps(fields), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="loop,objectives,noise,votes")
    parser.add_argument("--eval-seeds", type=int, default=64)
    parser.add_argument("--seeds", default="0,1,2", help="the loop's --seed for each run of the repeat part")
    parser.add_argument("--noises", default="0,0.3")
    parser.add_argument("--votes-per-pair", default="1")
    parser.add_argument(
        "--from-loop", type=Path, help="POPARENA_VAR_DIR of a finished demo_loop: compare objectives on its export"
    )
    parser.add_argument("--keep", type=Path, help="work in this folder (kept) instead of a temporary one")
    parser.add_argument("--variants", default="", help="';'-separated training overrides: 'steps=450,lr=2e-4;...'")
    parser.add_argument("--train-seeds", default="0", help="the variants part: a training run per seed")
    parser.add_argument("--loop-args", default="", help="extra demo_loop options for every loop run, e.g. '--noise 0'")
    parser.add_argument(
        "--train-args", default="", help="train_generator options for the objectives, e.g. '--steps 350'"
    )
    args = parser.parse_args()
    parts = args.parts.split(",")
    seeds = ["--eval-seeds", str(args.eval_seeds), *args.loop_args.split()]
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as temporary:
        scratch = str(args.keep or temporary)
        base_var = args.from_loop or Path(scratch) / "loop"
        if {"loop", "objectives"} & set(parts) and not args.from_loop:
            record = loop(base_var, Path(scratch) / "docs-loop", *seeds)
            emit("loop", command=record["command"], seconds=record["seconds"], wall_s=record["wall_s"],
                 simulated_comparisons=record["simulated_comparisons"], results=record["results"])  # fmt: skip
        if "objectives" in parts:
            export = base_var / "loop" / "export-popalign-loop"
            for objective in OBJECTIVES:
                name = f"tuned-{objective}"
                started = time.perf_counter()
                manage(base_var, "train_generator", "--export", str(export), "--objective", objective,
                       "--base", "base", "--name", name, "--no-progress", *args.train_args.split())  # fmt: skip
                seconds = round(time.perf_counter() - started, 1)
                results = measure_only(base_var, ["base", name], args.eval_seeds)
                emit("objectives", objective=objective, train_s=seconds, **summary(results, name))
        for noise in args.noises.split(",") if "noise" in parts else []:
            var = Path(scratch) / f"noise-{noise}"
            record = loop(var, Path(scratch) / f"docs-noise-{noise}", "--noise", noise, *seeds)
            emit("noise", noise=float(noise), wall_s=record["wall_s"], **summary(record["results"], record["tuned"]))
        for variant in args.variants.split(";") if "variants" in parts else []:
            overrides = dict(item.split("=", 1) for item in variant.split(",") if item)
            for seed in args.train_seeds.split(","):
                label = re.sub(r"[^a-z0-9]+", "-", "-".join(f"{k}-{v}" for k, v in overrides.items()).lower())
                name = f"variant-{label or 'defaults'}-seed-{seed}"
                train_s = train_variant(base_var, name, overrides, int(seed))
                results = measure_only(base_var, ["base", name], args.eval_seeds)
                emit("variants", overrides=overrides, seed=int(seed), train_s=train_s, **summary(results, name))
        for seed in args.seeds.split(",") if "repeat" in parts else []:
            var = Path(scratch) / f"repeat-{seed}"
            record = loop(var, Path(scratch) / f"docs-repeat-{seed}", "--seed", seed, *seeds)
            emit(
                "repeat",
                seed=int(seed),
                seconds=record["seconds"],
                wall_s=record["wall_s"],
                simulated_comparisons=record["simulated_comparisons"],
                **summary(record["results"], record["tuned"]),
            )
        for votes in args.votes_per_pair.split(",") if "votes" in parts else []:
            var = Path(scratch) / f"votes-{votes}"
            record = loop(var, Path(scratch) / f"docs-votes-{votes}", "--votes-per-pair", votes, *seeds)
            emit(
                "votes",
                votes_per_pair=int(votes),
                wall_s=record["wall_s"],
                **summary(record["results"], record["tuned"]),
            )


if __name__ == "__main__":
    main()
