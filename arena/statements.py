"""The hand-written SQL of the issue and vote paths, each statement beside the ORM query it must agree with.

Why written out: on the hot path the ORM spent more CPU building these statements (and a model instance
per row) than the database spent running them (BENCHMARKS.md, issue 18). Why here, together: each one
restates a rule that has its one home in the ORM (`PopulationQuerySet.servable`, `ready_for`,
`annotation.selectors.campaign_populations`, `ComparisonQuerySet.preferences`), and a restatement drifts
unless it is checked. So every statement below has a `*_reference` function that answers the same
question through the ORM, and tests/arena/test_statements.py runs both on generated campaign states
(hypothesis) and asserts the same answers. A new statement comes with its reference, or it does not land.

The use counts these statements keep (see `generation.models.Population`): `reserved` counts the
comparisons that show a set under a live lease and are not voted yet; `uses` counts the voted ones. Only
preference comparisons (not gold checks, not side-swapped repeats) count either way. A set can be shown
while `uses + reserved` is under the campaign's votes per pair; an unvoted comparison whose lease runs out
gives its reservation back (`expire_leases`), so asking for comparisons without voting spends nothing.

Portable SQL: PostgreSQL and SQLite (RETURNING needs SQLite 3.35).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q

from annotation.models import Campaign, CampaignParticipation
from annotation.selectors import campaign_populations
from arena.models import Comparison, PairTally, Vote
from arena.sampling import Pair, normalise
from core import choices
from generation.models import Generator, Image, Population, Prompt

ISSUED = Comparison.Status.ISSUED.value
VOTED = Comparison.Status.VOTED.value
EXPIRED = Comparison.Status.EXPIRED.value
READY = Population.Status.READY.value


def tables() -> dict[str, str]:
    """The table names the statements are formatted with, from the models' _meta."""
    return {
        "comparison": Comparison._meta.db_table,
        "vote": Vote._meta.db_table,
        "population": Population._meta.db_table,
        "generator": Generator._meta.db_table,
        "prompt": Prompt._meta.db_table,
        "campaign": Campaign._meta.db_table,
        "campaign_generators": Campaign.generators.through._meta.db_table,
        "campaign_prompts": Campaign.prompts.through._meta.db_table,
        "pair_tally": PairTally._meta.db_table,
        "participation": CampaignParticipation._meta.db_table,
        "image": Image._meta.db_table,
    }


def _at(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _fetch(sql: str, params: Any) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


# --- a participant's history ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Past:
    """One comparison as the history reads it: columns, not a model instance."""

    pk: int
    token: str
    status: str
    live: bool  # its lease runs past now
    left_population_id: int
    right_population_id: int
    prompt_id: int
    is_gold: bool
    repeat_of_id: int | None


def count_voted(history: list[Past]) -> int:
    """How many of a participant's comparisons in a campaign, as `fetch_history` read them, they answered:
    ComparisonQuerySet.voted_by's count, from the rows already read."""
    return sum(c.status == VOTED for c in history)


# The participant's comparisons in one campaign, oldest first, each with whether its lease still runs; and, for a
# client (a salted hash of address and user agent), the voted comparisons of its other sessions in the campaign:
# the sets revealed to that client. Two branches so that each reads one index (the participant's, the client's).
_HISTORY = """
SELECT c.id, c.token, c.status, CASE WHEN c.lease_until > %(now)s THEN 1 ELSE 0 END,
    c.left_population_id, c.right_population_id, c.prompt_id, c.is_gold, c.repeat_of_id, 1, c.issued_at
FROM {comparison} c
WHERE c.campaign_id = %(campaign)s AND c.participant_id = %(participant)s
{client_branch}
ORDER BY 11, 1
"""
# The client branch reads only the two sets of each comparison (NULL for the rest, nothing to convert): a lab of
# people behind one address with identical browsers is one client, and its branch holds all their votes.
_CLIENT_BRANCH = """UNION ALL
SELECT NULL, NULL, NULL, 0, c.left_population_id, c.right_population_id, NULL, NULL, NULL, 0, NULL
FROM {comparison} c
WHERE c.campaign_id = %(campaign)s AND c.client_hash = %(client)s AND c.status = %(voted)s
    AND c.participant_id <> %(participant)s"""


def fetch_history(
    *, campaign_id: int, participant_id: int, client: str | None, now: datetime
) -> tuple[list[Past], set[int]]:
    """The participant's comparisons in the campaign, oldest first; and the sets a vote revealed to another session
    of their client (none without a client)."""
    names = tables()
    branch = _CLIENT_BRANCH.format(**names) if client else ""
    params = {"now": _at(now), "campaign": campaign_id, "participant": participant_id, "client": client, "voted": VOTED}
    own: list[Past] = []
    revealed: set[int] = set()
    for pk, token, status, live, left, right, prompt_id, gold, repeat_of_id, mine, _ in _fetch(
        _HISTORY.format(client_branch=branch, **names), params
    ):
        if mine:
            own.append(Past(pk, token, status, bool(live), left, right, prompt_id, bool(gold), repeat_of_id))
        else:
            revealed.update((left, right))
    return own, revealed


def history_reference(
    *, campaign_id: int, participant_id: int, client: str | None, now: datetime
) -> tuple[list[Past], set[int]]:
    """What `fetch_history` answers, through the ORM."""
    own = [
        Past(
            c.pk,
            c.token,
            c.status,
            c.lease_until > now,
            c.left_population_id,
            c.right_population_id,
            c.prompt_id,
            c.is_gold,
            c.repeat_of_id,
        )
        for c in Comparison.objects.filter(campaign_id=campaign_id, participant_id=participant_id).order_by(
            "issued_at", "id"
        )
    ]
    theirs = (
        Comparison.objects.filter(campaign_id=campaign_id, client_hash=client, status=VOTED).exclude(
            participant_id=participant_id
        )
        if client
        else Comparison.objects.none()
    )
    revealed = {pk for pair in theirs.values_list("left_population_id", "right_population_id") for pk in pair}
    return own, revealed


# --- use counts: reserve on issue, spend on vote, give back on expiry -----------------------------------------

# Both sets in one statement, locked in id order: an UPDATE of two rows locks them in the order they lie on disk,
# and two participants given the same pair at once could deadlock; on PostgreSQL the rows are therefore locked
# first by a sorted SELECT ... FOR UPDATE. SQLite locks the whole database for a write, so it needs no order.
_BOTH = {
    "postgresql": "id IN (SELECT id FROM {population} WHERE id IN (%s, %s) ORDER BY id FOR UPDATE)",
    "sqlite": "id IN (%s, %s)",
}
_RESERVE = "UPDATE {population} SET reserved = reserved + 1 WHERE {both}"
_SPEND = "UPDATE {population} SET uses = uses + 1, reserved = reserved - 1 WHERE {both}"
_RELEASE = "UPDATE {population} SET reserved = reserved - %s WHERE id = %s"


def reserves(*, is_gold: bool, repeat_of_id: int | None) -> bool:
    """Whether a comparison takes a use of its sets: preference comparisons do (ComparisonQuerySet.preferences)."""
    return not is_gold and repeat_of_id is None


def _both_sets(statement: str, population_ids: tuple[int, int]) -> None:
    names = tables()
    both = _BOTH[connection.vendor].format(**names)
    with connection.cursor() as cursor:
        cursor.execute(statement.format(both=both, **names), sorted(population_ids))


def reserve(population_ids: tuple[int, int]) -> None:
    """Both sets of a new comparison hold one more use until it is voted on or its lease runs out."""
    _both_sets(_RESERVE, population_ids)


def spend(population_ids: tuple[int, int]) -> None:
    """A reserved use becomes a spent one: the comparison was voted on."""
    _both_sets(_SPEND, population_ids)


# A campaign's issued comparisons whose lease ran out, marked expired in one statement that says which they were.
# Compare-and-set: only rows still 'issued' change, so a comparison is given back once, and never after a vote
# (the vote holds the row's lock and checks the lease under it).
_EXPIRE = """
UPDATE {comparison} SET status = %(expired)s
WHERE campaign_id = %(campaign)s AND status = %(issued)s AND lease_until <= %(now)s
RETURNING left_population_id, right_population_id, is_gold, repeat_of_id
"""


def expire_leases(*, campaign_id: int, now: datetime) -> int:
    """Mark the campaign's unvoted comparisons whose lease ran out expired, and give their sets' uses back."""
    params = {"expired": EXPIRED, "issued": ISSUED, "campaign": campaign_id, "now": _at(now)}
    rows = _fetch(_EXPIRE.format(**tables()), params)
    given_back = Counter[int]()
    for left, right, is_gold, repeat_of_id in rows:
        if reserves(is_gold=bool(is_gold), repeat_of_id=repeat_of_id):
            given_back.update((left, right))
    if given_back:
        with connection.cursor() as cursor:
            for pk in sorted(given_back):
                cursor.execute(_RELEASE.format(**tables()), [given_back[pk], pk])
    return len(rows)


def expire_leases_reference(*, campaign_id: int, now: datetime) -> list[int]:
    """The comparisons `expire_leases` marks expired."""
    return list(
        Comparison.objects.filter(campaign_id=campaign_id, status=ISSUED, lease_until__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def use_counts_reference(population_id: int) -> tuple[int, int]:
    """(uses, reserved) of a set as its comparisons say: voted preference ones, and unvoted ones not yet expired.

    A lapsed lease keeps its reservation until `expire_leases` marks it expired (before every issue).
    """
    shown = Comparison.objects.preferences().filter(
        Q(left_population_id=population_id) | Q(right_population_id=population_id)
    )
    return shown.filter(status=VOTED).count(), shown.filter(status=ISSUED).count()


# --- a new comparison ---------------------------------------------------------------------------------------

# The row Comparison.objects.create would insert (no voted_at, no repeat).
_INSERT_COMPARISON = """
INSERT INTO {comparison} (campaign_id, participant_id, prompt_id, left_population_id, right_population_id, token,
    status, issued_at, lease_until, is_gold, client_hash)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""


def insert_comparison(comparison: Comparison) -> None:
    """Insert `comparison` (built, not saved) as Comparison.save would, and set its pk."""
    params = [
        comparison.campaign_id,
        comparison.participant_id,
        comparison.prompt_id,
        comparison.left_population_id,
        comparison.right_population_id,
        comparison.token,
        comparison.status,
        _at(comparison.issued_at),
        _at(comparison.lease_until),
        comparison.is_gold,
        comparison.client_hash,
    ]
    comparison.pk = _fetch(_INSERT_COMPARISON.format(**tables()), params)[0][0]
    comparison._state.adding = False


# --- pairs in progress --------------------------------------------------------------------------------------

# Pairs of sets that have some votes but fewer comparisons than wanted (voted, or under a live lease), oldest
# first; preference comparisons only (ComparisonQuerySet.preferences); both sets servable (campaign_populations
# (servable=True): ready, of the campaign's size, by its active generators, for its prompts, uses + reserved under
# the votes wanted). Simulated participants' comparisons are in it on purpose: they use sets up like anyone's,
# though their votes never count.
# Its cost is bounded by the sets in use, not by the campaign's history, and grows in proportion to them: a set with
# a vote has uses > 0, so the servable sets in use come from a range of population_in_use_idx (`wanted` is written
# into the text, so even a generic plan knows the range is narrow), then each set's comparisons, on either side, by
# index (comparison_left_campaign_idx, the right side's foreign-key index). A comparison of two servable sets is
# found once from each, one whose other set is not servable only once: so a pair is servable exactly when two
# different sets found it (COUNT(DISTINCT p.id) = 2), and each of its comparisons was counted twice. No set is
# checked against the others, which a plan made before the tables had statistics did for every comparison read
# (its work grew with the square of the sets in use). On PostgreSQL the per-set step is a LATERAL subquery behind
# OFFSET 0, which fixes that order (a plan cached from a campaign's first minutes otherwise walked every
# comparison; BENCHMARKS.md, issue 18).
_UNFINISHED_PAIRS = """
SELECT
    CASE WHEN c.left_population_id < c.right_population_id THEN c.left_population_id ELSE c.right_population_id END,
    CASE WHEN c.left_population_id < c.right_population_id THEN c.right_population_id ELSE c.left_population_id END,
    c.prompt_id
FROM {population} p
{set_comparisons}
WHERE p.status = %(ready)s AND p.size = %(size)s AND p.uses > 0 AND p.uses < {wanted:d}
    AND p.uses + p.reserved < {wanted:d}
    AND p.generator_id IN (
        SELECT cg.generator_id FROM {campaign_generators} cg JOIN {generator} g ON g.id = cg.generator_id
        WHERE cg.campaign_id = %(campaign)s AND g.is_active = %(true)s
    )
    AND p.prompt_id IN (SELECT cp.prompt_id FROM {campaign_prompts} cp WHERE cp.campaign_id = %(campaign)s)
    AND c.campaign_id = %(campaign)s AND c.is_gold = %(false)s AND c.repeat_of_id IS NULL
    AND (c.status = %(voted)s OR (c.status = %(issued)s AND c.lease_until > %(now)s))
GROUP BY 1, 2, 3
HAVING COUNT(DISTINCT p.id) = 2 AND COUNT(*) < 2 * %(wanted)s
    AND SUM(CASE WHEN c.status = %(voted)s THEN 1 ELSE 0 END) > 0
ORDER BY MIN(c.issued_at), 1, 2
LIMIT %(limit)s
"""
# Each set's comparisons (as either side), per vendor: see above.
_SET_COMPARISONS = {
    "postgresql": """CROSS JOIN LATERAL (
    SELECT * FROM {comparison} x WHERE x.left_population_id = p.id
    UNION ALL
    SELECT * FROM {comparison} x WHERE x.right_population_id = p.id
    OFFSET 0
) c""",
    "sqlite": "JOIN {comparison} c ON c.left_population_id = p.id OR c.right_population_id = p.id",
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
        "voted": VOTED,
        "issued": ISSUED,
        "ready": READY,
        "now": _at(now),
        "size": campaign.population_size,
        "wanted": campaign.votes_per_pair,
        "limit": limit,
    }
    return sql, params


def fetch_unfinished_pairs(campaign: Campaign, *, limit: int, now: datetime) -> list[tuple[int, int, int]]:
    sql, params = unfinished_pairs_statement(campaign, limit=limit, now=now)
    return [(low, high, prompt_id) for low, high, prompt_id in _fetch(sql, params)]


def unfinished_pairs_reference(campaign: Campaign, *, now: datetime) -> list[tuple[int, int, int]]:
    """All the pairs _UNFINISHED_PAIRS answers, in its order, through the ORM."""
    servable = set(campaign_populations(campaign, servable=True).values_list("pk", flat=True))
    shown = (
        Comparison.objects.filter(campaign=campaign)
        .preferences()
        .filter(Q(status=VOTED) | Q(status=ISSUED, lease_until__gt=now))
    )
    pairs: dict[tuple[int, int, int], list[Any]] = {}
    for c in shown:
        low, high = sorted((c.left_population_id, c.right_population_id))
        if low in servable and high in servable:
            entry = pairs.setdefault((low, high, c.prompt_id), [0, 0, c.issued_at])
            entry[0] += 1
            entry[1] += c.status == VOTED
            entry[2] = min(entry[2], c.issued_at)
    unfinished = [(key, first) for key, (n, voted, first) in pairs.items() if n < campaign.votes_per_pair and voted]
    return [key for key, _ in sorted(unfinished, key=lambda item: (item[1], item[0][0], item[0][1]))]


# --- new pairs ----------------------------------------------------------------------------------------------

# The campaign's prompts (campaign.prompts) and active generators (campaign.generators.filter(is_active=True), by
# name as the ORM orders them), read once per new pair.
_CAMPAIGN_PROMPTS = "SELECT cp.prompt_id FROM {campaign_prompts} cp WHERE cp.campaign_id = %s ORDER BY cp.prompt_id"
_ACTIVE_GENERATORS = """
SELECT g.id FROM {campaign_generators} cg JOIN {generator} g ON g.id = cg.generator_id
WHERE cg.campaign_id = %s AND g.is_active = %s ORDER BY g.name, g.id
"""


def fetch_campaign_prompt_ids(campaign_id: int) -> list[int]:
    return [pk for (pk,) in _fetch(_CAMPAIGN_PROMPTS.format(**tables()), [campaign_id])]


def campaign_prompt_ids_reference(campaign: Campaign) -> list[int]:
    return list(campaign.prompts.order_by("pk").values_list("pk", flat=True))


def fetch_active_generator_ids(campaign_id: int) -> list[int]:
    return [pk for (pk,) in _fetch(_ACTIVE_GENERATORS.format(**tables()), [campaign_id, True])]


def active_generator_ids_reference(campaign: Campaign) -> list[int]:
    return list(campaign.generators.filter(is_active=True).order_by("name", "pk").values_list("pk", flat=True))


# Per prompt and generator of one pair, the servable sets in the order pairs are taken from (fewest uses and
# reservations, oldest, lowest id), only the first `limit` of each: that drops no pair the full lists would give, as
# a participant who has seen k pairs and had r sets revealed has ruled out at most k + r sets of either side. The
# rest of the servable rule (the campaign's active generators and prompts) is met by the caller, which passes
# generators and prompts read by the two statements above in the same transaction; the sets are reached through the
# queue index (prompt, generator, status) alone.
_PAIR_CANDIDATES = """
SELECT prompt_id, generator_id, id FROM (
    SELECT p.prompt_id, p.generator_id, p.id,
        ROW_NUMBER() OVER (
            PARTITION BY p.prompt_id, p.generator_id ORDER BY p.uses + p.reserved, p.ready_at, p.id
        ) AS place
    FROM {population} p
    WHERE p.prompt_id IN ({prompts}) AND p.generator_id IN (%s, %s) AND p.status = %s
        AND p.size = %s AND p.uses + p.reserved < %s
) ranked
WHERE place <= %s
ORDER BY prompt_id, generator_id, place
"""


def fetch_pair_candidates(
    campaign: Campaign, pair: Pair, prompts: list[int], *, limit: int
) -> dict[int, dict[int, list[int]]]:
    """prompt -> generator -> the first `limit` servable sets, for the two generators of `pair` and `prompts`."""
    a, b = pair
    params: list[Any] = [*prompts, a, b, READY, campaign.population_size, campaign.votes_per_pair, limit]
    sql = _PAIR_CANDIDATES.format(prompts=", ".join(["%s"] * len(prompts)), **tables())
    found: dict[int, dict[int, list[int]]] = {}
    for prompt_id, generator_id, pk in _fetch(sql, params):
        found.setdefault(prompt_id, {}).setdefault(generator_id, []).append(pk)
    return found


def pair_candidates_reference(
    campaign: Campaign, pair: Pair, prompts: list[int], *, limit: int
) -> dict[int, dict[int, list[int]]]:
    from django.db.models import F

    sets = (
        campaign_populations(campaign, servable=True)
        .filter(generator_id__in=pair, prompt_id__in=prompts)
        .alias(taken=F("uses") + F("reserved"))
        .order_by("prompt_id", "generator_id", "taken", "ready_at", "pk")
        .values_list("prompt_id", "generator_id", "pk")
    )
    found: dict[int, dict[int, list[int]]] = {}
    for prompt_id, generator_id, pk in sets:
        kept = found.setdefault(prompt_id, {}).setdefault(generator_id, [])
        if len(kept) < limit:
            kept.append(pk)
    return found


# The running tallies of one criterion over all prompts (category ''), a pair's outcomes summed: its votes.
_PAIR_VOTES = """
SELECT t.generator_a_id, t.generator_b_id, t.a_wins + t.b_wins + t.ties + t.both_bad
FROM {pair_tally} t WHERE t.campaign_id = %s AND t.criterion_id = %s AND t.category = ''
"""


def fetch_pair_votes(campaign_id: int, criterion_id: int) -> dict[Pair, int]:
    rows = _fetch(_PAIR_VOTES.format(**tables()), [campaign_id, criterion_id])
    return {normalise(a, b): votes for a, b, votes in rows}


def pair_votes_reference(campaign_id: int, criterion_id: int) -> dict[Pair, int]:
    return {
        normalise(t.generator_a_id, t.generator_b_id): t.total
        for t in PairTally.objects.filter(campaign_id=campaign_id, criterion_id=criterion_id, category="")
    }


# --- the vote -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldRow:
    """The comparison under a token with the columns of the rows around it that a vote needs."""

    comparison: Comparison
    category: str
    campaign_status: str
    left_generator: tuple[int, str, str, bool]  # id, name, display name, offline stand-in
    right_generator: tuple[int, str, str, bool]
    voted_before: int  # the holder's comparisons in the campaign voted before this one
    # The holder's standing in the campaign (their CampaignParticipation row; False, "" and False without one).
    flagged: bool
    platform_status: str
    withdrawn: bool = False


# The comparison under a token with everything a vote needs, in one statement: its row, locked until the
# transaction ends (on PostgreSQL FOR UPDATE OF the comparison row alone; SQLite's IMMEDIATE transactions already
# serialise writers), its campaign's status (read now, not from a process's copy: a closed campaign takes no vote),
# both sides' generators, the prompt's category, and the holder's comparisons in the campaign with status 'voted'
# (ComparisonQuerySet.voted_by), and the holder's standing in the campaign (its flag and the platform's
# verdict: the left join finds no CampaignParticipation row for most). Inner joins on foreign keys that are never
# null: one row, or none.
_HELD = """
SELECT c.id, c.campaign_id, c.participant_id, c.status, c.issued_at, c.lease_until, c.is_gold, c.repeat_of_id,
    c.left_population_id, c.right_population_id, c.prompt_id, pr.category, k.status,
    lp.generator_id, lg.name, lg.display_name, lg.is_offline_standin,
    rp.generator_id, rg.name, rg.display_name, rg.is_offline_standin,
    (SELECT COUNT(*) FROM {comparison} v
     WHERE v.campaign_id = c.campaign_id AND v.participant_id = c.participant_id AND v.status = %(voted)s),
    cp.is_flagged, cp.platform_status, cp.withdrawn_at
FROM {comparison} c
JOIN {campaign} k ON k.id = c.campaign_id
LEFT JOIN {participation} cp ON cp.campaign_id = c.campaign_id AND cp.participant_id = c.participant_id
JOIN {prompt} pr ON pr.id = c.prompt_id
JOIN {population} lp ON lp.id = c.left_population_id JOIN {generator} lg ON lg.id = lp.generator_id
JOIN {population} rp ON rp.id = c.right_population_id JOIN {generator} rg ON rg.id = rp.generator_id
WHERE c.token = %(token)s
{lock}"""


def _aware(value: datetime) -> datetime:
    """A datetime column as the ORM gives it: SQLite hands a hand-written statement a naive one, in UTC."""
    from django.utils import timezone

    return value if timezone.is_aware(value) else timezone.make_aware(value, connection.timezone)


def fetch_held(token: str) -> HeldRow | None:
    lock = "FOR UPDATE OF c" if connection.features.has_select_for_update_of else ""
    rows = _fetch(_HELD.format(lock=lock, **tables()), {"token": token, "voted": VOTED})
    if not rows:
        return None
    (pk, campaign_id, participant_id, status, issued_at, lease_until, is_gold, repeat_of_id, left_id, right_id,
     prompt_id, category, campaign_status, lg, lname, ldisplay, lstandin, rg, rname, rdisplay, rstandin,
     voted_before, flagged, platform_status, withdrawn_at) = rows[0]  # fmt: skip
    comparison = Comparison(
        pk=pk,
        campaign_id=campaign_id,
        participant_id=participant_id,
        prompt_id=prompt_id,
        left_population_id=left_id,
        right_population_id=right_id,
        token=token,
        status=status,
        issued_at=_aware(issued_at),
        lease_until=_aware(lease_until),
        is_gold=bool(is_gold),
        repeat_of_id=repeat_of_id,
    )
    comparison._state.adding = False
    return HeldRow(
        comparison=comparison,
        category=category,
        campaign_status=campaign_status,
        left_generator=(lg, lname, ldisplay, bool(lstandin)),
        right_generator=(rg, rname, rdisplay, bool(rstandin)),
        voted_before=voted_before,
        flagged=bool(flagged),
        platform_status=platform_status or "",
        withdrawn=withdrawn_at is not None,
    )


def held_reference(token: str) -> HeldRow | None:
    c = (
        Comparison.objects.select_related(
            "campaign", "prompt", "left_population__generator", "right_population__generator"
        )
        .filter(token=token)
        .first()
    )
    if c is None:
        return None
    lg, rg = c.left_population.generator, c.right_population.generator
    standing = CampaignParticipation.objects.filter(campaign_id=c.campaign_id, participant_id=c.participant_id).first()
    return HeldRow(
        comparison=c,
        category=c.prompt.category,
        campaign_status=c.campaign.status,
        left_generator=(lg.pk, lg.name, lg.display_name, lg.is_offline_standin),
        right_generator=(rg.pk, rg.name, rg.display_name, rg.is_offline_standin),
        voted_before=Comparison.objects.voted_by(campaign=c.campaign_id, participant=c.participant_id).count(),
        flagged=standing.is_flagged if standing else False,
        platform_status=standing.platform_status if standing else "",
        withdrawn=standing is not None and standing.withdrawn_at is not None,
    )


# The vote's rows (one per criterion) and the comparison marked voted: what Vote.objects.bulk_create and
# Comparison.save(update_fields=...) would write.
_INSERT_VOTES = "INSERT INTO {vote} (comparison_id, criterion_id, choice, dwell_ms, created_at) VALUES {rows}"
_MARK_VOTED = "UPDATE {comparison} SET status = %s, voted_at = %s WHERE id = %s"


def record_votes(comparison: Comparison, rows: list[tuple[int, str]], dwell_ms: int, now: datetime) -> None:
    """Store one Vote per (criterion id, choice) and mark the comparison voted; the caller holds its lock."""
    at = _at(now)
    params: list[Any] = []
    for criterion_id, choice in rows:
        params += [comparison.pk, criterion_id, choice, dwell_ms, at]
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_VOTES.format(rows=values, **tables()), params)
        cursor.execute(_MARK_VOTED.format(**tables()), [VOTED, at, comparison.pk])
    comparison.status = Comparison.Status.VOTED
    comparison.voted_at = now


# --- what a participant is shown ------------------------------------------------------------------------------

# The comparison's caption and its two sets' image indexes, in generation order: every issue reads it. The caption is
# the comparison's prompt's, by its key (joined through the populations instead, PostgreSQL chose to scan every
# population before the table had statistics).
_CAPTION_AND_IMAGES = """
SELECT i.population_id, i."index", pr.caption
FROM {image} i JOIN {prompt} pr ON pr.id = %s
WHERE i.population_id IN (%s, %s)
ORDER BY i."index", i.population_id
"""


def fetch_caption_and_images(prompt_id: int, left_id: int, right_id: int) -> list[tuple[int, int, str]]:
    """(population id, image index, caption) of both sets' images, by index."""
    rows = _fetch(_CAPTION_AND_IMAGES.format(**tables()), [prompt_id, left_id, right_id])
    return [(population_id, index, caption) for population_id, index, caption in rows]


def caption_and_images_reference(prompt_id: int, left_id: int, right_id: int) -> list[tuple[int, int, str]]:
    caption = Prompt.objects.get(pk=prompt_id).caption
    images = Image.objects.filter(population_id__in=(left_id, right_id)).order_by("index", "population_id")
    return [(population_id, index, caption) for population_id, index in images.values_list("population_id", "index")]


# --- the running pair tallies ---------------------------------------------------------------------------------

TALLY_FIELDS = ("a_wins", "b_wins", "ties", "both_bad")
# One statement per vote submission, safe under concurrent votes on the same pair: the first vote of a pair creates
# its rows, later ones add to them (PostgreSQL and SQLite share this syntax).
_UPSERT_TALLIES = """
INSERT INTO {pair_tally}
    (campaign_id, criterion_id, category, generator_a_id, generator_b_id, a_wins, b_wins, ties, both_bad, updated_at)
VALUES {rows}
ON CONFLICT (criterion_id, category, generator_a_id, generator_b_id) DO UPDATE SET
    a_wins = {pair_tally}.a_wins + excluded.a_wins,
    b_wins = {pair_tally}.b_wins + excluded.b_wins,
    ties = {pair_tally}.ties + excluded.ties,
    both_bad = {pair_tally}.both_bad + excluded.both_bad,
    updated_at = excluded.updated_at
"""

TallyKey = tuple[int, str, int, int]  # criterion, category ("" for all prompts), generator a < generator b


def upsert_tallies(rows: list[tuple[int, int, str, int, int, tuple[int, int, int, int], datetime]]) -> None:
    """Add (campaign, criterion, category, a, b, outcome counts, at) rows to the running tallies."""
    params: list[Any] = []
    for campaign_id, criterion_id, category, a, b, counts, at in rows:
        params += [campaign_id, criterion_id, category, a, b, *counts, at]
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_TALLIES.format(rows=values, **tables()), params)


def tallies_reference(campaign: Campaign) -> dict[TallyKey, tuple[int, int, int, int]]:
    """The running tallies as the campaign's counted votes say (VoteQuerySet.counted), counted through the ORM."""
    found: dict[TallyKey, list[int]] = {}
    votes = (
        Vote.objects.counted()
        .filter(comparison__campaign=campaign)
        .values_list(
            "criterion_id",
            "comparison__prompt__category",
            "comparison__left_population__generator_id",
            "comparison__right_population__generator_id",
            "choice",
        )
    )
    for criterion_id, category, left, right, choice in votes:
        a, b = sorted((left, right))
        winner = {choices.LEFT: left, choices.RIGHT: right}.get(choice)
        field = ("a_wins" if winner == a else "b_wins") if winner is not None else choice
        field = "ties" if field == choices.TIE else "both_bad" if field == choices.BOTH_BAD else field
        for where in dict.fromkeys(["", category]):
            counts = found.setdefault((criterion_id, where, a, b), [0, 0, 0, 0])
            counts[TALLY_FIELDS.index(field)] += 1
    return {key: (c[0], c[1], c[2], c[3]) for key, c in found.items()}


def tallies_of(campaign: Campaign) -> dict[TallyKey, tuple[int, int, int, int]]:
    """The running tallies as stored, in `tallies_reference`'s shape (pairs with no votes left out)."""
    return {
        (t.criterion_id, t.category, t.generator_a_id, t.generator_b_id): (t.a_wins, t.b_wins, t.ties, t.both_bad)
        for t in PairTally.objects.filter(campaign=campaign)
        if t.total
    }
