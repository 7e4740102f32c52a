"""Comparisons, votes, ranking and pair sampling."""

from django.apps import AppConfig


class ArenaConfig(AppConfig):
    name = "arena"
