"""factory_boy factories for the data model; every factory builds a valid row."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import factory
from django.utils import timezone

from annotation.models import Campaign, Criterion, Participant
from arena.models import Comparison, Vote
from generation.models import Generator, Image, Population, Prompt


class GeneratorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Generator

    name = factory.Sequence(lambda n: f"generator-{n}")
    source = "builtin:tiny-random"
    settings = factory.LazyFunction(lambda: {"steps": 2, "width": 64, "height": 64})


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    caption = factory.Sequence(lambda n: f"a shape number {n}")
    category = "shape"


class PopulationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Population

    generator = factory.SubFactory(GeneratorFactory)
    prompt = factory.SubFactory(PromptFactory)
    size = 6
    seeds = factory.LazyAttribute(lambda p: list(range(p.size)))
    status = Population.Status.READY
    ready_at = factory.LazyFunction(timezone.now)


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    population = factory.SubFactory(PopulationFactory)
    index = factory.Sequence(lambda n: n % 16)
    file = factory.django.FileField(filename="x.png", data=b"not really a png")
    seed = 1
    generation_prompt = "a shape"
    width = 64
    height = 64
    sha256 = factory.LazyFunction(lambda: hashlib.sha256(b"not really a png").hexdigest())


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    slug = factory.Sequence(lambda n: f"campaign-{n}")
    title = factory.Sequence(lambda n: f"Campaign {n}")
    status = Campaign.Status.OPEN


class CriterionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Criterion

    campaign = factory.SubFactory(CampaignFactory)
    key = factory.Sequence(lambda n: f"criterion-{n}")
    question = "Which set is better?"


class ParticipantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Participant


class ComparisonFactory(factory.django.DjangoModelFactory):
    """Two ready populations of one prompt from two different generators."""

    class Meta:
        model = Comparison

    campaign = factory.SubFactory(CampaignFactory)
    participant = factory.SubFactory(ParticipantFactory)
    prompt = factory.SubFactory(PromptFactory)
    left_population = factory.SubFactory(PopulationFactory, prompt=factory.SelfAttribute("..prompt"))
    right_population = factory.SubFactory(PopulationFactory, prompt=factory.SelfAttribute("..prompt"))
    lease_until = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=10))


class VoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vote

    comparison = factory.SubFactory(ComparisonFactory)
    criterion = factory.SubFactory(CriterionFactory, campaign=factory.SelfAttribute("..comparison.campaign"))
    choice = Vote.Choice.LEFT
    dwell_ms = 4200
