"""`seed_demo`: create (or bring up to date) the demo campaign on the offline generators."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from annotation.services import seed_demo_campaign


class Command(BaseCommand):
    help = "Create the `demo` campaign with the built-in offline generators, its prompts and two criteria. Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        report = seed_demo_campaign()
        for line in report.lines():
            self.stdout.write(f"  {line}")
        if report.changed:
            self.stdout.write(self.style.SUCCESS("Demo campaign `demo` ready."))
        else:
            self.stdout.write(self.style.SUCCESS("Demo campaign already up to date; nothing changed."))
