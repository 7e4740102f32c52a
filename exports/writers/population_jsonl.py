"""population-jsonl: the canonical format, one JSON line per judged pair of populations."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from exports.rows import PairRow, PopulationInfo, iso_moment
from exports.writers.contract import PairFormatWriter, WriterContext, compact_json

POPULATION_JSONL_FILE = "population.jsonl"


class PopulationJsonlWriter(PairFormatWriter):
    """One JSON line per judged pair, exactly `PairRow.as_dict()`, assembled from cached pieces.

    A population appears in several pairs and criteria; its images (most of each line) are
    serialised once and reused, and the rest of the line is formatted directly.
    """

    CACHE = 4096

    def __init__(self, folder: Path) -> None:
        self._file = open(folder / POPULATION_JSONL_FILE, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self._rows: dict[str, int] = {}
        self._images: OrderedDict[int, str] = OrderedDict()

    @classmethod
    def for_export(cls, context: WriterContext) -> PopulationJsonlWriter:
        return cls(context.folder)

    def _images_json(self, population: PopulationInfo) -> str:
        cached = self._images.get(population.population_id)
        if cached is None:
            cached = compact_json([image.as_dict() for image in population.images])
            self._images[population.population_id] = cached
            if len(self._images) > self.CACHE:
                self._images.popitem(last=False)
        return cached

    def _population_json(self, population: PopulationInfo, rating: float | None) -> str:
        rounded = "null" if rating is None else compact_json(round(rating, 4))
        return (
            f'{{"population_id":{population.population_id},"generator":{_string(population.generator)},'
            f'"rating":{rounded},"size":{population.size},"images":{self._images_json(population)},'
            f'"metrics":{compact_json(population.metrics)}}}'
        )

    def _line(self, row: PairRow, prompt: str) -> str:
        pair = row.pair
        return (
            f'{{"pair_id":{_string(row.pair_id)},"criterion":{_string(row.criterion)},{prompt},'
            f'"split":{_string(row.split)},'
            f'"left":{self._population_json(row.left, row.left_rating)},'
            f'"right":{self._population_json(row.right, row.right_rating)},'
            f'"votes":{{"left":{pair.left_wins},"right":{pair.right_wins},"tie":{pair.ties},'
            f'"both_bad":{pair.both_bad},"total":{pair.total}}},"winner":"{pair.outcome}","margin":{pair.margin},'
            f'"voters":{len(pair.participants)},"first_comparison_id":{pair.first_comparison_id},'
            f'"first_vote_at":"{iso_moment(pair.first_voted)}","last_vote_at":"{iso_moment(pair.last_voted)}"}}\n'
        )

    def write_group(self, rows: Sequence[PairRow]) -> None:
        lines = []
        prompts: dict[int, str] = {}
        for row in rows:
            prompt = prompts.get(row.prompt.prompt_id)
            if prompt is None:
                p = row.prompt
                prompt = f'"prompt_id":{p.prompt_id},"caption":{_string(p.caption)},"category":{_string(p.category)}'
                prompts[p.prompt_id] = prompt
            lines.append(self._line(row, prompt))
            self._rows[row.split] = self._rows.get(row.split, 0) + 1
        self._file.write("".join(lines))

    def close(self) -> dict[str, int]:
        self._file.close()
        return self._rows


# The JSON string encoder json.dumps itself uses for ensure_ascii=False.
_string: Callable[[str], str] = json.encoder.encode_basestring
