"""Every hand-written statement of the issue and vote paths answers as its ORM reference does (arena/statements.py).

States are generated (hypothesis): deactivated and unlinked generators, prompts removed from the campaign, sets
of the wrong size or not ready, used-up and reserved sets, voted, live, expired and lapsed comparisons, gold checks
and repeats, simulated participants, flags, other sessions of the same client. A second test drives the services
themselves (issue, vote, let leases lapse) and checks the use counts they keep against a recount of the comparisons.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation.models import CampaignParticipation, Criterion, Participant
from arena import statements
from arena.issuing import LEASE, issue_comparison
from arena.models import Comparison, PairTally
from arena.voting import VoteInput, cast_votes
from core.errors import ApplicationError
from generation.models import Image, Population
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db(transaction=False)

SIZE = 2
GENERATORS = 3
PROMPTS = 2

# Most generators active and linked, most prompts linked, so that most states hold pairs in progress.
mostly = st.sampled_from([True] * 5 + [False])
population = st.fixed_dictionaries(
    {
        "generator": st.integers(0, GENERATORS - 1),
        "prompt": st.integers(0, PROMPTS - 1),
        "status": st.sampled_from(["ready"] * 8 + ["pending", "failed"]),
        "size": st.sampled_from([SIZE] * 8 + [SIZE + 1]),
        "uses": st.integers(0, 2),
        "reserved": st.integers(0, 1),
        "age": st.integers(0, 5),
    }
)
comparison = st.fixed_dictionaries(
    {
        "pair": st.tuples(st.integers(0, 30), st.integers(0, 30)),
        "participant": st.integers(0, 3),
        "status": st.sampled_from(["voted", "voted", "voted", "issued", "issued", "expired"]),
        "lease_s": st.sampled_from([-60, -1, 0, 1, 600]),
        "age": st.integers(0, 9),
        "gold": st.sampled_from([False] * 5 + [True]),
        "repeat": st.sampled_from([False] * 5 + [True]),
        "client": st.sampled_from([None, "client-a", "client-b"]),
    }
)
state = st.fixed_dictionaries(
    {
        "active": st.lists(mostly, min_size=GENERATORS, max_size=GENERATORS),
        "linked_generators": st.lists(mostly, min_size=GENERATORS, max_size=GENERATORS),
        "linked_prompts": st.lists(mostly, min_size=PROMPTS, max_size=PROMPTS),
        "votes_per_pair": st.integers(2, 6),
        "populations": st.lists(population, min_size=3, max_size=10),
        "comparisons": st.lists(comparison, min_size=1, max_size=12),
        "flagged": st.lists(st.booleans(), min_size=4, max_size=4),
        "tallies": st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 5)), max_size=4),
        "client": st.sampled_from([None, "client-a", "client-b"]),
        "limit": st.integers(1, 6),
    }
)


def build(data: dict[str, Any]) -> dict[str, Any]:
    now = timezone.now()
    campaign = CampaignFactory(population_size=SIZE, votes_per_pair=data["votes_per_pair"], status="open")
    criterion = Criterion.objects.create(campaign=campaign, key="diversity", question="?", position=0)
    generators = [GeneratorFactory(is_active=active) for active in data["active"]]
    prompts = [PromptFactory() for _ in range(PROMPTS)]
    campaign.generators.set([g for g, linked in zip(generators, data["linked_generators"], strict=True) if linked])
    campaign.prompts.set([p for p, linked in zip(prompts, data["linked_prompts"], strict=True) if linked])
    sets = [
        Population.objects.create(
            generator=generators[p["generator"]],
            prompt=prompts[p["prompt"]],
            size=p["size"],
            status=p["status"],
            ready_at=now - timedelta(minutes=p["age"]) if p["status"] == "ready" else None,
            uses=p["uses"],
            reserved=p["reserved"],
        )
        for p in data["populations"]
    ]
    for i, population in enumerate(sets):  # 0 to 2 images each, indexes in an order unlike their ids
        for index in range(i % 3)[::-1]:
            Image.objects.create(
                population=population,
                index=index,
                file=f"images/x/{i}-{index}.png",
                seed=index,
                generation_prompt="p",
                width=2,
                height=2,
                sha256="0" * 64,
            )
    kinds = [Participant.Kind.ANONYMOUS, Participant.Kind.ANONYMOUS, Participant.Kind.USER, Participant.Kind.SIMULATED]
    people = [
        Participant.objects.create(kind=kind, external_id_hash=f"sim-{i}" if kind == "simulated" else "")
        for i, kind in enumerate(kinds)
    ]
    for person, flagged in zip(people, data["flagged"], strict=True):
        if flagged:
            CampaignParticipation.objects.create(campaign=campaign, participant=person, is_flagged=True)
    made: list[Comparison] = []
    # The database refuses a comparison of two sets of different prompts, sizes, or of one generator.
    valid = [
        (a, b)
        for a in sets
        for b in sets
        if a.prompt_id == b.prompt_id and a.size == b.size and a.generator_id != b.generator_id
    ]
    for c in data["comparisons"] if valid else ():
        a, b = valid[(c["pair"][0] * 31 + c["pair"][1]) % len(valid)]
        issued = now - timedelta(minutes=c["age"])
        row = Comparison.objects.create(
            campaign=campaign,
            participant=people[c["participant"]],
            prompt_id=a.prompt_id,
            left_population=a,
            right_population=b,
            status=c["status"],
            lease_until=now + timedelta(days=1),
            voted_at=issued if c["status"] == "voted" else None,
            is_gold=c["gold"],
            repeat_of=made[-1] if c["repeat"] and made else None,
            client_hash=c["client"],
        )
        # issued_at is set on insert (auto_now_add): put the generated times in afterwards.
        lease = max(issued, now + timedelta(seconds=c["lease_s"]))
        Comparison.objects.filter(pk=row.pk).update(issued_at=issued, lease_until=lease)
        row.refresh_from_db()
        made.append(row)
    # A voted preference comparison spent a use of both its sets and an issued one holds a reservation (the
    # services keep it so; the second test below checks they do), on top of the generated counts.
    for row in made:
        if not row.is_gold and row.repeat_of_id is None and row.status in ("voted", "issued"):
            counter = "uses" if row.status == "voted" else "reserved"
            Population.objects.filter(pk__in=[row.left_population_id, row.right_population_id]).update(
                **{counter: F(counter) + 1}
            )
    for first, second, votes in data["tallies"]:
        low, high = sorted((generators[first].pk, generators[second].pk))
        if low != high:
            PairTally.objects.update_or_create(
                campaign=campaign,
                criterion=criterion,
                category="",
                generator_a_id=low,
                generator_b_id=high,
                defaults={"a_wins": votes, "ties": 1},
            )
    return {"campaign": campaign, "criterion": criterion, "people": people, "made": made, "now": now, "sets": sets}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=state)
def test_every_statement_answers_as_its_orm_reference(data: dict[str, Any]) -> None:
    with transaction.atomic():
        built = build(data)
        campaign, now = built["campaign"], built["now"]
        # The pairs in progress: both sets servable, and the first `limit` in the same order.
        full = statements.unfinished_pairs_reference(campaign, now=now)
        assert statements.fetch_unfinished_pairs(campaign, limit=100, now=now) == full
        assert statements.fetch_unfinished_pairs(campaign, limit=data["limit"], now=now) == full[: data["limit"]]
        assert statements.fetch_campaign_prompt_ids(campaign.pk) == statements.campaign_prompt_ids_reference(campaign)
        assert statements.fetch_active_generator_ids(campaign.pk) == statements.active_generator_ids_reference(campaign)
        prompts = statements.campaign_prompt_ids_reference(campaign)
        active = statements.active_generator_ids_reference(campaign)
        for i, a in enumerate(active):
            for b in active[i + 1 :]:
                if prompts:
                    got = statements.fetch_pair_candidates(campaign, (a, b), prompts, limit=data["limit"])
                    want = statements.pair_candidates_reference(campaign, (a, b), prompts, limit=data["limit"])
                    assert got == want
        criterion = built["criterion"].pk
        assert statements.fetch_pair_votes(campaign.pk, criterion) == statements.pair_votes_reference(
            campaign.pk, criterion
        )
        for person in built["people"]:
            kwargs = {"campaign_id": campaign.pk, "participant_id": person.pk, "client": data["client"], "now": now}
            assert statements.fetch_history(**kwargs) == statements.history_reference(**kwargs)
            own, _ = statements.fetch_history(**kwargs)
            answered = Comparison.objects.voted_by(campaign=campaign, participant=person)
            assert statements.count_voted(own) == answered.count()
        for made in built["made"]:
            got_held, want_held = statements.fetch_held(made.token), statements.held_reference(made.token)
            assert got_held is not None
            assert want_held is not None
            assert got_held.comparison.pk == want_held.comparison.pk
            assert got_held.comparison.lease_until == want_held.comparison.lease_until
            assert (got_held.category, got_held.campaign_status, got_held.voted_before) == (
                want_held.category,
                want_held.campaign_status,
                want_held.voted_before,
            )
            assert (got_held.left_generator, got_held.right_generator) == (
                want_held.left_generator,
                want_held.right_generator,
            )
            assert (got_held.flagged, got_held.platform_status) == (want_held.flagged, want_held.platform_status)
            shown = (made.prompt_id, made.left_population_id, made.right_population_id)
            assert statements.fetch_caption_and_images(*shown) == statements.caption_and_images_reference(*shown)
        # Expiring: exactly the lapsed, unvoted comparisons, once.
        lapsed = statements.expire_leases_reference(campaign_id=campaign.pk, now=now)
        before = {s.pk: (s.uses, s.reserved) for s in Population.objects.all()}
        assert statements.expire_leases(campaign_id=campaign.pk, now=now) == len(lapsed)
        assert sorted(Comparison.objects.filter(pk__in=lapsed).values_list("status", flat=True)) == ["expired"] * len(
            lapsed
        )
        assert statements.expire_leases(campaign_id=campaign.pk, now=now) == 0
        given_back: dict[int, int] = {}
        for c in Comparison.objects.filter(pk__in=lapsed):
            if statements.reserves(is_gold=c.is_gold, repeat_of_id=c.repeat_of_id):
                for pk in (c.left_population_id, c.right_population_id):
                    given_back[pk] = given_back.get(pk, 0) + 1
        for s in Population.objects.all():
            uses, reserved = before[s.pk]
            assert (s.uses, s.reserved) == (uses, reserved - given_back.get(s.pk, 0))
        transaction.set_rollback(True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(st.tuples(st.sampled_from(["issue", "vote", "wait"]), st.integers(0, 3)), min_size=1, max_size=25),
    seed=st.integers(0, 1000),
)
def test_the_services_keep_each_set_s_use_counts_as_its_comparisons_say(steps: list[Any], seed: int) -> None:
    # Given a campaign of 3 generators with 2 sets each for one prompt, 4 participants and 2 clients,
    with transaction.atomic():
        campaign = CampaignFactory(population_size=SIZE, votes_per_pair=2, status="open", gold_rate=0.0)
        Criterion.objects.create(campaign=campaign, key="diversity", question="?", position=0)
        prompt = PromptFactory(category="work")
        generators = [GeneratorFactory() for _ in range(3)]
        campaign.generators.set(generators)
        campaign.prompts.set([prompt])
        now = timezone.now()
        for g in generators:
            for _ in range(2):
                Population.objects.create(generator=g, prompt=prompt, size=SIZE, status="ready", ready_at=now)
        people = [Participant.objects.create() for _ in range(4)]
        CampaignParticipation.objects.create(campaign=campaign, participant=people[3], is_flagged=True)
        rng = random.Random(seed)
        # when they ask, vote and let leases lapse in any order,
        for action, who in steps:
            person = people[who]
            if action == "wait":
                now += LEASE / 2
                continue
            held = Comparison.objects.filter(participant=person, status="issued", lease_until__gt=now).first()
            try:
                if action == "issue" or held is None:
                    issue_comparison(campaign=campaign, participant=person, client=f"c{who % 2}", now=now, rng=rng)
                else:
                    cast_votes(
                        token=held.token,
                        participant=person,
                        votes=[VoteInput("diversity", rng.choice(["left", "right", "tie", "both_bad"]))],
                        dwell_ms=1000,
                        now=now + timedelta(seconds=1),
                    )
            except ApplicationError:
                pass
            # then every set's uses are its voted preference comparisons and its reservations its live ones,
            for s in Population.objects.all():
                assert (s.uses, s.reserved) == statements.use_counts_reference(s.pk), s.pk
                # and no set is ever shown in more comparisons than the votes wanted,
                assert s.uses + s.reserved <= campaign.votes_per_pair
            # and the running pair tallies are the counted votes' (a flagged participant's left out).
            assert statements.tallies_of(campaign) == statements.tallies_reference(campaign)
        transaction.set_rollback(True)
