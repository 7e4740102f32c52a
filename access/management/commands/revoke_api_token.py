"""Revoke an API token by id, or every token of a user with a given name."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.models import ApiToken
from access.services import revoke_api_token


class Command(BaseCommand):
    help = "Revoke API tokens: by id, or by --user and --name. Requests with them then get 401."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", nargs="?", type=int, help="the token's id (create_api_token prints it)")
        parser.add_argument("--user", help="username of the tokens' owner (with --name)")
        parser.add_argument("--name", help="the tokens' name (with --user)")

    def handle(self, *args: Any, **options: Any) -> None:
        token_id, username, name = options["id"], options["user"], options["name"]
        if token_id is not None and (username or name):
            raise CommandError("give either a token id or --user and --name, not both")
        if token_id is not None:
            tokens = list(ApiToken.objects.filter(pk=token_id))
            if not tokens:
                raise CommandError(f"no API token with id {token_id}")
        elif username and name:
            tokens = list(ApiToken.objects.filter(user__username=username, name=name))
            if not tokens:
                raise CommandError(f"no API token named {name!r} for user {username!r}")
        else:
            raise CommandError("give a token id, or --user and --name")
        for token in tokens:
            if revoke_api_token(token=token):
                self.stdout.write(f"Revoked API token {token.pk} {token.name!r} of {token.user}.")
            else:
                self.stdout.write(f"API token {token.pk} {token.name!r} was already revoked.")
