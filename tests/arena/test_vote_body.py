"""The vote path's own check of a request body agrees with the serializer that documents it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from arena.api import NextRequestSerializer, VotesRequestSerializer, plain_next_body, plain_votes_body

# Values near the edges of what the serializer takes: keys and tokens with spaces, nulls, other characters
# and lengths around 64; choices in and out of the vocabulary; numbers as text, floats and booleans.
TEXT = st.one_of(
    st.sampled_from(["diversity", "quality", "left", "right", "tie", "both_bad", "a" * 64, "a" * 65, "", " tie"]),
    st.text(alphabet="ab_-. \x00é\t", max_size=66),
    st.integers(-2, 2),
    st.none(),
)
NUMBER = st.one_of(
    st.integers(-5, 24 * 60 * 60 * 1000 + 5),
    st.sampled_from([86_400_000, 86_400_001, 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=1e9),
    st.booleans(),
    st.sampled_from(["600", " 600", "6e2", "", None]),
)
VOTE = st.one_of(
    st.fixed_dictionaries({"criterion": TEXT, "choice": TEXT}),
    st.fixed_dictionaries({"criterion": TEXT}),
    st.fixed_dictionaries({"criterion": TEXT, "choice": TEXT, "extra": st.just(1)}),
    TEXT,
)
NEXT = st.one_of(
    st.fixed_dictionaries({}, optional={"exclude": st.one_of(st.lists(TEXT, max_size=12), TEXT)}),
    st.fixed_dictionaries({"other": st.just(1)}),
    TEXT,
    st.lists(TEXT, max_size=2),
)
BODY = st.one_of(
    st.fixed_dictionaries(
        {"votes": st.lists(VOTE, max_size=22), "dwell_ms": NUMBER},
        optional={"next": NEXT, "extra": st.just("x")},
    ),
    st.fixed_dictionaries({}, optional={"votes": st.lists(VOTE, max_size=3), "dwell_ms": NUMBER}),
    st.lists(st.just(1), max_size=1),
    TEXT,
)


def serialized(serializer_class: type, data: Any) -> dict[str, Any] | None:
    body = serializer_class(data=data)
    return body.validated_data if body.is_valid() else None


@settings(max_examples=600, deadline=None)
@given(BODY)
def test_a_vote_body_the_plain_check_takes_is_one_the_serializer_takes_the_same_way(data):
    plain = plain_votes_body(data)
    if plain is not None:
        assert serialized(VotesRequestSerializer, data) == plain


@settings(max_examples=300, deadline=None)
@given(NEXT)
def test_a_next_body_the_plain_check_takes_is_one_the_serializer_takes_the_same_way(data):
    plain = plain_next_body(data)
    if plain is not None:
        assert serialized(NextRequestSerializer, data) == plain


def test_the_bodies_the_vote_page_sends_take_the_plain_check():
    votes = [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "both_bad"}]
    token = "N9WC_4BJjy2TgIKFWRVpLHblW-As6878NvBJYpzu7f4"
    body = {"votes": votes, "dwell_ms": 4200, "next": {"exclude": [token]}}
    assert plain_votes_body(body) == body == serialized(VotesRequestSerializer, body)
    assert plain_votes_body({"votes": votes, "dwell_ms": 0}) == {"votes": votes, "dwell_ms": 0}
    assert plain_next_body({}) == {}
    # What it does not take plainly goes to the serializer, which keeps or refuses it itself.
    as_text = {"votes": votes, "dwell_ms": "4200"}
    assert plain_votes_body(as_text) is None
    assert serialized(VotesRequestSerializer, as_text) == {"votes": votes, "dwell_ms": 4200}
    assert plain_votes_body({"votes": votes, "dwell_ms": True}) is None
    assert serialized(VotesRequestSerializer, {"votes": votes, "dwell_ms": True}) is None
