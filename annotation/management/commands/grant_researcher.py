"""`grant_researcher USERNAME`: make an account a researcher, who manages only the campaigns they own."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.services import grant_researcher_role


class Command(BaseCommand):
    help = (
        "Make USERNAME a researcher: staff (so the admin and the staff pages let them in), in the researcher "
        "group, managing only the campaigns they own. --create makes the account first and prints its password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="create the account (a password is printed once)")
        parser.add_argument("--email", default="", help="with --create: the account's email address")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"].strip()
        users = get_user_model()
        user = users.objects.filter(username=username).first()
        password = None
        if user is None:
            if not options["create"]:
                raise CommandError(f"no user named {username!r}; add --create to make the account")
            if not username:
                raise CommandError("the username is empty")
            password = secrets.token_urlsafe(12)
            user = users.objects.create_user(username, email=options["email"], password=password)
        elif options["create"]:
            raise CommandError(f"a user named {username!r} exists already; leave out --create to grant the role")
        if user.is_superuser:
            raise CommandError(f"{username!r} is a superuser and manages every campaign; a role would change nothing")
        grant_researcher_role(user=user)
        self.stderr.write(f"{username} is a researcher: they manage the campaigns they own and no others.")
        if password is not None:
            self.stderr.write("Their password, shown only now:")
            self.stdout.write(password)
