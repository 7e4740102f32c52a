"""Issuing comparisons: which pair a participant sees next (gold checks, repeats, unfinished and new pairs), leases."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.models import Campaign, Participant
from annotation.selectors import campaign_populations, first_criterion, get_live_campaign
from arena import quota
from arena.models import Comparison, new_comparison_token
from arena.sampling import Pair, active_weights, choose_pairs
from arena.statements import (
    Past,
    count_voted,
    expire_leases,
    fetch_active_generator_ids,
    fetch_campaign_prompt_ids,
    fetch_history,
    fetch_pair_candidates,
    fetch_pair_votes,
    fetch_unfinished_pairs,
    insert_comparison,
    reserve,
    reserves,
)
from core.errors import ApplicationError, Conflict, Forbidden, Gone, NotFound
from generation.models import Population
from generation.services import get_or_create_decoy

LEASE = timedelta(minutes=10)
# The comparison on screen plus the one prefetched behind it.
MAX_OUTSTANDING = 2


class NothingReady(ApplicationError):
    """No comparison can be issued now: generation is behind, or this participant has seen everything."""

    code = "nothing_ready"
    status = 409


@dataclass(frozen=True)
class _History:
    """A participant's comparisons in one campaign, and the sets revealed to their client, read in one query."""

    rows: list[Past]
    outstanding: list[Past]
    seen: set[frozenset[int]]
    # Sets not to show in a new comparison: those a vote revealed to this participant or to another session of
    # their client, and those of the comparisons they hold (one vote away from being revealed).
    barred: set[int]
    voted: int


def _history(campaign: Campaign, participant: Participant, client: str | None, now: datetime) -> _History:
    rows, revealed = fetch_history(campaign_id=campaign.pk, participant_id=participant.pk, client=client, now=now)
    outstanding = [c for c in rows if c.status == Comparison.Status.ISSUED and c.live]
    return _History(
        rows=rows,
        outstanding=outstanding,
        seen={frozenset((c.left_population_id, c.right_population_id)) for c in rows},
        barred=revealed
        | {
            pk
            for c in rows
            if c.status == Comparison.Status.VOTED or c in outstanding
            for pk in (c.left_population_id, c.right_population_id)
        },
        voted=count_voted(rows),
    )


def _create(
    *,
    campaign: Campaign,
    participant: Participant,
    first: int,
    second: int,
    prompt_id: int,
    now: datetime,
    rng: random.Random,
    client: str | None,
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
        client_hash=client,
    )
    insert_comparison(comparison)
    if reserves(is_gold=is_gold, repeat_of_id=None):  # its lease holds a use of both sets until a vote or expiry
        reserve((left, right))
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
    campaign: Campaign,
    participant: Participant,
    history: _History,
    now: datetime,
    rng: random.Random,
    client: str | None,
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
        client=client,
        is_gold=True,
    )


def _repeat_comparison(
    campaign: Campaign, participant: Participant, history: _History, now: datetime, client: str | None
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
        client_hash=client,
    )


def _unfinished_pair(campaign: Campaign, history: _History, now: datetime) -> tuple[int, int, int] | None:
    """A pair of populations that has some votes but fewer than wanted (counting live leases), oldest first.

    Only populations that are partly used can be in such a pair (a vote adds one use to both sides), so
    the scan is bounded by the work in progress, not by the campaign's history. Gold checks and repeats
    do not count towards a pair's votes. Never a pair the participant has seen, nor one with a set
    revealed to them or their client.
    """
    seen, barred = history.seen, history.barred
    # Rows are distinct pairs: a seen pair rules out one row, a barred set at most one per comparison it can
    # still be in (fewer than the votes wanted), so the first rows below hold an allowed pair if any does.
    limit = len(seen) + len(barred) * campaign.votes_per_pair + 1
    for low, high, prompt_id in fetch_unfinished_pairs(campaign, limit=limit, now=now):
        if frozenset((low, high)) not in seen and low not in barred and high not in barred:
            return low, high, prompt_id
    return None


# Prompts tried one at a time (a single prompt's sets, through the queue index) before all the rest at once.
SINGLE_PROMPT_TRIES = 2


def _new_pair(
    campaign: Campaign, pair: Pair, prompts: list[int], history: _History, rng: random.Random
) -> tuple[int, int, int] | None:
    """Two servable populations, one of each generator of `pair`, for a random prompt of `prompts` that can serve a
    pair the participant has not seen, with no set revealed to them or their client.

    The prompts are put in a random order, and the first that can serve such a pair is taken: uniform over the
    prompts that can. The first few are read one prompt at a time, which nearly always ends the search after
    reading one prompt's sets (reading every prompt's sets at once cost far more as a campaign grew; BENCHMARKS.md).
    """
    # Sorted first: a seeded rng must draw the same order from the same rows (simulate_votes --seed).
    order = sorted(prompts)
    rng.shuffle(order)
    chunks = [order[i : i + 1] for i in range(min(SINGLE_PROMPT_TRIES, len(order)))]
    chunks.append(order[SINGLE_PROMPT_TRIES:])
    for chunk in chunks:
        if chunk and (found := _first_unseen_pair(campaign, pair, chunk, history)) is not None:
            return found
    return None


def _first_unseen_pair(
    campaign: Campaign, pair: Pair, prompts: list[int], history: _History
) -> tuple[int, int, int] | None:
    """The first prompt of `prompts`, in their order, with an allowed pair of the two generators' sets; that pair."""
    a, b = pair
    seen, barred = history.seen, history.barred
    # Per prompt and generator, each seen pair and each barred set rules out at most one set.
    by_prompt = fetch_pair_candidates(campaign, pair, prompts, limit=len(seen) + len(barred) + 1)
    for prompt_id in prompts:
        by_generator = by_prompt.get(prompt_id, {})
        for first in by_generator.get(a, ()):
            if first in barred:
                continue
            allowed = [s for s in by_generator.get(b, ()) if s not in barred and frozenset((first, s)) not in seen]
            if allowed:
                return first, allowed[0], prompt_id
    return None


@dataclass(frozen=True)
class _Rated:
    rating: float
    ci_low: float
    ci_high: float
    votes: float


def _active_weights(campaign: Campaign) -> dict[Pair, float]:
    """Where the next vote teaches the ranking most, from the (cached) leaderboard of the first criterion.

    Its closed-form (sandwich) intervals: the bootstrap's would refit a thousand times after every vote.
    """
    from arena.selectors import default_criterion, get_leaderboard

    board = get_leaderboard(campaign=campaign, criterion=default_criterion(campaign), intervals="sandwich")
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


def _pair_votes(campaign: Campaign) -> dict[Pair, int]:
    """Votes so far per pair of generators, from the running tallies of the first criterion (all prompts)."""
    first = first_criterion(campaign)  # from the criteria get_live_campaign prefetched: no query
    return {} if first is None else fetch_pair_votes(campaign.pk, first.pk)


def issue_comparison(
    *,
    campaign: Campaign,
    participant: Participant,
    exclude_tokens: tuple[str, ...] = (),
    client: str | None = None,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> Comparison:
    """The next comparison for this participant, bound to them under a fresh token and lease.

    Order of preference: one they already hold (a reload shows the same pair), then a pair of
    populations that others started voting on (so pairs reach the votes wanted), then a new
    pair chosen by the campaign's sampling policy with one servable population of each
    generator, sides drawn at random. Never a pair of populations they have seen before, nor a
    set whose generator was revealed to them or to another session of their `client`
    (arena.clients.client_hash), nor a set of a comparison they hold.
    """
    now = now or timezone.now()
    if not campaign.is_open:
        raise Conflict(f"campaign {campaign.slug!r} is {campaign.status}, not open", code="campaign_closed")
    issue = partial(
        _issue,
        campaign=campaign,
        participant=participant,
        exclude_tokens=exclude_tokens,
        client=client,
        now=now,
        rng=rng or random.SystemRandom(),
    )
    expired = _expire_lapsed(campaign.pk, now)
    try:
        return issue()
    except NothingReady:
        if expired:
            raise
        _expire_lapsed(campaign.pk, now, always=True)  # a set may be waiting only for a lapsed lease to give it back
        return issue()


# Comparisons nobody answered give their sets' uses back before any set is counted as used up: at most once per
# EXPIRY_INTERVAL per campaign in a process (a set comes back at most this late), and always before telling a
# participant that nothing is ready. Keyed by campaign, the issue time of the last run in this process.
EXPIRY_INTERVAL = timedelta(seconds=1)
_last_expiry: dict[int, datetime] = {}


def _expire_lapsed(campaign_id: int, now: datetime, *, always: bool = False) -> bool:
    """Expire the campaign's lapsed leases unless this process did within EXPIRY_INTERVAL; whether it ran.

    In a transaction of its own, so that an issue that finds nothing ready does not undo the release. A clock
    that went back (another caller's `now`) runs it too.
    """
    last = _last_expiry.get(campaign_id)
    if not always and last is not None and timedelta(0) <= now - last < EXPIRY_INTERVAL:
        return False
    with transaction.atomic():
        expire_leases(campaign_id=campaign_id, now=now)
    _last_expiry[campaign_id] = now
    return True


@transaction.atomic
def _issue(
    *,
    campaign: Campaign,
    participant: Participant,
    exclude_tokens: tuple[str, ...],
    client: str | None,
    now: datetime,
    rng: random.Random,
) -> Comparison:
    history = _history(campaign, participant, client, now)
    comparison = _pick(
        campaign=campaign,
        participant=participant,
        history=history,
        exclude_tokens=exclude_tokens,
        client=client,
        now=now,
        rng=rng,
    )
    comparison.holder_votes_cast = history.voted
    return comparison


def _pick(
    *,
    campaign: Campaign,
    participant: Participant,
    history: _History,
    exclude_tokens: tuple[str, ...],
    client: str | None,
    now: datetime,
    rng: random.Random,
) -> Comparison:
    quota.check(campaign, history.voted)
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
        gold = _gold_comparison(campaign, participant, history, now, rng, client)
        if gold is not None:
            return gold
    elif roll < campaign.gold_rate + campaign.repeat_rate:
        repeat = _repeat_comparison(campaign, participant, history, now, client)
        if repeat is not None:
            return repeat

    found = _unfinished_pair(campaign, history, now)
    if found is None:
        generator_ids = fetch_active_generator_ids(campaign.pk)
        weights = _active_weights(campaign) if campaign.sampling_policy == Campaign.SamplingPolicy.ACTIVE else None
        order = choose_pairs(
            generator_ids, _pair_votes(campaign), policy=campaign.sampling_policy, rng=rng, weights=weights
        )
        prompts = fetch_campaign_prompt_ids(campaign.pk)
        found = next((f for pair in order if (f := _new_pair(campaign, pair, prompts, history, rng))), None)
    if found is None:
        raise NothingReady(
            "no comparison is ready yet: the generation service is still making image sets for this campaign"
        )
    first, second, prompt_id = found
    return _create(
        campaign=campaign,
        participant=participant,
        first=first,
        second=second,
        prompt_id=prompt_id,
        now=now,
        rng=rng,
        client=client,
    )


def check_campaign_takes_answers(campaign: Campaign, *, renewing: bool = False) -> None:
    """Raise unless `campaign` still takes votes on (or, `renewing`, lease renewals of) comparisons already held.

    Open: both. Paused: a participant may still answer what is on their screen until its lease runs out (their
    work is not lost), but no lease is renewed, so a pause ends all voting within one lease. Closed (or back to
    draft): nothing, so a campaign's data stop changing the moment it closes.
    """
    status = campaign.status
    if status == Campaign.Status.OPEN or (status == Campaign.Status.PAUSED and not renewing):
        return
    if status == Campaign.Status.PAUSED:
        raise Conflict(f"campaign {campaign.slug!r} is paused: no lease is renewed", code="campaign_paused")
    raise Conflict(f"campaign {campaign.slug!r} is {status}: it takes no more votes", code="campaign_closed")


@transaction.atomic
def extend_lease(*, token: str, participant: Participant, now: datetime | None = None) -> Comparison:
    """Keep a comparison that is still on screen from expiring (an open campaign's only)."""
    now = now or timezone.now()
    comparison = held_comparison(token=token, participant=participant, now=now)
    check_campaign_takes_answers(get_live_campaign(pk=comparison.campaign_id), renewing=True)
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
