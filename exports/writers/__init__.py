"""Pure dataset writers, one module per export format; this package holds the format registry. No Django."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from exports.rows import ImageInfo, PairRow

POPULATION_JSONL = "population-jsonl"
POPALIGN_CSV = "popalign-csv"
PICKAPIC_PARQUET = "pickapic-parquet"
KTO_CSV = "kto-csv"
GENAI_BENCH_PARQUET = "genai-bench-parquet"
VOTES_CSV = "votes-csv"
LEADERBOARD_CSV = "leaderboard-csv"

ImageLoader = Callable[[ImageInfo], bytes]


@dataclass(frozen=True)
class FormatSpec:
    """What a format needs: which rows feed it, whether one criterion, how ties go, where images go."""

    name: str
    source: str  # "pairs", "votes" or "leaderboard"
    description: str
    single_criterion: bool = False
    default_ties: str | None = None  # None: the format has no ties option
    soft_ties: bool = False  # whether --ties soft can be expressed
    copies_images: bool = False
    embeds_images: bool = False
    splits: bool = False


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec(
            POPULATION_JSONL,
            "pairs",
            "one JSON line per judged pair of populations (canonical; every other format derives from it)",
            default_ties="soft",
            soft_ties=True,
            copies_images=True,
            splits=True,
        ),
        FormatSpec(
            POPALIGN_CSV,
            "pairs",
            "PopAlign trainer CSV: jpg_0 (winner), jpg_1, caption, label=0; N rows per pair; images beside it",
            single_criterion=True,
            default_ties="drop",
            copies_images=True,
            splits=True,
        ),
        FormatSpec(
            PICKAPIC_PARQUET,
            "pairs",
            "Pick-a-Pic v2 Parquet dataset (Diffusion-DPO, reward models): image bytes embedded",
            single_criterion=True,
            default_ties="drop",
            soft_ties=True,
            embeds_images=True,
            splits=True,
        ),
        FormatSpec(
            KTO_CSV,
            "pairs",
            "Diffusion-KTO CSV: one row per image, exclusive_win / exclusive_lose / intersections",
            single_criterion=True,
            default_ties="drop",
            copies_images=True,
            splits=True,
        ),
        FormatSpec(
            GENAI_BENCH_PARQUET,
            "pairs",
            "GenAI-Bench Parquet for judging automatic judges: one row per pair, each population as one grid image",
            single_criterion=True,
            default_ties="soft",
            soft_ties=True,
            embeds_images=True,
        ),
        FormatSpec(VOTES_CSV, "votes", "the raw vote log: one row per vote, sides as displayed"),
        FormatSpec(LEADERBOARD_CSV, "leaderboard", "the Bradley-Terry leaderboard at export time"),
    )
}


class PairWriter(Protocol):
    def write_group(self, rows: Sequence[PairRow]) -> None: ...

    def close(self) -> dict[str, int]:
        """Rows written per split."""
        ...


def compact_json(value: Any) -> str:
    """JSON as the text formats write it: no spaces, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
