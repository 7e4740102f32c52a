"""Metrics as judges: which side of a comparison a measure prefers. Pure (no Django).

A judge is named `MEASURE[:ATTRIBUTE]`: `discrepancy:colour`, `kl:colour`, `entropy:colour`
(per attribute), or `vendi`, `faithfulness`, `clip_score` (per set). It reads its value from one
population's measures as metrics.selectors.population_measures returns them, and prefers the side
with the better value (lower discrepancy and KL, higher everything else); equal values or a value
missing on either side prefer neither.

An attribute judge speaks only to prompts that leave its attribute open (`Judge.speaks_to`): on "a red
circle" a set of red circles is what was asked, not a skew, and preferring the other side there would
reward drawing the wrong colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from generation.prompting import names_attribute

ATTRIBUTE_MEASURES = {"discrepancy": False, "kl": False, "entropy": True}  # measure -> higher is better
SET_MEASURES = {"vendi": True, "faithfulness": True, "clip_score": True}
# Two values closer than this are a tie: measures of six images move in steps far larger.
TIE = 1e-9


@dataclass(frozen=True)
class Judge:
    measure: str
    attribute: str = ""

    @property
    def name(self) -> str:
        return f"{self.measure}:{self.attribute}" if self.attribute else self.measure

    @property
    def higher_is_better(self) -> bool:
        return {**ATTRIBUTE_MEASURES, **SET_MEASURES}[self.measure]

    def value(self, measured: Mapping[str, Any]) -> float | None:
        """This judge's value in one population's measures (population_measures' shape); None if absent."""
        if self.attribute:
            row = measured.get("attributes", {}).get(self.attribute)
            value = row.get(self.measure) if row else None
        else:
            value = measured.get(self.measure)
        return float(value) if value is not None else None

    def speaks_to(self, caption: str, classes: Sequence[str]) -> bool:
        """Whether the judge has a say on this prompt: set measures always; an attribute judge (whose attribute
        has `classes`) only where the caption leaves the attribute open."""
        return not self.attribute or not names_attribute(caption, self.attribute, classes)

    def prefers(self, left: Mapping[str, Any], right: Mapping[str, Any]) -> str | None:
        """ "left", "right", or None when the values tie or one is missing."""
        a, b = self.value(left), self.value(right)
        if a is None or b is None or abs(a - b) <= TIE:
            return None
        return "left" if (a > b) == self.higher_is_better else "right"


def parse_judge(text: str, attributes: Sequence[str]) -> Judge:
    """`MEASURE[:ATTRIBUTE]` checked against the campaign's attribute names; ValueError saying what is wrong."""
    measure, _, attribute = text.partition(":")
    if measure in ATTRIBUTE_MEASURES:
        if not attribute:
            if len(attributes) != 1:
                raise ValueError(f"{measure} needs an attribute: {measure}:NAME with NAME in {', '.join(attributes)}")
            attribute = attributes[0]
        if attribute not in attributes:
            raise ValueError(
                f"unknown attribute {attribute!r}; the campaign measures {', '.join(attributes) or 'none'}"
            )
        return Judge(measure, attribute)
    if measure in SET_MEASURES:
        if attribute:
            raise ValueError(f"{measure} is a measure of the whole set and takes no attribute")
        return Judge(measure)
    known = ", ".join([*ATTRIBUTE_MEASURES, *SET_MEASURES])
    raise ValueError(f"unknown measure {measure!r}; the measures are {known}")


def judges_for(attributes: Sequence[str]) -> list[Judge]:
    """Every judge a campaign with these attributes has."""
    return [Judge(m, a) for a in attributes for m in ATTRIBUTE_MEASURES] + [Judge(m) for m in SET_MEASURES]
