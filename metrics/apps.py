"""Population metrics: attribute backends, measures per population, and their aggregates."""

from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
