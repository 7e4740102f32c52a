"""Database constraints on generators, prompts, populations and images."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from generation.models import Generator, Population, Prompt
from tests.factories import GeneratorFactory, ImageFactory, PopulationFactory

pytestmark = pytest.mark.django_db


def test_generator_template_without_prompt_placeholder_is_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        Generator.objects.create(name="broken", source="x/y", prompt_template="a photo")


def test_generation_prompt_fills_the_template():
    generator = GeneratorFactory(prompt_template="a realistic photo of {prompt}")
    assert generator.generation_prompt("a doctor") == "a realistic photo of a doctor"


def test_same_caption_and_category_twice_is_refused():
    Prompt.objects.create(caption="a doctor", category="occupation")
    with pytest.raises(IntegrityError), transaction.atomic():
        Prompt.objects.create(caption="a doctor", category="occupation")
    Prompt.objects.create(caption="a doctor", category="other study")
    assert Prompt.objects.count() == 2


def test_generating_population_without_a_lease_is_refused():
    population = PopulationFactory(status=Population.Status.PENDING, ready_at=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        Population.objects.filter(pk=population.pk).update(status=Population.Status.GENERATING)


@pytest.mark.parametrize("size", [0, 17])
def test_population_size_out_of_range_is_refused(size):
    with pytest.raises(IntegrityError), transaction.atomic():
        PopulationFactory(size=size)


def test_two_images_at_one_index_of_a_population_are_refused():
    image = ImageFactory(index=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        ImageFactory(population=image.population, index=0)
