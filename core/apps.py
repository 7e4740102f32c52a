"""Shared base classes and the application error type."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "PopArena core"
