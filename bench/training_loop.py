"""Benchmark: the PopAlign loop on the demo, and what changes its bias drop (issues 15 and 37's targets).

Target: the tuned model's red share on open-colour prompts falls from about 0.7 to at most 0.40 with
faithfulness to named attributes within 5 points of `base`, the whole loop under 15 minutes on the CPU.
Also: each objective on the same export (bias drop, faithfulness, time), and the effect of the
simulated crowd's noise and of votes per pair.

The `campaign` part runs issue 37's commands as written on the seeded demo campaign (all four generators,
the noise stand-in among them): a worker pass and compute_metrics, `simulate_votes --judge
diversity=discrepancy:colour --judge quality=faithfulness --comparisons 300 --seed 1`, `export_preferences
--criterion diversity --not-worse-on quality --include-simulated` (plus `--export-args`), `torchrun
--nproc_per_node P train_generator --objective popalign --base base --name tuned --add-to-campaign demo` on
train_generator's defaults (P from `--processes`, 1 runs without torchrun), a worker pass for the tuned
model's sets; then base's and the tuned model's sets in the campaign are read twice, by the project's
reader (generation.shapes.classify) and by `hue_reader` below, which shares no code with it (a hue vote
over the pixels that stand out from the border's median); and the project's own figures beside them:
train_generator's held-out evaluation (training.json) and demo_loop's fresh-sample measure.

Run: nice -n 10 .venv/bin/python bench/training_loop.py [--parts loop,objectives,noise,votes,repeat,campaign]
     [--eval-seeds 64] [--processes 2] [--export-args "--generators base,diverse-prompting,biased-prompting"]
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
import io
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


# Run in a child process against a loop's database: train_generator with demo_loop's training options (its
# objective, train_generator's defaults for the rest).
TRAIN_CODE = """
import json, sys
import django
django.setup()
from django.core.management import call_command
from training.demo_loop import PRESERVED, LoopSettings
from training.loop import TrainingConfig
job = json.loads(sys.argv[1])
recipe = TrainingConfig()
keys = ("steps", "lr", "beta", "batch", "min_timestep", "preserve_weight", "preserve_unconditional")
defaults = {"objective": LoopSettings().objective, **{k: getattr(recipe, k) for k in keys}}
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


# Hue bins (degrees) of the shapes palette's saturated colours; white and black are read by value instead.
HUES = (("red", 0, 15), ("orange", 15, 43), ("yellow", 43, 80), ("green", 80, 180), ("blue", 180, 258),
        ("purple", 258, 345), ("red", 345, 361))  # fmt: skip


def hue_name(rgb) -> str | None:  # type: ignore[no-untyped-def]
    """A colour name for one pixel (0-1 floats) by hue, saturation and value; None for greys."""
    import colorsys

    h, s, v = colorsys.rgb_to_hsv(*rgb)
    if s < 0.3:
        return "white" if v > 0.75 else "black" if v < 0.3 else None
    if v < 0.25:
        return "black"
    return next(name for name, low, high in HUES if low <= h * 360 < high)


def hue_reader(image) -> str | None:  # type: ignore[no-untyped-def]
    """The shape's colour, read independently of generation.shapes: the pixels whose colour is far from the
    border's median (the background), each named by hue, and the most common name among them."""
    from collections import Counter

    import numpy as np

    pixels = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    standing_out = np.abs(pixels - background).sum(axis=2) > 0.3
    if standing_out.sum() < 6:
        return None
    names = Counter(n for n in (hue_name(tuple(p)) for p in pixels[standing_out]) if n is not None)
    return names.most_common(1)[0][0] if names else None


def named_colour(caption: str) -> str | None:
    """The shape colour a demo caption names: a colour word not followed by 'background'."""
    words = caption.lower().split()
    colours = {"red", "orange", "yellow", "green", "blue", "purple", "white", "black"}
    return next((w for i, w in enumerate(words) if w in colours and words[i + 1 : i + 2] != ["background"]), None)


def read_sets(names: list[str], slug: str) -> dict:
    """Per generator, its ready sets in campaign `slug` read by both readers: red share on open-colour prompts
    and colour faithfulness on colour-naming ones, each the mean over sets with a 95% bootstrap over sets."""
    from PIL import Image

    from generation import shapes
    from generation.models import Population
    from training.evaluation import mean_interval

    out = {}
    for name in names:
        red: dict[str, list[float]] = {"project": [], "independent": []}
        faithful: dict[str, list[float]] = {"project": [], "independent": []}
        populations = Population.objects.filter(
            generator__name=name, prompt__campaigns__slug=slug, status=Population.Status.READY, decoy_of__isnull=True
        ).select_related("prompt")
        for population in populations:
            pictures = []
            for image in population.images.order_by("index"):
                with image.file.open("rb") as handle:
                    pictures.append(Image.open(io.BytesIO(handle.read())).convert("RGB"))
            wanted = named_colour(population.prompt.caption)
            reads = {
                "project": [shapes.classify(p).colour for p in pictures],
                "independent": [hue_reader(p) for p in pictures],
            }
            for reader, colours in reads.items():
                if wanted is None:
                    red[reader].append(sum(c == "red" for c in colours) / len(colours))
                else:
                    faithful[reader].append(sum(c == wanted for c in colours) / len(colours))
        out[name] = {
            "sets_open_colour": len(red["project"]),
            "sets_named_colour": len(faithful["project"]),
            **{f"red_share_{r}": mean_interval(v).as_dict() for r, v in red.items()},
            **{f"colour_faithfulness_{r}": mean_interval(v).as_dict() for r, v in faithful.items()},
        }
    return out


def campaign(var: Path, work: Path, *, processes: int, export_args: list[str], eval_seeds: int) -> dict:
    """Issue 37's commands on the seeded demo campaign, then the sets and fresh samples read (see the docstring)."""
    manage(var, "migrate", "-v0")
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def phase(label: str) -> None:
        seconds[label] = round(time.perf_counter() - started - sum(seconds.values()), 1)

    manage(var, "seed_demo")
    manage(var, "run_generation_worker", "--once", "--campaign", "demo")
    manage(var, "compute_metrics", "--campaign", "demo")
    phase("seed, generate, measure")
    voted = manage(
        var, "simulate_votes", "--campaign", "demo", "--judge", "diversity=discrepancy:colour",
        "--judge", "quality=faithfulness", "--comparisons", "300", "--seed", "1",
    )  # fmt: skip
    phase("simulate votes")
    export = work / "export-demo"
    exported = manage(
        var, "export_preferences", "--campaign", "demo", "--format", "popalign-csv", "--criterion", "diversity",
        "--not-worse-on", "quality", "--include-simulated", "--out", str(export), "--overwrite", *export_args,
    )  # fmt: skip
    phase("export")
    train = ["manage.py", "train_generator", "--export", str(export), "--objective", "popalign", "--base", "base"]
    train += ["--name", "tuned", "--add-to-campaign", "demo", "--no-progress"]
    launcher = [PYTHON] if processes == 1 else [str(Path(PYTHON).parent / "torchrun"), "--standalone"]
    launcher += [] if processes == 1 else ["--nproc_per_node", str(processes)]
    env = {**os.environ, "POPARENA_VAR_DIR": str(var), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(launcher + train, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"training failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    phase("train")
    manage(var, "run_generation_worker", "--once", "--campaign", "demo")
    manage(var, "compute_metrics", "--campaign", "demo")
    phase("generate and measure the tuned model's sets")
    sets = child(var, "print(json.dumps(read_sets(['base', 'tuned'], 'demo')))")
    phase("read the sets")
    fresh = measure_only(var, ["base", "tuned"], eval_seeds)
    phase("fresh samples")
    record = json.loads((var / "trained" / "tuned" / "training.json").read_text())
    return {
        "simulate_votes": voted.strip().splitlines()[-6:],
        "export": exported.strip().splitlines()[-4:],
        "train_generator": done.stdout.strip().splitlines(),
        "training_json": {k: record[k] for k in ("processes", "effective_batch", "steps", "wall_seconds", "data")},
        "held_out_evaluation": record["evaluation"],
        "campaign_sets": sets,
        "fresh_samples": {n: summary(fresh, n) for n in ("tuned",)},
        "seconds": seconds,
    }


def child(var: Path, statement: str) -> dict:
    """Run `statement` with this module's functions in a child process on `var`'s database; its JSON output."""
    code = f"import json, sys, django; sys.path.insert(0, {str(ROOT / 'bench')!r}); django.setup(); "
    code += f"from training_loop import *; {statement}"
    env = {
        **os.environ,
        "POPARENA_VAR_DIR": str(var),
        "HF_HUB_OFFLINE": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--processes", type=int, default=2, help="the campaign part: torchrun processes (1: none)")
    parser.add_argument("--export-args", default="", help="the campaign part: extra export_preferences options")
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
        if "campaign" in parts:
            work = Path(scratch) / "campaign"
            work.mkdir(parents=True, exist_ok=True)
            found = campaign(
                work / "var", work, processes=args.processes, export_args=args.export_args.split(),
                eval_seeds=args.eval_seeds,
            )  # fmt: skip
            emit("campaign", processes=args.processes, export_args=args.export_args, **found)
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
