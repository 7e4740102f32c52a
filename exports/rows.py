"""Pure row building for exports: votes grouped into judged population pairs, outcomes, filters, splits. No Django."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from core.choices import BOTH_BAD, CHOICES, LEFT, RIGHT, TIE

# A judged pair's outcome is the choice most of its votes made.
OUTCOMES = CHOICES

TIES_DROP = "drop"
TIES_SOFT = "soft"

TRAIN = "train"
VALIDATION = "validation"

# Why a judged pair was left out; the manifest counts each.
DROP_MIN_VOTES = "min_votes"
DROP_TIE = "tie"
DROP_MIN_MARGIN = "min_margin"
DROP_MISSING_IMAGE = "missing_image"
DROP_GENERATORS = "generators"


def drop_worse_on(criterion: str) -> str:
    """The drop reason of `--not-worse-on CRITERION`: the pair's winner lost on that criterion."""
    return f"worse_on_{criterion}"


# A vote's time as the database returns it: a datetime, or its text when a reader skips the
# conversion (parsing every vote's time costs more than folding the votes; see `moment`).
Moment = datetime | str


def moment(value: Moment) -> datetime:
    """A vote time as an aware datetime: text times are ISO 8601 in UTC (with or without the zone)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso_moment(value: Moment) -> str:
    """A vote time as ISO 8601 with its zone, without parsing text the database already wrote in UTC."""
    if isinstance(value, datetime):
        return moment(value).isoformat()
    text = value.replace(" ", "T", 1)
    if len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        return text
    if len(text) > 3 and text[-3] in "+-":
        return text + ":00"
    return text + "+00:00"


class PairStreamVote(NamedTuple):
    """One vote as the pair stream reads it; `choice` is the side as displayed on its comparison.

    `created_at` may be text; within one stream every time has the same form, and ISO text in
    one zone sorts as the times do, so it is compared as it comes and parsed once per pair.
    """

    vote_id: int
    criterion_id: int
    prompt_id: int
    comparison_id: int
    left_population_id: int
    right_population_id: int
    choice: str
    created_at: Moment
    participant_id: int


@dataclass(slots=True)
class JudgedPair:
    """All votes on one unordered pair of populations for one criterion, counted per population.

    `left`/`right` are the sides as displayed on the pair's first vote; later comparisons may
    have shown them the other way round, and their votes are mapped back to the populations.
    """

    criterion_id: int
    prompt_id: int
    left_population_id: int
    right_population_id: int
    first_vote_id: int
    first_comparison_id: int
    first_participant_id: int
    first_voted: Moment
    last_voted: Moment
    left_wins: int = 0
    right_wins: int = 0
    ties: int = 0
    both_bad: int = 0
    participants: set[int] = field(default_factory=set)

    @property
    def first_vote_at(self) -> datetime:
        return moment(self.first_voted)

    @property
    def last_vote_at(self) -> datetime:
        return moment(self.last_voted)

    @property
    def total(self) -> int:
        return self.left_wins + self.right_wins + self.ties + self.both_bad

    @property
    def margin(self) -> int:
        return abs(self.left_wins - self.right_wins)

    @property
    def outcome(self) -> str:
        """`left` or `right` when one population has more wins; otherwise `both_bad` if that beat `tie`, else `tie`."""
        if self.left_wins > self.right_wins:
            return LEFT
        if self.right_wins > self.left_wins:
            return RIGHT
        return BOTH_BAD if self.both_bad > self.ties else TIE

    @property
    def decided(self) -> bool:
        return self.left_wins != self.right_wins

    @property
    def low_high(self) -> tuple[int, int]:
        a, b = self.left_population_id, self.right_population_id
        return (a, b) if a < b else (b, a)


def _start(vote: PairStreamVote) -> JudgedPair:
    return JudgedPair(
        criterion_id=vote.criterion_id,
        prompt_id=vote.prompt_id,
        left_population_id=vote.left_population_id,
        right_population_id=vote.right_population_id,
        first_vote_id=vote.vote_id,
        first_comparison_id=vote.comparison_id,
        first_participant_id=vote.participant_id,
        first_voted=vote.created_at,
        last_voted=vote.created_at,
    )


def group_pairs(votes: Iterable[PairStreamVote]) -> Iterator[JudgedPair]:
    """Fold a vote stream ordered by (prompt, low population, high population, criterion, vote id) into pairs.

    Holds one pair at a time, so memory does not grow with the stream. An out-of-order stream
    would silently split pairs, so it raises instead.
    """
    pair: JudgedPair | None = None
    key: tuple[int, int, int, int] | None = None
    # Unpacked rather than read by attribute: this loop runs once per vote.
    for vote in votes:
        _, criterion_id, prompt_id, _, left, right, choice, created_at, participant_id = vote
        vote_key = (prompt_id, left, right, criterion_id) if left < right else (prompt_id, right, left, criterion_id)
        if vote_key != key:
            if key is not None and vote_key < key:
                raise ValueError("votes must be ordered by prompt, population pair and criterion")
            if pair is not None:
                yield pair
            pair, key = _start(vote), vote_key
        assert pair is not None
        if choice == LEFT:
            if left == pair.left_population_id:
                pair.left_wins += 1
            else:
                pair.right_wins += 1
        elif choice == RIGHT:
            if right == pair.left_population_id:
                pair.left_wins += 1
            else:
                pair.right_wins += 1
        elif choice == TIE:
            pair.ties += 1
        elif choice == BOTH_BAD:
            pair.both_bad += 1
        else:
            raise ValueError(f"unknown vote choice {choice!r}")
        pair.participants.add(participant_id)
        if created_at > pair.last_voted:  # type: ignore[operator]
            pair.last_voted = created_at
    if pair is not None:
        yield pair


@dataclass(frozen=True)
class PairFilter:
    """Export-time filters: `ties` drop|soft, fewest votes a pair needs, smallest win margin of a decided pair."""

    ties: str = TIES_DROP
    min_votes: int = 1
    min_margin: int = 0

    def __post_init__(self) -> None:
        if self.ties not in (TIES_DROP, TIES_SOFT):
            raise ValueError(f"ties must be {TIES_DROP!r} or {TIES_SOFT!r}, not {self.ties!r}")
        if self.min_votes < 1:
            raise ValueError("min_votes must be at least 1")
        if self.min_margin < 0:
            raise ValueError("min_margin must not be negative")

    def drop_reason(self, pair: JudgedPair) -> str | None:
        """Why the pair is left out, or None to keep it. The margin applies to decided pairs only."""
        if pair.total < self.min_votes:
            return DROP_MIN_VOTES
        if not pair.decided:
            return DROP_TIE if self.ties == TIES_DROP else None
        if pair.margin < self.min_margin:
            return DROP_MIN_MARGIN
        return None


def winner_lost_on(pair: JudgedPair, other: JudgedPair) -> bool:
    """Whether the winner of the decided `pair` lost on `other`, the same two populations judged on another
    criterion: there, the population that lost `pair` has more wins. A tie there, or no votes, is no loss.

    Each pair counts wins per population (its sides as first displayed), so the populations are matched by id.
    """
    winner = pair.left_population_id if pair.left_wins > pair.right_wins else pair.right_population_id
    if winner == other.left_population_id:
        return other.right_wins > other.left_wins
    return other.left_wins > other.right_wins


def drop_reason(
    pair: JudgedPair,
    *,
    pair_filter: PairFilter,
    guards: Mapping[int, str],
    guard_pairs: Mapping[int, JudgedPair],
    populations: Collection[int] | None = None,
) -> str | None:
    """Why an export leaves a judged pair out, or None to keep it.

    `populations`: those of the generators `--generators` chose (None: every generator); `guards`: the
    `--not-worse-on` criteria (id -> key), with `guard_pairs` the same two populations' pairs on them.
    Reasons go in this order, each counted only for pairs the ones before kept: a side outside the chosen
    generators (such a pair is not between them at all), then `pair_filter` (votes, tie, margin), then a
    winner that lost on a guard criterion.
    """
    if populations is not None and (
        pair.left_population_id not in populations or pair.right_population_id not in populations
    ):
        return DROP_GENERATORS
    reason = pair_filter.drop_reason(pair)
    if reason is None and pair.decided:
        reason = next(
            (
                drop_worse_on(key)
                for pk, key in guards.items()
                if pk != pair.criterion_id and pk in guard_pairs and winner_lost_on(pair, guard_pairs[pk])
            ),
            None,
        )
    return reason


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """One image of a population, as exported; `path` is where its copy lives, named by content hash."""

    image_id: int
    index: int
    storage_name: str
    sha256: str
    seed: int
    generation_prompt: str
    width: int
    height: int
    path: str

    @classmethod
    def of(
        cls,
        image_id: int,
        index: int,
        storage_name: str,
        sha256: str,
        seed: int,
        generation_prompt: str,
        width: int,
        height: int,
    ) -> ImageInfo:
        name = storage_name.rsplit("/", 1)[-1]
        dot = name.rfind(".")
        suffix = name[dot:].lower() if dot > 0 else ""
        # One file per content hash, fanned out over 256 folders so no folder grows huge.
        path = f"images/{sha256[:2]}/{sha256}{suffix}"
        return cls(image_id, index, storage_name, sha256, seed, generation_prompt, width, height, path)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "path": self.path,
            "sha256": self.sha256,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "generation_prompt": self.generation_prompt,
        }


@dataclass(frozen=True, slots=True)
class PopulationInfo:
    population_id: int
    generator: str
    size: int
    images: tuple[ImageInfo, ...]
    # The population's measures under the campaign's attribute specs (metrics.selectors.measures_by_population).
    metrics: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class PromptInfo:
    prompt_id: int
    caption: str
    category: str


@dataclass(frozen=True, slots=True)
class PairRow:
    """The canonical export row: a judged pair with its prompt, both populations and both generators' ratings."""

    criterion: str
    prompt: PromptInfo
    pair: JudgedPair
    left: PopulationInfo
    right: PopulationInfo
    left_rating: float | None
    right_rating: float | None
    split: str = TRAIN

    @property
    def pair_id(self) -> str:
        low, high = self.pair.low_high
        return f"{self.criterion}:{low}-{high}"

    @property
    def outcome(self) -> str:
        return self.pair.outcome

    def winner_loser(self) -> tuple[PopulationInfo, PopulationInfo]:
        """(winner, loser) of a decided pair; a tie keeps the displayed order."""
        return (self.right, self.left) if self.pair.outcome == RIGHT else (self.left, self.right)

    def sample_pairs(self, *, winner_first: bool) -> list[tuple[ImageInfo, ImageInfo]]:
        """Per-sample pairs as in PopAlign: image i of one side with image i of the other, in generation order.

        Populations of one campaign share a size; if they ever differ the extra images are left out.
        """
        first, second = self.winner_loser() if winner_first else (self.left, self.right)
        return list(zip(first.images, second.images, strict=False))

    def images(self) -> Iterator[ImageInfo]:
        yield from self.left.images
        yield from self.right.images

    def as_dict(self, *, populations: bool = True) -> dict[str, Any]:
        """The population-jsonl line; `populations=False` leaves out the two population objects."""
        pair = self.pair
        data: dict[str, Any] = {
            "pair_id": self.pair_id,
            "criterion": self.criterion,
            "prompt_id": self.prompt.prompt_id,
            "caption": self.prompt.caption,
            "category": self.prompt.category,
            "split": self.split,
        }
        if populations:
            data["left"] = _population_dict(self.left, self.left_rating)
            data["right"] = _population_dict(self.right, self.right_rating)
        data.update(
            {
                "votes": {
                    LEFT: pair.left_wins,
                    RIGHT: pair.right_wins,
                    TIE: pair.ties,
                    BOTH_BAD: pair.both_bad,
                    "total": pair.total,
                },
                "winner": pair.outcome,
                "margin": pair.margin,
                "voters": len(pair.participants),
                "first_comparison_id": pair.first_comparison_id,
                "first_vote_at": iso_moment(pair.first_voted),
                "last_vote_at": iso_moment(pair.last_voted),
            }
        )
        return data


def _population_dict(population: PopulationInfo, rating: float | None) -> dict[str, Any]:
    return {
        "population_id": population.population_id,
        "generator": population.generator,
        "rating": None if rating is None else round(rating, 4),
        "size": population.size,
        "images": [image.as_dict() for image in population.images],
        "metrics": population.metrics,
    }


def split_for(caption: str, validation_fraction: float) -> str:
    """Train or validation by a hash of the caption, so a caption never lands in both splits."""
    if validation_fraction <= 0:
        return TRAIN
    digest = hashlib.sha256(caption.encode()).digest()
    return VALIDATION if int.from_bytes(digest[:8], "big") / 2**64 < validation_fraction else TRAIN


class ParticipantHasher:
    """Keyed hash of participant ids: stable for one key (one deployment), useless without it."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._cache: dict[int, str] = {}

    def hex(self, participant_id: int) -> str:
        cached = self._cache.get(participant_id)
        if cached is None:
            digest = hmac.new(self._key, f"export-participant:{participant_id}".encode(), hashlib.sha256)
            cached = digest.hexdigest()[:32]
            # A bounded cache: each entry is tiny, and a cleared cache only costs recomputation.
            if len(self._cache) >= 100_000:
                self._cache.clear()
            self._cache[participant_id] = cached
        return cached

    def int64(self, participant_id: int) -> int:
        """The same hash as a non-negative int64, for formats whose user id column is an integer."""
        return int(self.hex(participant_id)[:15], 16)


def count_sample_rows(rows: Sequence[PairRow]) -> int:
    return sum(min(len(r.left.images), len(r.right.images)) for r in rows)
