"""API tokens: a named, scoped key for scripts and workers; only the key's hash is stored."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    READ = "read", "read: campaigns, leaderboards, generators and queues"
    VOTE = "vote", "vote: issue comparisons and cast votes as the token's owner"
    MANAGE = "manage", "manage: staff views of workers and leases"
    EXPORT = "export", "export: run and download preference exports (staff owners only)"
    WORKER = "worker", "worker: the generation worker's endpoints, nothing else"


class ApiToken(models.Model):
    """A bearer key `pa_...`; shown once at creation, then only its sha256 is kept."""

    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'gpu-worker-3'.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    scopes = models.JSONField(default=list, help_text="A subset of: " + ", ".join(Scope.values))
    key_hash = models.CharField(max_length=64, unique=True, editable=False, help_text="sha256 of the key, hex.")
    key_hint = models.CharField(max_length=12, editable=False, help_text="The key's last characters.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    worker_limits = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'Worker tokens only: claim only the work of these, e.g. {"generators": [3], "campaigns": [7]} (ids); '
            "empty: any generator's work."
        ),
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.user}, {', '.join(self.scopes) or 'no scopes'})"

    def problem(self, now: datetime | None = None) -> str | None:
        """Why this token may not be used now, or None when it may."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return f"this API token was revoked at {self.revoked_at:%Y-%m-%d %H:%M} UTC"
        if self.expires_at is not None and self.expires_at <= now:
            return f"this API token expired at {self.expires_at:%Y-%m-%d %H:%M} UTC"
        if not self.user.is_active:
            return "the owner of this API token is inactive"
        return None

    @property
    def is_limited(self) -> bool:
        """Limited to some generators or campaigns; a limit whose targets are gone allows nothing, never everything."""
        return bool(self.worker_limits)

    @property
    def is_usable(self) -> bool:
        return self.problem() is None
