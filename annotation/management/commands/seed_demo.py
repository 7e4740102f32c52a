"""`seed_demo`: create the demo campaign on the offline generators; an existing one is never rewritten."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand

from annotation.services import seed_demo_campaign


class Command(BaseCommand):
    help = (
        "Create the `demo` campaign with the built-in offline generators, its prompts and two criteria. Only "
        "creates what is missing: an existing `demo` campaign is left exactly as it is."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = seed_demo_campaign()
        for line in report.lines():
            self.stdout.write(f"  {line}")
        if report.counts.get("campaign", Counter())["created"]:
            message = "Demo campaign `demo` ready."
        else:
            done = "the offline generators were updated" if report.changed else "nothing changed"
            message = f"Demo campaign `demo` exists and was left as it is; {done}."
        self.stdout.write(self.style.SUCCESS(message))
