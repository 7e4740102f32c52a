"""Leaderboards from the running tallies: the same fit as on the raw votes, per criterion and category."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time

import pytest
from channels.testing import WebsocketCommunicator

from annotation.models import CampaignParticipation, Participant
from arena.issuing import issue_comparison
from arena.ranking import PairCounts, fit_ratings
from arena.selectors import get_leaderboard
from arena.voting import VoteInput, cast_votes
from config.asgi import application

pytestmark = pytest.mark.django_db


def vote_many(campaign, n, seed=5, bias="secret-generator-0"):
    """n comparisons; the `bias` generator wins its diversity votes 80% of the time."""
    rng = random.Random(seed)
    outcomes = []
    for _ in range(n):
        voter = Participant.objects.create()
        comparison = issue_comparison(campaign=campaign, participant=voter, rng=rng)
        left = comparison.left_population.generator.name
        right = comparison.right_population.generator.name
        if bias in (left, right) and rng.random() < 0.8:
            choice = "left" if left == bias else "right"
        else:
            choice = rng.choice(["left", "right", "tie", "both_bad"])
        cast_votes(
            token=comparison.token,
            participant=voter,
            votes=[VoteInput("diversity", choice), VoteInput("quality", "tie")],
            dwell_ms=100,
        )
        outcomes.append((left, right, choice))
    return outcomes


def test_leaderboard_equals_a_fit_on_the_raw_votes_and_ranks_the_favoured_generator_first(arena_campaign):
    campaign = arena_campaign(generators=3, prompts=2, per_queue=6, votes_per_pair=3)
    outcomes = vote_many(campaign, 30)
    board = get_leaderboard(campaign=campaign, criterion="diversity")
    names = sorted(campaign.generators.values_list("name", flat=True))
    first = {"left": 0, "right": 1}
    counts = PairCounts.from_indices(
        names,
        [names.index(left) for left, _, _ in outcomes],
        [names.index(right) for _, right, _ in outcomes],
        [first.get(choice, 2) for _, _, choice in outcomes],
    )
    expected = fit_ratings(counts, bootstrap=0).ratings()
    got = {row["generator"]: row["rating"] for row in board["rows"]}
    assert got == pytest.approx(expected, abs=0.01)
    assert board["votes"] == 30
    assert board["rows"][0]["generator"] == "secret-generator-0"
    assert all(row["ci_low"] <= row["rating"] <= row["ci_high"] for row in board["rows"])
    both_bad = sum(1 for *_, choice in outcomes if choice == "both_bad")
    assert sum(row["both_bad"] for row in board["rows"]) == 2 * both_bad
    assert len(board["pairwise"]["win_rate"]) == 3


def test_category_boards_count_only_their_prompts(arena_campaign):
    campaign = arena_campaign(generators=2, prompts=2, per_queue=4, votes_per_pair=3)
    campaign.prompts.filter(pk=campaign.prompts.order_by("pk").first().pk).update(category="people")
    vote_many(campaign, 10)
    everything = get_leaderboard(campaign=campaign, criterion="quality")["votes"]
    people = get_leaderboard(campaign=campaign, criterion="quality", category="people")["votes"]
    shapes = get_leaderboard(campaign=campaign, criterion="quality", category="shape")["votes"]
    assert everything == 10
    assert people + shapes == 10


def test_the_api_says_which_intervals_it_gives_and_takes_the_closed_form_on_request(client, arena_campaign):
    campaign = arena_campaign(per_queue=4)
    vote_many(campaign, 6)
    url = "/api/v1/campaigns/study/leaderboard?criterion=diversity"
    default = client.get(url).json()
    sandwich = client.get(url + "&intervals=sandwich").json()
    # The default is unchanged: the 1,000-round bootstrap, and the same fields as before.
    assert (default["intervals"], default["bootstrap_rounds"], default["interval_level"]) == ("bootstrap", 1000, 0.95)
    assert (sandwich["intervals"], sandwich["bootstrap_rounds"]) == ("sandwich", 0)
    assert set(sandwich) == set(default)
    # The same point fit: only the intervals differ.
    rating = {row["generator"]: row["rating"] for row in default["rows"]}
    assert {row["generator"]: row["rating"] for row in sandwich["rows"]} == pytest.approx(rating)
    assert all(row["ci_low"] < row["rating"] < row["ci_high"] for row in sandwich["rows"])
    refused = client.get(url + "&intervals=jackknife")
    assert refused.status_code == 400
    assert "intervals must be one of bootstrap, sandwich, not 'jackknife'" in refused.json()["error"]["message"]


def test_a_vote_opens_one_push_window_that_later_votes_share(settings, monkeypatch):
    from types import SimpleNamespace

    from django.core.cache import cache

    from arena.watching import claim_push

    # A clock of the test's own: the window's end is reached by moving it, not by sleeping.
    clock = SimpleNamespace(now=time.time())
    monkeypatch.setattr("arena.watching.time", SimpleNamespace(time=lambda: clock.now))
    settings.LEADERBOARD_PUSH_S = 0.3
    cache.delete_many(["leaderboard-watched:study", "leaderboard-push-due:study"])
    # Nobody watching: no announcement at all.
    assert claim_push("study", 0.3) is None
    cache.set("leaderboard-watched:study", 1)
    # The first vote opens a window and announces its deadline; votes inside it announce nothing,
    first = claim_push("study", 0.3)
    assert first is not None
    assert claim_push("study", 0.3) is None
    # and the first vote after its deadline opens the next one.
    clock.now += 0.2  # inside the window (its end less a 0.05 s margin for clocks)
    assert claim_push("study", 0.3) is None
    clock.now = first + 0.01
    second = claim_push("study", 0.3)
    assert second == pytest.approx(first + 0.31)


def test_leaderboard_api_and_page(client, arena_campaign):
    campaign = arena_campaign()
    vote_many(campaign, 4)
    data = client.get("/api/v1/campaigns/study/leaderboard?criterion=quality").json()
    assert data["criterion"] == "quality"
    assert {"generator", "rating", "ci_low", "ci_high", "rank", "wins", "losses", "ties"} <= set(data["rows"][0])
    unknown = client.get("/api/v1/campaigns/study/leaderboard?criterion=speed")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "unknown criterion 'speed' (this campaign asks: diversity, quality)"
    page = client.get("/c/study/leaderboard/")
    assert page.status_code == 200
    assert "Who beats whom" in page.content.decode()


def test_a_cached_board_is_refitted_when_new_votes_land(arena_campaign):
    campaign = arena_campaign(per_queue=4)
    vote_many(campaign, 2)
    assert get_leaderboard(campaign=campaign, criterion="diversity")["votes"] == 2
    vote_many(campaign, 1, seed=9)
    assert get_leaderboard(campaign=campaign, criterion="diversity")["votes"] == 3


def test_no_votes_gives_an_empty_but_valid_board(arena_campaign):
    campaign = arena_campaign()
    board = get_leaderboard(campaign=campaign, criterion="diversity")
    assert board["votes"] == 0
    assert {row["rating"] for row in board["rows"]} == {1000.0}
    assert {row["ci_low"] for row in board["rows"]} == {None}


async def open_board(slug: str) -> WebsocketCommunicator:
    """A connected leaderboard socket, as the leaderboard page opens it."""
    communicator = WebsocketCommunicator(
        application,
        f"/ws/campaigns/{slug}/leaderboard/",
        headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")],
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_vote_pushes_the_refitted_leaderboard_over_the_websocket(arena_campaign):
    from asgiref.sync import sync_to_async

    campaign = await sync_to_async(arena_campaign)()
    communicator = await open_board("study")
    await communicator.send_json_to({"criterion": "diversity", "category": ""})
    # Subscribing brings the board as it is now, so nothing voted while the page connected is missed.
    current = await communicator.receive_json_from(timeout=10)
    assert (current["criterion"], current["votes"]) == ("diversity", 0)
    await sync_to_async(vote_many)(campaign, 1)
    pushed = await communicator.receive_json_from(timeout=10)
    assert pushed["criterion"] == "diversity"
    assert pushed["votes"] == 1
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_vote_announces_its_change_only_while_someone_watches_the_board(arena_campaign):
    """An unwatched campaign's votes skip the channel layer; a board socket marks its campaign watched."""
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer
    from django.core.cache import cache

    from arena.tallies import leaderboard_group
    from arena.watching import is_watched

    campaign = await sync_to_async(arena_campaign)()
    # Another test's board socket may have marked it, and another test's vote opened a push window.
    await cache.adelete_many(["leaderboard-watched:study", "leaderboard-push-due:study"])
    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(leaderboard_group("study"), listener)

    await sync_to_async(vote_many)(campaign, 1, seed=1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(listener), timeout=0.5)

    communicator = await open_board("study")
    assert await sync_to_async(is_watched)("study")
    await sync_to_async(vote_many)(campaign, 1, seed=2)
    message = await asyncio.wait_for(layer.receive(listener), timeout=10)
    assert message["type"] == "leaderboard.changed"
    await communicator.disconnect()
    await layer.group_discard(leaderboard_group("study"), listener)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_votes_under_many_sockets_are_refitted_once_per_interval_and_reach_every_socket(
    arena_campaign, settings, monkeypatch
):
    """N votes with M sockets open: at most ceil(elapsed / interval) + 1 fits, and every socket gets the last vote."""
    from asgiref.sync import sync_to_async
    from django.core.cache import cache

    import arena.selectors

    settings.LEADERBOARD_PUSH_S = 0.4
    votes, sockets = 14, 6
    campaign = await sync_to_async(arena_campaign)(generators=3, prompts=2, per_queue=6, votes_per_pair=5)
    await cache.adelete_many(["leaderboard-watched:study", "leaderboard-push-due:study"])
    boards = [await open_board("study") for _ in range(sockets)]
    for board in boards:
        await board.send_json_to({"criterion": "diversity", "category": ""})
        assert (await board.receive_json_from(timeout=10))["votes"] == 0
    # Given every closed-form fit counted from now on,
    fits: list[float] = []
    real_fit = arena.selectors.fit_ratings

    def counted_fit(*args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("intervals") == "sandwich":
            fits.append(time.monotonic())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(arena.selectors, "fit_ratings", counted_fit)

    # when votes land one by one over more than one interval (each on the thread the sockets' refits use,
    # so that SQLite's in-memory test database is never written and read at once),
    started = time.monotonic()
    for n in range(votes):
        await sync_to_async(vote_many)(campaign, 1, seed=100 + n)
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started

    # then every socket is sent a board that holds the last vote, within the interval (and the fit),
    async def last_board(board: WebsocketCommunicator) -> dict:
        while True:
            pushed = await board.receive_json_from(timeout=5)
            if pushed["votes"] == votes:
                return pushed

    pushed = await asyncio.gather(*(last_board(board) for board in boards))
    assert {p["intervals"] for p in pushed} == {"sandwich"}
    assert len({json.dumps(p["rows"], sort_keys=True) for p in pushed}) == 1
    # and the board was fitted once per interval for all the sockets together, not once per vote or socket.
    assert 2 <= len(fits) <= math.ceil(elapsed / settings.LEADERBOARD_PUSH_S) + 1, (len(fits), elapsed)
    for board in boards:
        await board.disconnect()


def test_staff_can_see_the_leaderboard_with_flagged_votes_counted_and_nobody_else_can(
    admin_client, arena_campaign, client
):
    campaign = arena_campaign(per_queue=6, votes_per_pair=6)
    honest, flagged = Participant.objects.create(), Participant.objects.create()
    CampaignParticipation.objects.create(campaign=campaign, participant=flagged, is_flagged=True)
    for voter, choice in ((honest, "left"), (flagged, "right"), (flagged, "right")):
        comparison = issue_comparison(campaign=campaign, participant=voter)
        votes = [VoteInput("diversity", choice), VoteInput("quality", choice)]
        cast_votes(token=comparison.token, participant=voter, votes=votes, dwell_ms=5000)
    url = "/api/v1/campaigns/study/leaderboard?criterion=diversity"
    default = admin_client.get(url).json()
    assert (default["votes"], default["includes_flagged"]) == (1, False)
    everyone = admin_client.get(url + "&include_flagged=true").json()
    assert (everyone["votes"], everyone["includes_flagged"]) == (3, True)
    wins = {row["generator"]: row["wins"] for row in everyone["rows"]}
    assert sum(wins.values()) == 3
    refused = client.get(url + "&include_flagged=true")
    assert refused.status_code == 403
    assert "only staff" in refused.json()["error"]["message"]
    assert admin_client.get(url + "&include_flagged=maybe").status_code == 400
