"""The record of a fine-tuning run: what it was trained on, how, and the generator it became."""

from __future__ import annotations

from django.db import models

from generation.models import Generator


class TrainingRun(models.Model):
    """One `train_generator` run that produced a registered generator (also written as training.json beside it)."""

    generator = models.OneToOneField(Generator, on_delete=models.CASCADE, related_name="training_run")
    base = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="fine_tunes")
    export_format = models.CharField(max_length=32)
    export_manifest_sha256 = models.CharField(
        max_length=64, blank=True, help_text="sha256 of the export's manifest.json; blank for an export without one."
    )
    objective = models.CharField(max_length=32)
    hyperparameters = models.JSONField(default=dict)
    steps = models.PositiveIntegerField()
    final_loss = models.FloatField(null=True)
    wall_seconds = models.FloatField()
    folder = models.CharField(max_length=500, help_text="Where the tuned pipeline is saved (diffusers layout).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.generator.name} ({self.objective} on {self.base.name})"
