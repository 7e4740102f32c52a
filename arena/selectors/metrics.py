"""Reads of a campaign's population metrics beside its votes: the metrics table, agreement, one prompt's labels.

`get_campaign_metrics` is what GET /api/v1/campaigns/SLUG/metrics and the leaderboard page show:
per generator, the pooled and per-prompt-mean measures of each attribute (metrics.selectors), and
per criterion and measure how far the metric agrees with the crowd:
- `share`: of the counted decisive votes (left or right; no gold checks, repeats, flagged or simulated
  participants, the leaderboard's rule) on comparisons where the measure tells the sides apart (and,
  for an attribute's measures, whose prompt leaves the attribute open: `Judge.speaks_to`), the share
  in which the crowd chose the side the measure prefers, with a Wilson 95% interval. 0.5 is
  chance; under 0.5 the crowd prefers the opposite.
- `spearman`: the rank correlation between the generators' pooled measure (oriented so higher is
  better) and their human Bradley-Terry ratings on that criterion (GenAI-Bench's check of automatic
  judges). With few generators it is coarse: 4 generators give only 24 orders.

For one group of participants (`?group=QUESTION:VALUE`, arena.group_boards' groups and k rule) the same
figures come from the group's votes alone: the share with an interval from a bootstrap over the group's
participants (arena.groups.participant_share), as the group's board has, and the rank correlation with the
group's board.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max, Sum

from annotation.measuring import campaign_population_ids
from annotation.models import Campaign
from annotation.selectors import criteria_in_order
from arena.group_boards import get_group_leaderboard, get_group_members, group_too_small, groups_version
from arena.groups import INTERVALS_PARTICIPANTS, participant_share
from arena.models import Vote
from arena.selectors import get_leaderboard
from core.errors import ApplicationError, NotFound
from generation.models import Population
from generation.selectors import get_blank_counts
from metrics import measures
from metrics.judges import Judge, judges_for
from metrics.models import AttributeMeasure, SetMeasure
from metrics.selectors import Member, aggregate, image_labels, measures_by_population

METRICS_CACHE_S = 600
# A group's agreement: bootstrap rounds over its participants (the group boards' 200).
AGREEMENT_ROUNDS = 200
INTERVALS_WILSON = "wilson"
NOTES = {
    "pooled": "shares, discrepancy, kl, entropy, distinct: all of a generator's images counted together (as PopAlign)",
    "per_prompt": "each prompt measured on its own images, then averaged over prompts",
    "intervals": "95% percentile bootstrap over prompts",
    "vendi": "mean Vendi score of the populations, all of size N; compare only at equal N",
    "faithfulness": "share of images whose read attributes match what the caption names (toy domain)",
    "clip_score": "mean 100 x max(cosine(image, caption), 0), where a CLIP is configured",
    "agreement": "share of decisive counted votes won by the side the measure prefers, Wilson 95% interval; for one "
    "group (?group=QUESTION:VALUE), its votes only, with a 95% interval from a bootstrap over its participants",
    "blank": (
        "images that came back blank (one colour, as a safety checker's black square) never reach a set: each is "
        "redrawn from a new seed (redrawn counts those draws), and a set whose image is blank every time fails "
        "(failed_sets, with its prompts); blank images are not measured"
    ),
}


def _members(campaign: Campaign, category: str) -> list[Member]:
    populations = Population.objects.filter(pk__in=campaign_population_ids(campaign))
    if category:
        populations = populations.filter(prompt__category=category)
    return [
        Member(pk, name, prompt_id, size, caption)
        for pk, name, prompt_id, size, caption in populations.values_list(
            "pk", "generator__name", "prompt_id", "size", "prompt__caption"
        )
    ]


def _version(campaign: Campaign, member_ids: list[int]) -> str:
    # Anything that changes the answer changes one of these: a measure stored, a vote cast, a population added.
    measured = AttributeMeasure.objects.filter(population_id__in=member_ids).aggregate(n=Count("id"), at=Max("id"))
    sets = SetMeasure.objects.filter(population_id__in=member_ids).aggregate(n=Count("id"), at=Max("id"))
    votes = Vote.objects.filter(comparison__campaign=campaign).aggregate(n=Count("id"), at=Max("id"))
    # Flagging (or clearing) a participant casts no vote but changes which votes count: the counted set's
    # size and id sum change with it, so agreement is never older than the quality review.
    counted = Vote.objects.counted().filter(comparison__campaign=campaign).aggregate(n=Count("id"), s=Sum("id"))
    config = campaign.metrics_attributes
    blob = f"{member_ids[-1] if member_ids else 0}:{len(member_ids)}:{measured}:{sets}:{votes}:{counted}:{config}"
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class GroupScope:
    """One group of participants (`QUESTION:VALUE`) and who is in it."""

    text: str
    question: str
    value: str
    members: frozenset[int]


def get_campaign_metrics(*, campaign: Campaign, category: str = "", group: str = "") -> dict[str, Any]:
    """The campaign's metrics table and agreement (shape in DESIGN.md); cached until measures or votes change.

    With `group` (`QUESTION:VALUE`), the agreement is that group's (see `get_agreement`), under the group boards'
    rule: 403 group_too_small unless at least k of the group have counted votes; the table is the same."""
    specs = campaign.attribute_specs()
    members = _members(campaign, category)
    scope = None
    if group:
        question, value, ids = get_group_members(campaign=campaign, group=group)
        scope = GroupScope(group, question, value, frozenset(ids))
    detail = hashlib.sha256(json.dumps([category, group]).encode()).hexdigest()[:16]
    version = _version(campaign, [m.population_id for m in members])
    if scope is not None:
        version += ":" + groups_version(campaign)
    key = f"campaign-metrics:{campaign.pk}:{detail}:{version}"
    cached = cache.get(key)
    if cached is None:
        cached = _metrics_payload(campaign, category, specs, members, scope)
        cache.set(key, cached, METRICS_CACHE_S)
    if cached.get("too_small"):
        raise group_too_small(campaign)
    return _with_blank_counts(dict(cached), campaign, category)


def _with_blank_counts(payload: dict[str, Any], campaign: Campaign, category: str) -> dict[str, Any]:
    """Each row with its generator's blank images on the campaign's prompts (of `category`): read fresh, never
    cached, since a failed set changes no measure or vote that the cache key follows."""
    prompts = campaign.prompts.filter(category=category) if category else campaign.prompts.all()
    counts = {
        count.generator: count
        for count in get_blank_counts(
            generator_ids=campaign.generators.values_list("pk", flat=True),
            prompt_ids=prompts.values_list("pk", flat=True),
        )
    }
    rows = []
    for row in payload["rows"]:
        count = counts.get(row["generator"])
        blank = {"redrawn": 0, "failed_sets": 0, "prompts": []}
        if count is not None:
            blank = {"redrawn": count.redrawn, "failed_sets": count.failed_sets, "prompts": list(count.prompts)}
        rows.append({**row, "blank": blank})
    return {**payload, "rows": rows}


def _metrics_payload(
    campaign: Campaign, category: str, specs: Any, members: list[Member], scope: GroupScope | None
) -> dict[str, Any]:
    if scope is not None:
        votes = Vote.objects.counted().filter(comparison__campaign=campaign)
        if category:
            votes = votes.filter(comparison__prompt__category=category)
        voted = set(votes.values_list("comparison__participant_id", flat=True).distinct()) & scope.members
        if len(voted) < campaign.min_group_size:
            return {"too_small": True}
    aggregated = aggregate(members, specs)
    labels = dict(campaign.generators.values_list("name", "display_name"))
    rows = []
    for name in sorted(labels):
        row = aggregated.get(name)
        if row is None:
            rows.append(_empty_row(name, labels[name] or name, specs))
            continue
        rows.append({"generator": name, "display_name": labels[name] or name, **row})
    payload = {
        "campaign": campaign.slug,
        "category": category,
        "population_size": campaign.population_size,
        "attributes": [
            {
                "name": spec.name,
                "backend": spec.backend,
                "model": spec.model or None,
                "classes": list(spec.classes),
                "target": spec.target,
            }
            for spec in specs
        ],
        "rows": rows,
        "agreement": get_agreement(campaign=campaign, category=category, rows=rows, group=scope) if specs else [],
        "prompts": list_metric_prompts(campaign=campaign, category=category),
        "notes": NOTES,
    }
    if scope is not None:
        payload["group"] = {
            "question": scope.question,
            "value": scope.value,
            "participants": len(voted),
            "min_group_size": campaign.min_group_size,
        }
    return payload


def _empty_row(name: str, display_name: str, specs: Any) -> dict[str, Any]:
    return {
        "generator": name,
        "display_name": display_name,
        "populations": 0,
        "prompts": 0,
        "images": 0,
        "attributes": {
            spec.name: {
                "shares": None,
                "discrepancy": None,
                "kl": None,
                "entropy": None,
                "distinct": 0,
                "effective": None,
                "counted": 0,
                "prompts": 0,
                "discrepancy_ci": None,
                "per_prompt": {"discrepancy": None, "kl": None, "entropy": None, "distinct": None},
                "per_prompt_discrepancy_ci": None,
            }
            for spec in specs
        },
        **{field: None for field in ("vendi", "vendi_ci", "faithfulness", "faithfulness_ci", "clip_score")},
        "clip_score_ci": None,
    }


def _generator_value(judge: Judge, row: dict[str, Any]) -> float | None:
    value = judge.value(row)
    if value is None:
        return None
    return value if judge.higher_is_better else -value


def get_agreement(
    *, campaign: Campaign, category: str, rows: list[dict[str, Any]], group: GroupScope | None = None
) -> list[dict[str, Any]]:
    """Per criterion and judge: how often the crowd (or one group of it) chose the side the measure prefers, and
    the rank correlation with its board. The whole crowd's share has a Wilson interval; a group's, like its
    board, an interval from a bootstrap over its participants (a participant's votes are not independent), and
    a criterion on which fewer than k of the group voted shows no figure."""
    specs = campaign.attribute_specs()
    judges = judges_for([spec.name for spec in specs])
    tallies, voters = _judged(campaign, category, judges, specs)
    out = []
    for criterion in (c.key for c in criteria_in_order(campaign)):
        hidden = group is not None and len(voters.get(criterion, set()) & group.members) < campaign.min_group_size
        ratings = {} if hidden else _ratings(campaign, criterion, category, group)
        for judge in judges:
            per_participant = tallies.get((criterion, judge.name), {})
            if not per_participant and all(_generator_value(judge, row) is None for row in rows):
                continue  # a measure this campaign never has (CLIP score without a CLIP)
            paired = [
                (value, ratings[row["generator"]])
                for row in rows
                if (value := _generator_value(judge, row)) is not None and row["generator"] in ratings
            ]
            row = {
                "criterion": criterion,
                "measure": judge.name,
                "better": "higher" if judge.higher_is_better else "lower",
                "spearman": measures.spearman([p[0] for p in paired], [p[1] for p in paired]),
                "generators": len(paired),
            }
            if group is None:
                agree = sum(a for a, _ in per_participant.values())
                total = sum(t for _, t in per_participant.values())
                interval = measures.wilson_interval(agree, total)
                row |= {
                    "votes": total,
                    "agree": agree,
                    "share": agree / total if total else None,
                    "ci_low": interval[0] if interval else None,
                    "ci_high": interval[1] if interval else None,
                    "intervals": INTERVALS_WILSON,
                }
            elif hidden:
                row |= {"votes": None, "agree": None, "share": None, "ci_low": None, "ci_high": None}
                row |= {"spearman": None, "generators": 0, "intervals": INTERVALS_PARTICIPANTS, "suppressed": True}
            else:
                mine = [per_participant[who] for who in sorted(group.members & per_participant.keys())]
                share = participant_share([a for a, _ in mine], [t for _, t in mine], rounds=AGREEMENT_ROUNDS, seed=0)
                row |= {
                    "votes": share.votes,
                    "agree": share.hits,
                    "share": share.share,
                    "ci_low": share.ci_low,
                    "ci_high": share.ci_high,
                    "intervals": INTERVALS_PARTICIPANTS,
                }
            out.append(row)
    return out


def _judged(
    campaign: Campaign, category: str, judges: list[Judge], specs: Any
) -> tuple[dict[tuple[str, str], dict[int, tuple[int, int]]], dict[str, set[int]]]:
    """Per (criterion, judge): each participant's (agreeing, judged) decisive votes; and per criterion, who voted.

    The leaderboard's votes (people only: agreeing with a simulated crowd is agreeing with a metric)."""
    votes = Vote.objects.counted().filter(comparison__campaign=campaign)
    if category:
        votes = votes.filter(comparison__prompt__category=category)
    counted = list(
        votes.values_list(
            "criterion__key",
            "choice",
            "comparison__left_population_id",
            "comparison__right_population_id",
            "comparison__prompt__caption",
            "comparison__participant_id",
        )
    )
    decisive = [vote for vote in counted if vote[1] in (Vote.Choice.LEFT, Vote.Choice.RIGHT)]
    measured = measures_by_population(
        {pid for _, _, left, right, _, _ in decisive for pid in (left, right)}, attributes=specs
    )
    classes = {spec.name: spec.classes for spec in specs}
    voters: dict[str, set[int]] = defaultdict(set)
    for criterion, _, _, _, _, participant in counted:
        voters[criterion].add(participant)
    tallies: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for criterion, choice, left, right, caption, participant in decisive:
        for judge in judges:
            if not judge.speaks_to(caption, classes.get(judge.attribute, ())):
                continue  # "a red circle": red is what was asked, so the colour's measures have no say
            preferred = judge.prefers(measured[left], measured[right])
            if preferred is None:
                continue
            tally = tallies[(criterion, judge.name)][participant]
            tally[0] += preferred == choice
            tally[1] += 1
    judged = {key: {who: (a, t) for who, (a, t) in mine.items()} for key, mine in tallies.items()}
    return judged, dict(voters)


def _ratings(campaign: Campaign, criterion: str, category: str, group: GroupScope | None) -> dict[str, float]:
    """The ratings the measures are correlated with: the whole crowd's board, or the group's (none under k)."""
    if group is None:
        board = get_leaderboard(campaign=campaign, criterion=criterion, category=category)
    else:
        try:
            board = get_group_leaderboard(campaign=campaign, criterion=criterion, group=group.text, category=category)
        except ApplicationError as refused:
            if refused.code != "group_too_small":
                raise
            return {}
    return {r["generator"]: r["rating"] for r in board["rows"]}


def get_prompt_metrics(*, campaign: Campaign, prompt_id: int) -> dict[str, Any]:
    """One prompt of a campaign: each generator's latest measured population, its images and their labels.

    It ties sets the arena may still serve to their generators: only for those who manage the campaign
    (arena.metrics_api.PromptMetricsApi checks), never for a public surface.
    """
    prompt = campaign.prompts.filter(pk=prompt_id).first()
    if prompt is None:
        raise NotFound(f"campaign {campaign.slug!r} has no prompt {prompt_id}")
    specs = campaign.attribute_specs()
    ids = campaign_population_ids(campaign)
    populations = list(
        Population.objects.filter(pk__in=ids, prompt=prompt)
        .select_related("generator")
        .order_by("generator__name", "-pk")
    )
    latest: dict[str, Population] = {}
    for population in populations:
        latest.setdefault(population.generator.name, population)
    chosen = list(latest.values())
    measured = measures_by_population([p.pk for p in chosen], attributes=specs)
    labels = image_labels([p.pk for p in chosen], specs)
    sides = []
    for population in chosen:
        images = sorted(population.images.all(), key=lambda i: i.index)
        sides.append(
            {
                "generator": population.generator.name,
                "display_name": population.generator.label,
                "population": population.pk,
                "images": [{"url": image.file.url, "labels": labels.get(image.pk, {})} for image in images],
                **measured[population.pk],
            }
        )
    return {
        "campaign": campaign.slug,
        "prompt": {"id": prompt.pk, "caption": prompt.caption, "category": prompt.category},
        "attributes": [spec.name for spec in specs],
        "generators": sides,
    }


def list_metric_prompts(*, campaign: Campaign, category: str = "") -> list[dict[str, Any]]:
    """The campaign's prompts (of one category, or all) for the per-prompt view's picker."""
    prompts = campaign.prompts.order_by("category", "caption")
    if category:
        prompts = prompts.filter(category=category)
    return [
        {"id": pk, "caption": caption, "category": prompt_category}
        for pk, caption, prompt_category in prompts.values_list("pk", "caption", "category")
    ]
