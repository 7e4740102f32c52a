"""API tokens with scopes, their authentication and permissions, and the API's throttles."""

from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "API access"

    def ready(self) -> None:
        # Registers the bearer scheme with drf-spectacular, so the schema documents it.
        from access import schema  # noqa: F401
