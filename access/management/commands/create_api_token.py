"""Create an API token for a user and print its key, the only time it is shown.

The token gets only the scopes the user's role allows (access.services says which); a worker
token can be limited to generators (by name) or campaigns (by slug).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from access.models import Scope
from access.services import create_api_token, limit_ids_by_name
from core.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Create an API token for USER with the given scopes (those USER's role allows) and print its key "
        "(shown only this once)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="username of the token's owner")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            choices=Scope.values,
            help="a scope to grant; repeat for several",
        )
        parser.add_argument("--name", required=True, help="what the token is for, e.g. gpu-worker-3")
        parser.add_argument("--expires-in-days", type=int, default=None, help="expire after this many days")
        parser.add_argument(
            "--generator",
            action="append",
            default=[],
            metavar="NAME",
            help="worker tokens: claim only this generator's work; repeat for several",
        )
        parser.add_argument(
            "--campaign",
            action="append",
            default=[],
            metavar="SLUG",
            help="worker tokens: claim only the work of this campaign's generators; repeat for several",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["user"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        days = options["expires_in_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-in-days must be at least 1")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            limits = {
                kind: limit_ids_by_name(kind_name=kind, names=names)
                for kind, names in (("generators", options["generator"]), ("campaigns", options["campaign"]))
                if names
            }
            issued = create_api_token(
                user=user,
                name=options["name"],
                scopes=options["scope"],
                expires_at=expires_at,
                requested_by=user,
                worker_limits=limits,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        token = issued.token
        self.stderr.write(
            f"Created API token {token.pk} {token.name!r} for {username} with scopes {', '.join(token.scopes)}"
            + (f", expiring {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "")
            + "".join(
                f", only {kind} {', '.join(names)}"
                for kind, names in (("generators", options["generator"]), ("campaigns", options["campaign"]))
                if names
            )
            + ". The key below is shown only now; send it as 'Authorization: Bearer <key>'."
        )
        self.stdout.write(issued.key)
