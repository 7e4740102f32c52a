"""The quota rule (arena.quota) at its boundary: the last comparison allowed is taken, the next is refused."""

from __future__ import annotations

import pytest

from annotation.models import Campaign
from arena import quota


def campaign(limit: int | None) -> Campaign:
    return Campaign(slug="study", title="A study", participant_quota=limit)


@pytest.mark.parametrize(("voted", "left", "is_reached"), [(0, 3, False), (2, 1, False), (3, 0, True), (5, 0, True)])
def test_a_quota_of_three_leaves_what_is_left_and_is_reached_at_three(voted, left, is_reached):
    assert quota.remaining(campaign(3), voted) == left
    assert quota.reached(campaign(3), voted) is is_reached


def test_reaching_it_is_a_409_quota_reached_naming_the_quota():
    quota.check(campaign(3), 2)  # the third comparison may still be answered
    with pytest.raises(quota.QuotaReached) as refused:
        quota.check(campaign(3), 3)
    assert (refused.value.code, refused.value.status) == ("quota_reached", 409)
    assert "quota of 3 comparisons" in refused.value.message


def test_without_a_quota_nothing_is_ever_reached():
    assert quota.remaining(campaign(None), 10_000) is None
    assert not quota.reached(campaign(None), 10_000)
    quota.check(campaign(None), 10_000)
