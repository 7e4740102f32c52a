"""Issuing comparisons: which pair a participant sees next (gold checks, repeats, unfinished and new pairs), leases."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.models import Campaign, Participant
from annotation.selectors import campaign_populations
from arena.models import Comparison, PairTally, Vote, new_comparison_token
from arena.sampling import Pair, active_weights, choose_pairs, normalise
from core.errors import ApplicationError, Conflict, Forbidden, Gone, NotFound
from generation.models import Generator, Population, Prompt
from generation.services import get_or_create_decoy

LEASE = timedelta(minutes=10)
# The comparison on screen plus the one prefetched behind it.
MAX_OUTSTANDING = 2


class NothingReady(ApplicationError):
    """No comparison can be issued now: generation is behind, or this participant has seen everything."""

    code = "nothing_ready"
    status = 409


@dataclass(frozen=True)
class _Past:
    """One of a participant's comparisons as the history reads it: columns, not a model instance."""

    pk: int
    token: str
    status: str
    live: bool  # its lease runs past now
    left_population_id: int
    right_population_id: int
    prompt_id: int
    is_gold: bool
    repeat_of_id: int | None


@dataclass(frozen=True)
class _History:
    """A participant's comparisons in one campaign, read in one query."""

    rows: list[_Past]
    outstanding: list[_Past]
    seen: set[frozenset[int]]
    voted: int


# A participant's comparisons in one campaign, oldest first, each with whether its lease is still running.
# Written out and read as tuples: the participant's history grows with every vote, and the ORM's query
# and a Comparison per row cost more CPU than the query itself. Portable SQL: PostgreSQL and SQLite.
_HISTORY = """
SELECT c.id, c.token, c.status, CASE WHEN c.lease_until > %(now)s THEN 1 ELSE 0 END,
    c.left_population_id, c.right_population_id, c.prompt_id, c.is_gold, c.repeat_of_id
FROM {comparison} c
WHERE c.campaign_id = %(campaign)s AND c.participant_id = %(participant)s
ORDER BY c.issued_at, c.id
"""


def _history(campaign: Campaign, participant: Participant, now: datetime) -> _History:
    params = {
        "now": connection.ops.adapt_datetimefield_value(now),
        "campaign": campaign.pk,
        "participant": participant.pk,
    }
    with connection.cursor() as cursor:
        cursor.execute(_HISTORY.format(**tables()), params)
        rows = [
            _Past(pk, token, status, bool(live), left, right, prompt_id, bool(is_gold), repeat_of_id)
            for pk, token, status, live, left, right, prompt_id, is_gold, repeat_of_id in cursor.fetchall()
        ]
    return _History(
        rows=rows,
        outstanding=[c for c in rows if c.status == Comparison.Status.ISSUED and c.live],
        seen={frozenset((c.left_population_id, c.right_population_id)) for c in rows},
        voted=sum(c.status == Comparison.Status.VOTED for c in rows),
    )


# A new comparison: the row Comparison.objects.create would insert (no voted_at, no repeat), written out because
# the ORM's INSERT cost more CPU to build than to run. RETURNING: PostgreSQL, and SQLite from 3.35.
_INSERT_COMPARISON = """
INSERT INTO {comparison} (campaign_id, participant_id, prompt_id, left_population_id, right_population_id, token,
    status, issued_at, lease_until, is_gold)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""


def _create(
    *,
    campaign: Campaign,
    participant: Participant,
    first: int,
    second: int,
    prompt_id: int,
    now: datetime,
    rng: random.Random,
    is_gold: bool = False,
) -> Comparison:
    left, right = (first, second) if rng.random() < 0.5 else (second, first)
    comparison = Comparison(
        campaign=campaign,
        participant=participant,
        prompt_id=prompt_id,
        left_population_id=left,
        right_population_id=right,
        token=new_comparison_token(),
        status=Comparison.Status.ISSUED,
        issued_at=now,
        lease_until=now + LEASE,
        is_gold=is_gold,
    )
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_COMPARISON.format(**tables()),
            [
                campaign.pk,
                participant.pk,
                prompt_id,
                left,
                right,
                comparison.token,
                comparison.status,
                adapt(comparison.issued_at),
                adapt(comparison.lease_until),
                is_gold,
            ],
        )
        comparison.pk = cursor.fetchone()[0]
    comparison._state.adding = False
    if not is_gold:  # a population's uses count the comparisons whose votes rank it
        # One row at a time in id order: a single UPDATE of both rows locks them in the order they
        # lie on disk, and two participants given the same pair at once could deadlock. Written out:
        # the ORM's UPDATE with an F() expression cost more to build than to run.
        with connection.cursor() as cursor:
            for pk in sorted((left, right)):
                cursor.execute(f"UPDATE {Population._meta.db_table} SET uses = uses + 1 WHERE id = %s", [pk])
    return comparison


# --- quality checks mixed into the stream -----------------------------------------------------------------

# Repeats show a comparison again only after this many others, so it is not recognised at once.
REPEAT_MIN_GAP = 2
# Gold comparisons reuse decoys; a fresh one is made while a participant has fewer unseen than this.
GOLD_DECOY_POOL = 10


def gold_sources(campaign: Campaign) -> QuerySet[Population]:
    """Ready populations that may be the real side of a gold check in `campaign`.

    Never a generator marked unsuitable (`gold_source`, off for noise stand-ins: beside a degraded copy
    of noise neither side is plainly broken) or one the campaign excludes.
    """
    generators = campaign.generators.filter(is_active=True, gold_source=True).exclude(
        pk__in=campaign.gold_excluded_generators.values("pk")
    )
    return campaign_populations(campaign, generators=generators)


def _fresh_gold_source(real: QuerySet[Population], rng: random.Random) -> Population | None:
    """A source with no decoy yet, from the generator, then the prompt, with the fewest decoys (ties at random).

    Stratified so that gold checks spread over every eligible generator and prompt: drawn from the
    most recent sets, they came from whichever generator the queues happened to fill last, and a
    participant could learn which generator's sets are the checks.
    """
    decoyed = Counter(real.filter(decoys__isnull=False).values_list("generator_id", "prompt_id"))
    open_strata = set(real.filter(decoys__isnull=True).values_list("generator_id", "prompt_id"))
    if not open_strata:
        return None
    per_generator = Counter[int]()
    for (generator, _), n in decoyed.items():
        per_generator[generator] += n
    generator = min({g for g, _ in open_strata}, key=lambda g: (per_generator[g], rng.random()))
    prompt = min({p for g, p in open_strata if g == generator}, key=lambda p: (decoyed[(generator, p)], rng.random()))
    candidates = list(
        real.filter(decoys__isnull=True, generator_id=generator, prompt_id=prompt).values_list("pk", flat=True)[:50]
    )
    return Population.objects.get(pk=rng.choice(candidates))


def _gold_comparison(
    campaign: Campaign, participant: Participant, history: _History, now: datetime, rng: random.Random
) -> Comparison | None:
    """A real population of the campaign beside a degraded copy of itself, sides at random; None if none ready.

    The real side is drawn evenly over the source generators first, then over their decoys, so no
    generator is the usual gold source (see `_fresh_gold_source`).
    """
    real = gold_sources(campaign)
    unseen: dict[int, list[tuple[int, int, int]]] = {}
    for pk, source_pk, prompt_id, generator_id in Population.objects.filter(
        decoy_of__in=real.values("pk"), status=Population.Status.READY
    ).values_list("pk", "decoy_of_id", "prompt_id", "decoy_of__generator_id"):
        if frozenset((pk, source_pk)) not in history.seen:
            unseen.setdefault(generator_id, []).append((pk, source_pk, prompt_id))
    if sum(map(len, unseen.values())) < GOLD_DECOY_POOL:
        source = _fresh_gold_source(real, rng)
        if source is not None:
            decoy = get_or_create_decoy(population=source)
            unseen.setdefault(source.generator_id, []).append((decoy.pk, source.pk, decoy.prompt_id))
    if not unseen:
        return None
    decoy_pk, source_pk, prompt_id = rng.choice(unseen[rng.choice(sorted(unseen))])
    return _create(
        campaign=campaign,
        participant=participant,
        first=source_pk,
        second=decoy_pk,
        prompt_id=prompt_id,
        now=now,
        rng=rng,
        is_gold=True,
    )


def _repeat_comparison(
    campaign: Campaign, participant: Participant, history: _History, now: datetime
) -> Comparison | None:
    """One of the participant's earlier voted comparisons again, sides swapped; None if none is due."""
    repeated = {c.repeat_of_id for c in history.rows if c.repeat_of_id is not None}
    voted = [c for c in history.rows if c.status == Comparison.Status.VOTED]
    candidates = [c for c in voted[: max(0, len(voted) - REPEAT_MIN_GAP)] if not c.is_gold and c.repeat_of_id is None]
    original = next((c for c in candidates if c.pk not in repeated), None)
    if original is None:
        return None
    return Comparison.objects.create(
        campaign=campaign,
        participant=participant,
        prompt_id=original.prompt_id,
        left_population_id=original.right_population_id,
        right_population_id=original.left_population_id,
        lease_until=now + LEASE,
        repeat_of_id=original.pk,
    )


# Restates two rules in its WHERE clause: ComparisonQuerySet.preferences (not gold, not a repeat) and,
# for the populations, annotation.selectors.campaign_populations(servable=True) (PopulationQuerySet
# ready_for and servable: ready, of the campaign's size, its active generators and prompts, under the
# votes wanted), narrowed to sets already in use (uses > 0). Simulated
# participants' comparisons are in it on purpose: they use populations up like anyone's (the pair's
# votes wanted), though their votes never count (VoteQuerySet.counted).
# The ORM spent about 8 ms of CPU building this statement (its Least/Greatest/filtered-Count
# expressions compare themselves by signature binding), ten times what the database takes to
# run it, on every issue; written out, it costs nothing to build.
# Its cost is bounded by the sets in use, not by the campaign's history: the sets with 0 < uses < wanted
# come from a range of population_in_use_idx (`wanted` is written into the text, so even a plan made
# for any parameters knows the range is narrow), then each set's comparisons from comparison_left_campaign_idx.
# On PostgreSQL the second step is a LATERAL subquery behind OFFSET 0, which fixes that order: planned
# freely, with the statistics of a campaign's first minutes (no comparisons yet) cached in a prepared
# statement, it walked every comparison of the campaign and joined each to every set in use, 180 ms a
# call at 3,000 comparisons (bench/vote_cost.py --statements; 2.5 ms at 2,000 before these indexes).
_UNFINISHED_PAIRS = """
SELECT
    CASE WHEN c.left_population_id < c.right_population_id THEN c.left_population_id ELSE c.right_population_id END,
    CASE WHEN c.left_population_id < c.right_population_id THEN c.right_population_id ELSE c.left_population_id END,
    c.prompt_id
FROM (
    SELECT p.id FROM {population} p
    WHERE p.status = %(ready)s AND p.size = %(size)s AND p.uses > 0 AND p.uses < {wanted:d}
        AND p.generator_id IN (
            SELECT cg.generator_id FROM {campaign_generators} cg JOIN {generator} g ON g.id = cg.generator_id
            WHERE cg.campaign_id = %(campaign)s AND g.is_active = %(true)s
        )
        AND p.prompt_id IN (SELECT cp.prompt_id FROM {campaign_prompts} cp WHERE cp.campaign_id = %(campaign)s)
) p
{set_comparisons}
WHERE c.campaign_id = %(campaign)s AND c.is_gold = %(false)s AND c.repeat_of_id IS NULL
    AND (c.status = %(voted)s OR (c.status = %(issued)s AND c.lease_until > %(now)s))
GROUP BY 1, 2, 3
HAVING COUNT(*) < %(wanted)s AND SUM(CASE WHEN c.status = %(voted)s THEN 1 ELSE 0 END) > 0
ORDER BY MIN(c.issued_at)
LIMIT %(limit)s
"""
# Each set's comparisons (as their left side), per vendor: see above.
_SET_COMPARISONS = {
    "postgresql": "CROSS JOIN LATERAL (SELECT * FROM {comparison} x WHERE x.left_population_id = p.id OFFSET 0) c",
    "sqlite": "JOIN {comparison} c ON c.left_population_id = p.id",
}


def tables() -> dict[str, str]:
    """The table names the arena's hand-written statements (here and in arena.voting) are formatted with."""
    return {
        "comparison": Comparison._meta.db_table,
        "vote": Vote._meta.db_table,
        "population": Population._meta.db_table,
        "generator": Generator._meta.db_table,
        "prompt": Prompt._meta.db_table,
        "campaign_generators": Campaign.generators.through._meta.db_table,
        "campaign_prompts": Campaign.prompts.through._meta.db_table,
        "pair_tally": PairTally._meta.db_table,
    }


def unfinished_pairs_statement(campaign: Campaign, *, limit: int, now: datetime) -> tuple[str, dict[str, Any]]:
    """_UNFINISHED_PAIRS for this database and campaign, and its parameters: the first `limit` pairs."""
    names = tables()
    joined = _SET_COMPARISONS[connection.vendor].format(**names)
    sql = _UNFINISHED_PAIRS.format(set_comparisons=joined, wanted=int(campaign.votes_per_pair), **names)
    params: dict[str, Any] = {
        "campaign": campaign.pk,
        "false": False,
        "true": True,
        "voted": Comparison.Status.VOTED.value,
        "issued": Comparison.Status.ISSUED.value,
        "ready": Population.Status.READY.value,
        "now": connection.ops.adapt_datetimefield_value(now),
        "size": campaign.population_size,
        "wanted": campaign.votes_per_pair,
        "limit": limit,
    }
    return sql, params


def _unfinished_pair(campaign: Campaign, seen: set[frozenset[int]], now: datetime) -> tuple[int, int, int] | None:
    """A pair of populations that has some votes but fewer than wanted (counting live leases), oldest first.

    Only populations that are partly used can be in such a pair (each comparison adds one use to
    both sides), so the scan is bounded by the work in progress, not by the campaign's history.
    Gold checks and repeats do not count towards a pair's votes.
    """
    # Rows are distinct pairs, so the first len(seen) + 1 hold an unseen one if any row does.
    sql, params = unfinished_pairs_statement(campaign, limit=len(seen) + 1, now=now)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for low, high, prompt_id in rows:
        if frozenset((low, high)) not in seen:
            return low, high, prompt_id
    return None


# Restates annotation.selectors.campaign_populations(servable=True) (PopulationQuerySet ready_for and
# servable: ready, of the campaign's size, for its prompts, by its active generators, under the votes
# wanted) for the two generators of one pair, and keeps per prompt and generator only the first `limit`
# sets in the order pairs are taken from (fewest uses, oldest, lowest id). That drops no pair the full
# lists would choose: a participant who has seen k pairs has ruled out at most k sets of either side.
# The pair's two generators are the campaign's active ones and `prompts` its prompts, read by
# _active_generator_ids and _campaign_prompt_ids in this same transaction, so neither rule is checked again
# row by row: the sets are reached through the queue index (prompt, generator, status) alone. Checking each
# ready set's prompt and generator against the campaign's link tables instead cost 9-14 ms of PostgreSQL's
# CPU a call before the tables had statistics (1,200 ready sets of the two generators in load_faults.py).
# The ORM's version was two statements (prompts grouped by their count of generators, then one scan per
# prompt tried) whose building cost several ms of CPU per new pair. Portable SQL: PostgreSQL and SQLite.
_PAIR_CANDIDATES = """
SELECT prompt_id, generator_id, id FROM (
    SELECT p.prompt_id, p.generator_id, p.id,
        ROW_NUMBER() OVER (PARTITION BY p.prompt_id, p.generator_id ORDER BY p.uses, p.ready_at, p.id) AS place
    FROM {population} p
    WHERE p.prompt_id IN ({prompts}) AND p.generator_id IN (%s, %s) AND p.status = %s
        AND p.size = %s AND p.uses < %s
) ranked
WHERE place <= %s
ORDER BY prompt_id, generator_id, place
"""
# The campaign's prompts (campaign.prompts), for the statement above.
_CAMPAIGN_PROMPTS = "SELECT cp.prompt_id FROM {campaign_prompts} cp WHERE cp.campaign_id = %s ORDER BY cp.prompt_id"


def _campaign_prompt_ids(campaign: Campaign) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(_CAMPAIGN_PROMPTS.format(**tables()), [campaign.pk])
        return [pk for (pk,) in cursor.fetchall()]


# Prompts tried one at a time (a single prompt's sets, through the queue index) before all the rest at once.
SINGLE_PROMPT_TRIES = 2


def _new_pair(
    campaign: Campaign, pair: Pair, prompts: list[int], seen: set[frozenset[int]], rng: random.Random
) -> tuple[int, int, int] | None:
    """Two ready populations, one of each generator of `pair`, for a random prompt of `prompts` both can serve and
    unseen.

    The prompts are put in a random order, and the first that can serve an unseen pair is taken: uniform over the
    prompts that can. The first few are read one prompt at a time, which nearly always ends the search after
    reading one prompt's sets; reading every prompt's sets of the two generators at once cost PostgreSQL 5-37 ms
    of CPU a call as a campaign's queues and its votes grew (bench/vote_cost.py).
    """
    # Sorted first: a seeded rng must draw the same order from the same rows (simulate_votes --seed).
    order = sorted(prompts)
    rng.shuffle(order)
    chunks = [order[i : i + 1] for i in range(min(SINGLE_PROMPT_TRIES, len(order)))]
    chunks.append(order[SINGLE_PROMPT_TRIES:])
    for chunk in chunks:
        if chunk and (found := _first_unseen_pair(campaign, pair, chunk, seen)) is not None:
            return found
    return None


def _first_unseen_pair(
    campaign: Campaign, pair: Pair, prompts: list[int], seen: set[frozenset[int]]
) -> tuple[int, int, int] | None:
    """The first prompt of `prompts`, in their order, with an unseen pair of the two generators' sets, and that pair."""
    a, b = pair
    params: list[int | str] = [
        *prompts,
        a,
        b,
        Population.Status.READY.value,
        campaign.population_size,
        campaign.votes_per_pair,
        len(seen) + 1,
    ]
    by_prompt: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    with connection.cursor() as cursor:
        cursor.execute(_PAIR_CANDIDATES.format(prompts=", ".join(["%s"] * len(prompts)), **tables()), params)
        for prompt_id, generator_id, pk in cursor.fetchall():
            by_prompt[prompt_id][generator_id].append(pk)
    for prompt_id in prompts:
        by_generator = by_prompt.get(prompt_id, {})
        for first in by_generator.get(a, ()):
            unseen = [s for s in by_generator.get(b, ()) if frozenset((first, s)) not in seen]
            if unseen:
                return first, unseen[0], prompt_id
    return None


@dataclass(frozen=True)
class _Rated:
    rating: float
    ci_low: float
    ci_high: float
    votes: float


def _active_weights(campaign: Campaign) -> dict[Pair, float]:
    """Where the next vote teaches the ranking most, from the (cached) leaderboard of the first criterion."""
    from arena.selectors import default_criterion, get_leaderboard

    board = get_leaderboard(campaign=campaign, criterion=default_criterion(campaign))
    ids = dict(campaign.generators.values_list("name", "pk"))
    inf = float("inf")
    standings = {
        ids[row["generator"]]: _Rated(
            rating=row["rating"],
            ci_low=-inf if row["ci_low"] is None else row["ci_low"],
            ci_high=inf if row["ci_high"] is None else row["ci_high"],
            votes=row["votes"],
        )
        for row in board["rows"]
        if row["generator"] in ids
    }
    return active_weights(standings)


# The running tallies of one criterion over all prompts (category ''), a pair's outcomes summed: its votes.
_PAIR_VOTES = """
SELECT t.generator_a_id, t.generator_b_id, t.a_wins + t.b_wins + t.ties + t.both_bad
FROM {pair_tally} t WHERE t.campaign_id = %s AND t.criterion_id = %s AND t.category = ''
"""
# Generators the campaign draws from: linked to it and active (is_active), as campaign_populations has it.
_ACTIVE_GENERATORS = """
SELECT g.id FROM {campaign_generators} cg JOIN {generator} g ON g.id = cg.generator_id
WHERE cg.campaign_id = %s AND g.is_active = true ORDER BY g.name
"""


def _pair_votes(campaign: Campaign) -> dict[Pair, int]:
    """Votes so far per pair of generators, from the running tallies of the first criterion (all prompts)."""
    # The criteria come with the campaign (annotation.selectors.get_live_campaign prefetches them).
    criteria = list(campaign.criteria.all())
    if not criteria:
        return {}
    first = min(criteria, key=lambda c: (c.position, c.pk))
    with connection.cursor() as cursor:
        cursor.execute(_PAIR_VOTES.format(**tables()), [campaign.pk, first.pk])
        return {normalise(a, b): votes for a, b, votes in cursor.fetchall()}


def _active_generator_ids(campaign: Campaign) -> list[int]:
    """The campaign's active generators (campaign.generators.filter(is_active=True)), by name as the ORM orders them."""
    with connection.cursor() as cursor:
        cursor.execute(_ACTIVE_GENERATORS.format(**tables()), [campaign.pk])
        return [pk for (pk,) in cursor.fetchall()]


@transaction.atomic
def issue_comparison(
    *,
    campaign: Campaign,
    participant: Participant,
    exclude_tokens: tuple[str, ...] = (),
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> Comparison:
    """The next comparison for this participant, bound to them under a fresh token and lease.

    Order of preference: one they already hold (a reload shows the same pair), then a pair of
    populations that others started voting on (so pairs reach the votes wanted), then a new
    pair chosen by the campaign's sampling policy with one ready population of each
    generator, sides drawn at random. Never a pair of populations they have seen before.
    """
    now = now or timezone.now()
    rng = rng or random.SystemRandom()
    if not campaign.is_open:
        raise Conflict(f"campaign {campaign.slug!r} is {campaign.status}, not open", code="campaign_closed")
    history = _history(campaign, participant, now)
    if campaign.participant_quota is not None and history.voted >= campaign.participant_quota:
        raise Conflict(
            f"you have reached this campaign's quota of {campaign.participant_quota} comparisons",
            code="quota_reached",
        )
    held = [c for c in history.outstanding if c.token not in exclude_tokens]
    if held:  # shown again (a reload): the whole row, which the history leaves out
        comparison = Comparison.objects.get(pk=held[0].pk)
        comparison.campaign = campaign
        return comparison
    if len(history.outstanding) >= MAX_OUTSTANDING:
        raise Conflict("you already hold the comparisons you can vote on; vote on them first", code="too_many_open")

    roll = rng.random()
    # Gold checks and repeats score a participant; a simulated one is known by construction (its judge
    # and noise) and never quality-scored, so it is given preference comparisons only.
    if participant.kind == Participant.Kind.SIMULATED:
        roll = 1.0
    if roll < campaign.gold_rate:
        gold = _gold_comparison(campaign, participant, history, now, rng)
        if gold is not None:
            return gold
    elif roll < campaign.gold_rate + campaign.repeat_rate:
        repeat = _repeat_comparison(campaign, participant, history, now)
        if repeat is not None:
            return repeat

    found = _unfinished_pair(campaign, history.seen, now)
    if found is None:
        generator_ids = _active_generator_ids(campaign)
        weights = _active_weights(campaign) if campaign.sampling_policy == Campaign.SamplingPolicy.ACTIVE else None
        order = choose_pairs(
            generator_ids, _pair_votes(campaign), policy=campaign.sampling_policy, rng=rng, weights=weights
        )
        prompts = _campaign_prompt_ids(campaign)
        found = next((f for pair in order if (f := _new_pair(campaign, pair, prompts, history.seen, rng))), None)
    if found is None:
        raise NothingReady(
            "no comparison is ready yet: the generation service is still making image sets for this campaign"
        )
    first, second, prompt_id = found
    return _create(
        campaign=campaign, participant=participant, first=first, second=second, prompt_id=prompt_id, now=now, rng=rng
    )


@transaction.atomic
def extend_lease(*, token: str, participant: Participant, now: datetime | None = None) -> Comparison:
    """Keep a comparison that is still on screen from expiring."""
    now = now or timezone.now()
    comparison = held_comparison(token=token, participant=participant, now=now)
    comparison.lease_until = now + LEASE
    comparison.save(update_fields=["lease_until"])
    return comparison


def held_comparison(*, token: str, participant: Participant, now: datetime) -> Comparison:
    """The participant's comparison under `token`, locked until the transaction ends."""
    try:
        comparison = Comparison.objects.select_for_update().get(token=token)
    except Comparison.DoesNotExist:
        raise NotFound("no comparison with this token") from None
    check_held(comparison, holder=participant.pk, now=now)
    return comparison


def check_held(comparison: Comparison, *, holder: int, now: datetime) -> None:
    """Raise unless participant `holder` may still act on `comparison`: issued to them, not voted, lease running."""
    if comparison.participant_id != holder:
        raise Forbidden("this comparison was issued to another participant")
    if comparison.status == Comparison.Status.VOTED:
        raise Conflict("this comparison has already been voted on", code="already_voted")
    if comparison.status == Comparison.Status.EXPIRED or comparison.lease_until <= now:
        raise Gone("this comparison expired; ask for the next one", code="expired")
