"""Generators, prompts, populations and images; the generation worker."""

from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
