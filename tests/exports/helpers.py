"""Shared helpers for the export tests: run an export, the database's own view of each judged pair, plain rows."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from annotation.models import Campaign
from arena.models import Vote
from exports.rows import ImageInfo, JudgedPair, PopulationInfo
from exports.services import ExportOptions, ExportResult, export_preferences
from generation.models import Image

PairKey = tuple[str, frozenset[int]]
T0 = datetime(2025, 1, 1, tzinfo=UTC)

# Pick-a-Pic v2's columns and types, from the dataset card of yuvalkirstain/pickapic_v2.
PICKAPIC_V2 = {
    "are_different": "bool",
    "best_image_uid": "string",
    "caption": "string",
    "created_at": "timestamp[ns]",
    "has_label": "bool",
    "image_0_uid": "string",
    "image_0_url": "string",
    "image_1_uid": "string",
    "image_1_url": "string",
    "jpg_0": "binary",
    "jpg_1": "binary",
    "label_0": "float64",
    "label_1": "float64",
    "model_0": "string",
    "model_1": "string",
    "ranking_id": "int64",
    "user_id": "int64",
    "num_example_per_prompt": "int64",
    "__index_level_0__": "int64",
}


def load_dataset(*args: Any, **kwargs: Any) -> Any:
    """datasets.load_dataset, imported late (it is slow to import) and quiet."""
    import datasets

    datasets.disable_progress_bars()
    return datasets.load_dataset(*args, **kwargs)


def judged(left: int = 0, right: int = 0, ties: int = 0, both_bad: int = 0) -> JudgedPair:
    """A judged pair of populations 10 (left) and 20 (right) with the given counts."""
    return JudgedPair(1, 1, 10, 20, 1, 1, 1, T0, T0, left_wins=left, right_wins=right, ties=ties, both_bad=both_bad)


def population(pid: int, generator: str, n: int = 3) -> PopulationInfo:
    """A population whose image hashes start with its id, so tests can tell them apart."""
    images = tuple(ImageInfo.of(i, i, f"images/ab/{pid}-{i}.PNG", f"{pid:02d}{i:062d}", i, "p", 8, 8) for i in range(n))
    return PopulationInfo(pid, generator, n, images)


def export(campaign: Campaign, fmt: str, out: Path, *, overwrite: bool = False, **options: Any) -> ExportResult:
    return export_preferences(
        campaign=campaign, options=ExportOptions(format=fmt, **options), out=out, overwrite=overwrite
    )


def db_pairs(campaign: Campaign) -> dict[PairKey, Counter[Any]]:
    """Votes per (criterion, unordered population pair), counted by chosen population id, "tie" or "both_bad"."""
    counts: dict[PairKey, Counter[Any]] = defaultdict(Counter)
    votes = Vote.objects.filter(comparison__campaign=campaign, comparison__is_gold=False).select_related(
        "comparison", "criterion"
    )
    for vote in votes:
        c = vote.comparison
        key = (vote.criterion.key, frozenset((c.left_population_id, c.right_population_id)))
        chosen = {"left": c.left_population_id, "right": c.right_population_id}.get(vote.choice, vote.choice)
        counts[key][chosen] += 1
    return counts


def db_winner(counts: Counter[Any], pair: frozenset[int]) -> int | None:
    a, b = sorted(pair)
    if counts[a] == counts[b]:
        return None
    return a if counts[a] > counts[b] else b


def population_hashes(population_id: int) -> set[str]:
    return set(Image.objects.filter(population_id=population_id).values_list("sha256", flat=True))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
