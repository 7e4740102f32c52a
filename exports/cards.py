"""Pure dataset cards: what an export holds, how it was collected, its limits, and Hugging Face YAML. No Django."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from exports import writers as w


@dataclass(frozen=True)
class CardFacts:
    format: str
    title: str
    slug: str
    instructions: str
    criteria: Sequence[tuple[str, str]]  # (key, question) of the exported criteria
    population_size: int
    generators: Sequence[tuple[str, bool]]  # (name, is an offline stand-in)
    sampling_policy: str
    access: str
    filters: Mapping[str, Any]
    counts: Mapping[str, Any]
    exported_at: str
    version: str
    warnings: Sequence[str] = field(default_factory=list)
    # The manifest's `participants` section (exports.participants): consent, questionnaire, composition.
    participants: Mapping[str, Any] | None = None


_USAGE = {
    w.POPULATION_JSONL: (
        "`population.jsonl` holds one JSON object per judged pair of populations: caption, category, "
        "criterion, both populations (generator, rating at export time, every image with its path under "
        "`images/`, sha256, seed and exact generation prompt), vote counts per population, the winner "
        "label (`left`, `right`, `tie`, `both_bad`) and the margin. Every other format is derived from these rows."
    ),
    w.POPALIGN_CSV: (
        "`train.csv` is PopAlign's trainer input (`main.py --dataloader dpo --loss popalign "
        "--train_data_dir train.csv`, run from this folder: image paths are relative to the CSV). "
        "`jpg_0` is always from the winning population and `label` is always 0; each judged pair gives "
        "N rows pairing image i of the winner with image i of the loser. Ties are never included."
    ),
    w.PICKAPIC_PARQUET: (
        "A Hugging Face datasets folder with Pick-a-Pic v2's columns and types (`jpg_0`/`jpg_1` are the "
        'encoded image bytes in a plain binary column). Load it with `datasets.load_dataset("<this folder>")`, '
        "or give the folder as `--dataset_name` to Diffusion-DPO trainers (diffusers: add "
        "`--dataset_split_name train`). Each judged pair gives N rows (image i of one side with image i of "
        "the other, sides as first displayed). `ranking_id`, `user_id` (keyed hash) and `created_at` "
        "describe the pair's first vote; the labels are the majority over all of its votes."
    ),
    w.KTO_CSV: (
        "`train_processed_v3.csv` is Diffusion-KTO's input (`file_name, caption, split`): every image of a "
        "population that won a kept pair is `exclusive_win`, of one that lost is `exclusive_lose`, and an "
        "image that did both is `intersections`. Paths are relative to this folder; ties are never included."
    ),
    w.GENAI_BENCH_PARQUET: (
        "GenAI-Bench's layout for evaluating automatic judges against these human votes: "
        '`datasets.load_dataset("<this folder>", "image_generation", split="test_v1")`. Each row is one '
        "judged pair; each side is its whole population tiled into one grid image (as a judge that takes one "
        "image per side must see it; tiles scaled down to at most 384 px a side); `vote_type` is the majority "
        "of the human votes. Beyond GenAI-Bench's own columns, `left_metrics` and `right_metrics` hold each "
        "side's population measures as JSON (null where the campaign measures none), so automatic metrics can "
        "be judged against the same votes."
    ),
    w.VOTES_CSV: (
        "`votes.csv` is the raw vote log, one row per vote, with the sides as displayed on that comparison "
        "and a keyed hash instead of any participant id. As the raw log it keeps every vote: gold comparisons, "
        "side-swapped repeats and flagged participants' votes are in it, each marked in its own column "
        "(`is_gold`, `repeat_of_comparison_id`, `participant_flagged`). Votes of a simulated crowd (a metric "
        "voting through the arena, `participant_kind` `simulated`) are in it only where the filters include them."
    ),
    w.LEADERBOARD_CSV: (
        "`leaderboard.csv` holds the Bradley-Terry leaderboard of each exported criterion at export time "
        "(Elo scale, mean 1000, 95% bootstrap intervals)."
    ),
}

_LIMITS = [
    "Labels are human judgements of whole sets of images (populations), not of single images. Formats that "
    "pair single images (PopAlign, Pick-a-Pic, KTO) pair image i with image i of the other set: the label "
    "says which *set* won, and any one image pair may disagree with it.",
    "A pair's label is the majority of a few votes; `min_votes` and `min_margin` in the filters say how "
    "many were required. Votes on gold (known-answer) comparisons and on side-swapped repeats are left out "
    "of every preference format (all but the raw `votes.csv` log); votes of participants flagged by quality "
    "control are left out unless the filters say otherwise, and so are the votes of a simulated crowd (a "
    "population metric voting through the arena: `simulate_votes`), which are a metric's judgements, not "
    "people's; `include_simulated` in the filters says whether they are in. The manifest's `counts.votes` "
    "names how many of each kind there were, and they add up to the votes on the exported criteria.",
    "Sides were shown in random order; each vote is mapped back to the population it chose.",
    "Participants are anonymous volunteers or crowd workers; their demographics are unknown and they "
    "are not a representative sample. Participant ids are keyed hashes, stable within this deployment.",
    "Ratings are a snapshot at export time and change as votes arrive.",
]


def render_card(facts: CardFacts, yaml_header: str = "") -> str:
    """The README.md of an export; `yaml_header` (front matter) lets Hugging Face tools read the layout."""
    criteria = "\n".join(f"- `{key}`: {question}" for key, question in facts.criteria) or "- (none)"
    generators = "\n".join(
        f"- `{name}`" + (" (a built-in offline stand-in, not a real text-to-image model)" if standin else "")
        for name, standin in facts.generators
    )
    filters = "\n".join(f"- {key}: `{json.dumps(value)}`" for key, value in facts.filters.items())
    counts = "\n".join(f"- {key}: {json.dumps(value)}" for key, value in facts.counts.items())
    warnings = "".join(f"\n> {line}\n" for line in facts.warnings)
    limits = "\n".join(f"- {line}" for line in _LIMITS)
    instructions = facts.instructions.strip() or "(none)"
    participants = participants_card(facts.participants)
    return f"""{yaml_header}# {facts.title}: human preferences between image populations
{warnings}
Format: `{facts.format}`, exported {facts.exported_at} by PopArena {facts.version} from campaign `{facts.slug}`.

## What this is

{_USAGE[facts.format]}

## How it was collected

Participants in a PopArena campaign saw two *sets* of {facts.population_size} images, generated for the
same prompt by two anonymous generators, and answered each question with left, right, tie or both bad.
Generators were revealed only after the vote. Pairs were chosen by the `{facts.sampling_policy}` policy;
access was `{facts.access}`.

Instructions shown to participants:

> {instructions}

Questions (criteria) in this export:

{criteria}

Generators:

{generators}

## Filters applied at export time

{filters}

## Counts

{counts}

{participants}## Limits

{limits}

`manifest.json` lists every file with its sha256.
"""


def _yaml_str(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value)


def hf_yaml(
    *,
    config_name: str,
    data_dir: str,
    features: Mapping[str, Mapping[str, Any]],
    splits: Mapping[str, tuple[int, int]],
    download_size: int,
    pretty_name: str,
) -> str:
    """Front matter with `configs` and `dataset_info`; `splits` maps a split to (num_examples, num_bytes)."""
    lines = ["---", f"pretty_name: {_yaml_str(pretty_name)}", "configs:", f"- config_name: {config_name}"]
    lines.append("  data_files:")
    for split in splits:
        lines += [f"  - split: {split}", f"    path: {data_dir}/{split}-*"]
    lines += ["dataset_info:", f"  config_name: {config_name}", "  features:"]
    for name, feature in features.items():
        lines.append(f"  - name: {_yaml_str(name)}")
        if feature.get("_type") == "Image":
            lines.append("    dtype: image")
        else:
            lines.append(f"    dtype: {feature['dtype']}")
    lines.append("  splits:")
    for split, (examples, size) in splits.items():
        lines += [f"  - name: {split}", f"    num_bytes: {size}", f"    num_examples: {examples}"]
    total = sum(size for _, size in splits.values())
    lines += [f"  download_size: {download_size}", f"  dataset_size: {total}", "---", ""]
    return "\n".join(lines) + "\n"


def participants_card(section: Mapping[str, Any] | None) -> str:
    """The card's "Participants" section from the manifest's (exports.participants): the consent, the
    questionnaire, the sample's composition."""
    if not section:
        return ""
    consent = section["consent"]
    lines = ["## Participants", ""]
    if consent["asked"]:
        versions = ", ".join(f"{v['version']} ({v['created_at'][:10]})" for v in consent["versions"])
        lines.append(
            f"Participants accepted a consent text before their first comparison (current version "
            f"{consent['current_version']}; versions: {versions}). `votes.csv` names, per vote, the version the "
            "participant had accepted when they voted (`consent_version`)."
        )
    else:
        lines.append("The campaign asked no consent text; no questionnaire answers are exported.")
    lines.append(
        f"{section['withdrawn']} participant(s) withdrew: their votes and answers are in no file of this export."
    )
    if section["questionnaire"]:
        lines += ["", "Questionnaire (every version asked):", ""]
        for q in section["questionnaire"]:
            extra = f"; options: {', '.join(q['choices'])}" if q["choices"] else ""
            state = "" if q["current"] else ", an earlier version"
            optional = "required" if q["required"] else "optional"
            lines.append(f"- `{q['key']}` v{q['version']} ({q['kind']}, {optional}{state}): {q['text']}{extra}")
    if section["answers_file"]:
        lines += [
            "",
            f"`{section['answers_file']}` holds the answers of participants who consented, one row per participant, "
            "keyed by the same hashed id as the votes. A group of fewer than "
            f"{section['min_group_size']} participants (one answer to one question) is never shown: its cells are "
            "blank. The sample's composition (groups of at least that size):",
            "",
        ]
        for key, groups in section["composition"].items():
            shown = ", ".join(f"{value}: {n}" for value, n in groups.items()) or "(every group suppressed)"
            lines.append(f"- `{key}`: {shown}")
    return "\n".join(lines) + "\n\n"
