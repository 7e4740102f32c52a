"""Stored metric results: one label per image and attribute spec, and the measures of each population.

Results are keyed by the spec's fingerprint (metrics.config.AttributeSpec.key), and carry the
backend, model id and class list that produced them, so a reader never has to guess what a number
means, two campaigns with the same spec share results, and a changed spec is a new key, never an
overwrite of old results.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from generation.models import Image, Population


class ImageLabel(models.Model):
    """The class one backend gave one image for one attribute spec; empty for "none of these"."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="metric_labels")
    spec_key = models.CharField(max_length=32, db_index=True)
    attribute = models.CharField(max_length=40)
    label = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["image", "attribute"]
        constraints = [models.UniqueConstraint(fields=["image", "spec_key"], name="image_label_unique_spec")]

    def __str__(self) -> str:
        return f"{self.attribute}={self.label or '-'} (image {self.image_id})"


class AttributeMeasure(models.Model):
    """Class-based measures of one attribute over one population's N images."""

    population = models.ForeignKey(Population, on_delete=models.CASCADE, related_name="attribute_measures")
    spec_key = models.CharField(max_length=32, db_index=True)
    attribute = models.CharField(max_length=40)
    backend = models.CharField(max_length=32)
    model_id = models.CharField(max_length=500)
    classes = models.JSONField(help_text="The fixed class list, in order.")
    target = models.JSONField(help_text="The target share of each class.")
    counts = models.JSONField(help_text="Images read as each class; images read as none of them are not here.")
    images = models.PositiveSmallIntegerField()
    counted = models.PositiveSmallIntegerField(help_text="Images read as one of the classes.")
    shares = models.JSONField(null=True, help_text="counts / counted; null when nothing was counted.")
    discrepancy = models.FloatField(null=True, help_text="PopAlign: L2 distance of the shares from the target.")
    kl = models.FloatField(null=True, help_text="KL(shares || target), nats.")
    entropy = models.FloatField(null=True, help_text="Entropy of the shares over log K: 1 is uniform.")
    distinct = models.PositiveSmallIntegerField(help_text="Classes seen at least once.")
    effective = models.FloatField(null=True, help_text="exp(entropy): the effective number of classes.")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["population", "attribute"]
        constraints = [
            models.UniqueConstraint(fields=["population", "spec_key"], name="attribute_measure_unique_spec"),
            models.CheckConstraint(condition=Q(counted__lte=models.F("images")), name="attribute_measure_counted"),
        ]

    def __str__(self) -> str:
        return f"{self.attribute} of population {self.population_id}"


class SetMeasure(models.Model):
    """Measures of one population as a whole: diversity (Vendi) and faithfulness to its prompt."""

    population = models.ForeignKey(Population, on_delete=models.CASCADE, related_name="set_measures")
    spec_key = models.CharField(max_length=32, db_index=True, help_text="Fingerprint of backend and model.")
    backend = models.CharField(max_length=32)
    model_id = models.CharField(max_length=500)
    feature = models.CharField(max_length=200, help_text="What the Vendi score's embeddings are.")
    images = models.PositiveSmallIntegerField()
    vendi = models.FloatField(help_text="Vendi score, 1..N; compare only populations of equal N.")
    faithfulness = models.FloatField(null=True, help_text="Share of images showing what the caption names.")
    clip_score = models.FloatField(null=True, help_text="Mean 100 x max(cosine(image, caption), 0).")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["population"]
        constraints = [models.UniqueConstraint(fields=["population", "spec_key"], name="set_measure_unique_spec")]

    def __str__(self) -> str:
        return f"{self.backend} set measures of population {self.population_id}"
