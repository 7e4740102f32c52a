"""Reads of stored metrics: one population's measures, and aggregates per generator, prompt or category.

Two aggregates per generator, labelled as such wherever they are shown:
- *pooled*: every image of a generator counted together, then measured (what PopAlign reports);
- *per-prompt mean*: each prompt's images measured on their own, then averaged over prompts, so a
  prompt with more populations does not weigh more, and a generator that is diverse overall but
  narrow on every prompt is not mistaken for a diverse one.
An attribute is measured only on the prompts that leave it open (generation.prompting.names_attribute):
on "a red circle" red is what was asked, not a skew, so those prompts count in no share, discrepancy or
interval of the colour (as metrics.judges.Judge.speaks_to and the simulated crowd's judges abstain there).
Intervals are percentile bootstraps over prompts (images of one prompt are not independent). Vendi,
faithfulness and CLIP score are means over populations, all of one size N: Vendi grows with N, so
sets of different sizes are never compared.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from generation.models import Population
from generation.prompting import names_attribute
from metrics import measures
from metrics.config import AttributeSpec
from metrics.models import AttributeMeasure, ImageLabel, SetMeasure
from metrics.services import SetSpec, set_spec_for

BOOTSTRAP_RESAMPLES = 500


def population_measures(population_id: int, *, attributes: Sequence[AttributeSpec] | None = None) -> dict[str, Any]:
    """Everything stored about one population: {population, generator, prompt, size, attributes: {NAME: {...}},
    vendi, faithfulness, clip_score}; attributes maps each attribute name to shares, counts, counted, discrepancy,
    kl, entropy, distinct, effective, backend, model_id, classes and target.

    With `attributes` (a campaign's specs, Campaign.attribute_specs()), only results of exactly those
    specs; without, every stored result (the newest where one attribute name was measured under several
    specs). A measure never computed is absent from `attributes`, and vendi / faithfulness / clip_score
    are None. metrics.judges reads its values from this shape.
    """
    population = Population.objects.select_related("generator", "prompt").get(pk=population_id)
    return {
        "population": population.pk,
        "generator": population.generator.name,
        "prompt": population.prompt.caption,
        "size": population.size,
        **measures_by_population([population_id], attributes=attributes)[population_id],
    }


def measures_by_population(
    population_ids: Iterable[int], *, attributes: Sequence[AttributeSpec] | None = None
) -> dict[int, dict[str, Any]]:
    """population_measures' `attributes`, `vendi`, `faithfulness` and `clip_score` for many populations at once."""
    ids = list(population_ids)
    out: dict[int, dict[str, Any]] = {
        pk: {"attributes": {}, "vendi": None, "faithfulness": None, "clip_score": None} for pk in ids
    }
    rows = AttributeMeasure.objects.filter(population_id__in=ids).order_by("computed_at", "pk")
    sets = SetMeasure.objects.filter(population_id__in=ids).order_by("computed_at", "pk")
    if attributes is not None:
        rows = rows.filter(spec_key__in=[spec.key for spec in attributes])
        set_spec = set_spec_for(attributes)
        sets = sets.filter(spec_key=set_spec.key) if set_spec else sets.none()
    for row in rows:  # oldest first, so the newest result of an attribute name wins
        out[row.population_id]["attributes"][row.attribute] = _attribute_row(row)
    for measure in sets:
        out[measure.population_id].update(
            vendi=measure.vendi, faithfulness=measure.faithfulness, clip_score=measure.clip_score
        )
    return out


def _attribute_row(row: AttributeMeasure) -> dict[str, Any]:
    return {
        "backend": row.backend,
        "model_id": row.model_id,
        "classes": row.classes,
        "target": row.target,
        "counts": row.counts,
        "counted": row.counted,
        "images": row.images,
        "shares": row.shares,
        "discrepancy": row.discrepancy,
        "kl": row.kl,
        "entropy": row.entropy,
        "distinct": row.distinct,
        "effective": row.effective,
    }


def image_labels(population_ids: Iterable[int], attributes: Sequence[AttributeSpec]) -> dict[int, dict[str, str]]:
    """Image id -> {attribute: label} for the given specs ("" where the image was none of the classes)."""
    out: dict[int, dict[str, str]] = defaultdict(dict)
    keys = {spec.key: spec.name for spec in attributes}
    rows = ImageLabel.objects.filter(image__population_id__in=list(population_ids), spec_key__in=list(keys))
    for image_id, key, label in rows.values_list("image_id", "spec_key", "label"):
        out[image_id][keys[key]] = label
    return dict(out)


@dataclass(frozen=True)
class Member:
    """One population in an aggregate: which row (group) it counts for, its prompt (and caption), and its N."""

    population_id: int
    group: str
    prompt_id: int
    size: int
    caption: str


@dataclass(frozen=True)
class _PopulationFacts:
    member: Member
    counts: dict[str, dict[str, int]]  # attribute -> class -> count
    vendi: float | None
    faithfulness: float | None
    clip_score: float | None


def _facts(
    populations: Sequence[Member], attributes: Sequence[AttributeSpec], set_spec: SetSpec | None
) -> list[_PopulationFacts]:
    ids = [m.population_id for m in populations]
    by_key = {spec.key: spec.name for spec in attributes}
    counts: dict[int, dict[str, dict[str, int]]] = defaultdict(dict)
    for pk, key, row_counts in AttributeMeasure.objects.filter(
        population_id__in=ids, spec_key__in=list(by_key)
    ).values_list("population_id", "spec_key", "counts"):
        counts[pk][by_key[key]] = row_counts
    sets: dict[int, tuple[float, float | None, float | None]] = {}
    if set_spec is not None:
        for pk, vendi, faithfulness, clip_measure in SetMeasure.objects.filter(
            population_id__in=ids, spec_key=set_spec.key
        ).values_list("population_id", "vendi", "faithfulness", "clip_score"):
            sets[pk] = (vendi, faithfulness, clip_measure)
    facts = []
    for member in populations:
        pk = member.population_id
        if pk not in counts and pk not in sets:
            continue  # not measured yet: it counts nowhere, and the row's `populations` says how many did
        set_values = sets.get(pk)
        facts.append(
            _PopulationFacts(
                member,
                counts.get(pk, {}),
                set_values[0] if set_values else None,
                set_values[1] if set_values else None,
                set_values[2] if set_values else None,
            )
        )
    return facts


def _pooled(groups: list[list[_PopulationFacts]], spec: AttributeSpec) -> measures.ClassMeasures:
    total = dict.fromkeys(spec.classes, 0)
    for group in groups:
        for fact in group:
            for name, n in fact.counts.get(spec.name, {}).items():
                if name in total:
                    total[name] += n
    return measures.measures_from_counts(total, spec.target)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _per_prompt(groups: list[list[_PopulationFacts]], spec: AttributeSpec) -> dict[str, float | None]:
    per = [_pooled([group], spec) for group in groups]
    return {
        "discrepancy": _mean(m.discrepancy for m in per),
        "kl": _mean(m.kl for m in per),
        "entropy": _mean(m.entropy for m in per),
        "distinct": _mean(float(m.distinct) for m in per if m.counted),
    }


def _ci(groups: list[list[_PopulationFacts]], statistic: Any) -> list[float] | None:
    interval = measures.bootstrap_interval(groups, statistic, resamples=BOOTSTRAP_RESAMPLES)
    return [round(interval[0], 6), round(interval[1], 6)] if interval else None


def _set_mean(groups: list[list[_PopulationFacts]], field: str) -> float | None:
    return _mean(getattr(fact, field) for group in groups for fact in group)


def aggregate(populations: Sequence[Member], attributes: Sequence[AttributeSpec]) -> dict[str, dict[str, Any]]:
    """Aggregate the stored measures of `populations` per group (the members' `group`).

    The group is what a row is about (a generator's name, usually). Returns group -> {populations,
    images, prompts, attributes: {NAME: {shares, discrepancy, kl, entropy, distinct, effective,
    counted, prompts, discrepancy_ci, per_prompt: {discrepancy, kl, entropy, distinct},
    per_prompt_discrepancy_ci}}, vendi, vendi_ci, faithfulness, faithfulness_ci, clip_score,
    clip_score_ci}. An attribute's `prompts` are those that leave it open, the only ones its measures
    count. Values that do not apply (no CLIP configured, nothing counted) are None.
    """
    set_spec = set_spec_for(attributes)
    by_group: dict[str, dict[int, list[_PopulationFacts]]] = defaultdict(lambda: defaultdict(list))
    for fact in _facts(populations, attributes, set_spec):
        by_group[fact.member.group][fact.member.prompt_id].append(fact)
    out: dict[str, dict[str, Any]] = {}
    for group, per_prompt in by_group.items():
        groups = [per_prompt[k] for k in sorted(per_prompt)]
        row: dict[str, Any] = {
            "populations": sum(len(g) for g in groups),
            "prompts": len(groups),
            "images": sum(f.member.size for g in groups for f in g),
            "attributes": {},
        }
        for spec in attributes:
            # Only the prompts that leave this attribute open (see the module's docstring).
            open_groups = [g for g in groups if not names_attribute(g[0].member.caption, spec.name, spec.classes)]
            pooled = _pooled(open_groups, spec)
            row["attributes"][spec.name] = {
                "shares": pooled.shares,
                "discrepancy": pooled.discrepancy,
                "kl": pooled.kl,
                "entropy": pooled.entropy,
                "distinct": pooled.distinct,
                "effective": pooled.effective,
                "counted": pooled.counted,
                "prompts": len(open_groups),
                "discrepancy_ci": _ci(open_groups, lambda gs, s=spec: _pooled(gs, s).discrepancy),
                "per_prompt": _per_prompt(open_groups, spec),
                "per_prompt_discrepancy_ci": _ci(open_groups, lambda gs, s=spec: _per_prompt(gs, s)["discrepancy"]),
            }
        for field in ("vendi", "faithfulness", "clip_score"):
            row[field] = _set_mean(groups, field)
            row[f"{field}_ci"] = _ci(groups, lambda gs, f=field: _set_mean(gs, f)) if row[field] is not None else None
        out[group] = row
    return out
