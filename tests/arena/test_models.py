"""The database itself refuses comparisons and votes that break the data model's rules."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from arena.models import Vote
from tests.factories import (
    ComparisonFactory,
    CriterionFactory,
    PopulationFactory,
    PromptFactory,
    VoteFactory,
)

pytestmark = pytest.mark.django_db


def test_second_vote_for_same_comparison_and_criterion_is_refused_by_the_database():
    vote = VoteFactory()
    # bulk_create skips model validation: only the database stands in the way.
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.bulk_create(
            [Vote(comparison=vote.comparison, criterion=vote.criterion, choice="right", dwell_ms=10)]
        )
    assert list(Vote.objects.values_list("choice", flat=True)) == ["left"]


def test_votes_on_other_criteria_of_the_same_comparison_are_accepted():
    vote = VoteFactory()
    other = CriterionFactory(campaign=vote.comparison.campaign, key="quality")
    Vote.objects.create(comparison=vote.comparison, criterion=other, choice="tie", dwell_ms=10)
    assert vote.comparison.votes.count() == 2


@pytest.mark.parametrize("choice", ["up", "", "LEFT"])
def test_unknown_vote_choice_is_refused_by_the_database(choice):
    vote = VoteFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.filter(pk=vote.pk).update(choice=choice)


def test_vote_criterion_from_another_campaign_is_refused():
    comparison = ComparisonFactory()
    foreign = CriterionFactory()  # belongs to a different campaign
    with pytest.raises(IntegrityError, match="criterion must belong"), transaction.atomic():
        Vote.objects.create(comparison=comparison, criterion=foreign, choice="left", dwell_ms=10)
    assert not Vote.objects.exists()


def test_comparison_of_populations_with_different_prompts_is_refused():
    left = PopulationFactory()
    right = PopulationFactory()  # another prompt
    with pytest.raises(IntegrityError, match="share the comparison's prompt"), transaction.atomic():
        ComparisonFactory(prompt=left.prompt, left_population=left, right_population=right)


def test_comparison_prompt_must_match_its_populations():
    prompt = PromptFactory()
    with pytest.raises(IntegrityError, match="share the comparison's prompt"), transaction.atomic():
        ComparisonFactory(
            prompt=PromptFactory(),
            left_population=PopulationFactory(prompt=prompt),
            right_population=PopulationFactory(prompt=prompt),
        )


def test_comparison_of_one_generator_against_itself_is_refused():
    left = PopulationFactory()
    right = PopulationFactory(prompt=left.prompt, generator=left.generator)
    with pytest.raises(IntegrityError, match="different generators"), transaction.atomic():
        ComparisonFactory(prompt=left.prompt, left_population=left, right_population=right)


def test_comparison_of_a_population_with_itself_is_refused():
    population = PopulationFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ComparisonFactory(prompt=population.prompt, left_population=population, right_population=population)


def test_comparison_of_populations_of_different_sizes_is_refused():
    left = PopulationFactory(size=6)
    right = PopulationFactory(prompt=left.prompt, size=4)
    with pytest.raises(IntegrityError, match="same size"), transaction.atomic():
        ComparisonFactory(prompt=left.prompt, left_population=left, right_population=right)


def test_updating_a_comparison_to_a_foreign_population_is_refused():
    comparison = ComparisonFactory()
    foreign = PopulationFactory()
    with pytest.raises(IntegrityError, match="share the comparison's prompt"), transaction.atomic():
        type(comparison).objects.filter(pk=comparison.pk).update(right_population=foreign)
    comparison.refresh_from_db()
    assert comparison.right_population.prompt_id == comparison.prompt_id


def test_valid_comparison_keeps_left_and_right_as_stored():
    comparison = ComparisonFactory()
    comparison.refresh_from_db()
    assert comparison.left_population.generator != comparison.right_population.generator
    assert len(comparison.token) >= 40
