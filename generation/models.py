"""Generators, prompts, populations (N images of one generator for one prompt) and images."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q

from core.models import TimestampedModel

MAX_POPULATION_SIZE = 16


class Generator(TimestampedModel):
    """A named text-to-image configuration; participants only see its name after voting."""

    class Backend(models.TextChoices):
        DIFFUSERS = "diffusers", "diffusers pipeline"
        API = "api", "hosted image API"
        IMPORTED = "imported", "imported image sets"

    name = models.SlugField(max_length=64, unique=True, help_text="Stable identifier, shown after a vote.")
    display_name = models.CharField(max_length=120, blank=True)
    description = models.TextField(blank=True)
    backend = models.CharField(max_length=32, choices=Backend.choices, default=Backend.DIFFUSERS)
    source = models.CharField(
        max_length=500,
        help_text="A hub id (stabilityai/sd-turbo), a local pipeline folder, or builtin:NAME for the offline models.",
    )
    settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="Pipeline settings: steps, guidance_scale, width, height, scheduler, dtype, lora, ...",
    )
    prompt_template = models.CharField(
        max_length=500,
        default="{prompt}",
        help_text='How a prompt becomes the generation prompt, e.g. "a realistic photo of {prompt}".',
    )
    is_offline_standin = models.BooleanField(
        default=False, help_text="A built-in offline model, not a real text-to-image generator."
    )
    gold_source = models.BooleanField(
        default=True,
        help_text=(
            "May be the real side of a gold check. Off for generators whose own images are noise: "
            "beside a degraded copy of noise, neither side is plainly the broken one."
        ),
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(prompt_template__contains="{prompt}"),
                name="generator_template_has_prompt",
                violation_error_message="The prompt template must contain {prompt}.",
            ),
            models.CheckConstraint(condition=~Q(source=""), name="generator_source_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        return self.display_name or self.name

    def generation_prompt(self, caption: str) -> str:
        return self.prompt_template.replace("{prompt}", caption)


class Prompt(TimestampedModel):
    """The text a population is generated for; the caption is what training conditions on.

    A prompt belongs to the owner of the campaign it was added to (none for staff-made ones): image sets
    are made per prompt row, so two studies adding one caption get a row each and never see each other's
    sets. Staff may mark a prompt shared, for every researcher to use (its sets are then shared too).
    """

    caption = models.CharField(max_length=1000)
    category = models.CharField(max_length=100, blank=True, db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Whose study the prompt is (the campaign owner it was added for); empty: staff's.",
    )
    is_shared = models.BooleanField(
        default=False,
        help_text="Every researcher may see and use this prompt, and so the image sets made for it.",
    )

    class Meta:
        ordering = ["category", "caption"]
        constraints = [
            models.UniqueConstraint(
                fields=["caption", "category", "owner"],
                condition=Q(owner__isnull=False),
                name="prompt_unique_caption_category_owner",
            ),
            models.UniqueConstraint(
                fields=["caption", "category"], condition=Q(owner__isnull=True), name="prompt_unique_caption_category"
            ),
            models.CheckConstraint(condition=~Q(caption=""), name="prompt_caption_not_empty"),
        ]

    def __str__(self) -> str:
        return self.caption


class PopulationStatus(models.TextChoices):
    PENDING = "pending", "pending"
    GENERATING = "generating", "generating"
    READY = "ready", "ready"
    FAILED = "failed", "failed"


class PopulationQuerySet(models.QuerySet["Population"]):
    def ready_for(
        self, *, size: int, generators: models.QuerySet[Generator], prompts: models.QuerySet[Prompt]
    ) -> PopulationQuerySet:
        """Ready sets of `size` images by one of `generators` for one of `prompts`: what a study can show.

        Generation knows nothing of campaigns; annotation.selectors.campaign_populations says which
        generators and prompts a campaign's are. Raw SQL that must restate this rule says so
        (arena/statements.py, checked against this by tests/arena/test_statements.py).
        """
        return self.filter(
            status=PopulationStatus.READY,
            size=size,
            generator__in=generators.values("pk"),
            prompt__in=prompts.values("pk"),
        )

    def servable(self, *, max_uses: int) -> PopulationQuerySet:
        """Sets that can still be shown: each serves at most `max_uses` comparisons (a campaign's votes per pair).

        A comparison takes a set's use while its lease runs (`reserved`) and keeps it once voted (`uses`); an
        unvoted one gives it back when its lease runs out (arena.statements.expire_leases).
        """
        return self.alias(taken=F("uses") + F("reserved")).filter(taken__lt=max_uses)


class Population(TimestampedModel):
    """N images of one generator for one prompt; ready only once all N images are stored."""

    Status = PopulationStatus

    generator = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="populations")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="populations")
    size = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    seeds = models.JSONField(default=list, help_text="One seed per image, in display order.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    claimed_by = models.CharField(max_length=200, blank=True, help_text="The worker holding the lease.")
    lease_until = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    generation_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Pipeline time for all images.")
    uses = models.PositiveIntegerField(default=0, help_text="Voted comparisons this population was shown in.")
    reserved = models.PositiveIntegerField(
        default=0,
        help_text="Comparisons showing this population under a live lease: given back when unvoted ones expire.",
    )
    decoy_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="decoys",
        help_text="For a gold check: the population this one is a deliberately degraded copy of.",
    )

    objects = PopulationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["prompt", "generator", "status"], name="population_queue_idx"),
            # Sets in use and not yet used up (0 < uses < a campaign's votes per pair) are found by a range
            # scan of this index alone, however many sets are unused or used up (arena.statements._UNFINISHED_PAIRS).
            models.Index(fields=["status", "uses"], name="population_in_use_idx", condition=Q(uses__gt=0)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(size__gte=1) & Q(size__lte=MAX_POPULATION_SIZE), name="population_size_range"
            ),
            models.CheckConstraint(condition=Q(status__in=PopulationStatus.values), name="population_status_valid"),
            models.CheckConstraint(
                condition=~Q(status="generating") | Q(lease_until__isnull=False),
                name="population_generating_has_lease",
            ),
            models.CheckConstraint(
                condition=~Q(status="ready") | Q(ready_at__isnull=False), name="population_ready_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.generator} × {self.prompt} ({self.size}, {self.status})"


class Demand(TimestampedModel):
    """How many ready populations of one generator and prompt an owner (a campaign) wants waiting.

    Generation knows nothing of campaigns: their services write demand rows, and the worker
    tops every queue up to the highest watermark any owner asks for.
    """

    owner = models.CharField(max_length=100, help_text='Who wants the populations, e.g. "campaign:demo".')
    generator = models.ForeignKey(Generator, on_delete=models.CASCADE, related_name="demands")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="demands")
    size = models.PositiveSmallIntegerField()
    low_watermark = models.PositiveSmallIntegerField(default=1, help_text="Refill when fewer are available.")
    high_watermark = models.PositiveSmallIntegerField(default=2, help_text="Refill up to this many.")
    max_uses = models.PositiveIntegerField(default=5, help_text="Comparisons a population serves before it is used up.")
    priority = models.FloatField(default=0.0, help_text="Higher first; the pair sampler raises what it needs.")

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "generator", "prompt", "size"], name="demand_unique"),
            models.CheckConstraint(
                condition=Q(size__gte=1) & Q(size__lte=MAX_POPULATION_SIZE), name="demand_size_range"
            ),
            models.CheckConstraint(
                condition=Q(low_watermark__lte=F("high_watermark")), name="demand_low_not_above_high"
            ),
            models.CheckConstraint(condition=Q(max_uses__gte=1), name="demand_max_uses_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.owner}: {self.generator} × {self.prompt} ({self.low_watermark}-{self.high_watermark})"


def image_upload_to(instance: Image | None, filename: str) -> str:
    # Names carry no generator, prompt or order: a URL must not reveal which side is which.
    return f"images/{filename[:2]}/{filename}"


class Image(models.Model):
    """One generated image with everything needed to regenerate it."""

    population = models.ForeignKey(Population, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField(help_text="Position in the population, as generated.")
    file = models.FileField(upload_to=image_upload_to, max_length=300)
    seed = models.BigIntegerField()
    generation_prompt = models.TextField(help_text="The exact text given to the pipeline.")
    prompt_truncated = models.BooleanField(default=False)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField(
        max_length=64, validators=[RegexValidator(r"^[0-9a-f]{64}$", "a lowercase hex sha256")], db_index=True
    )
    byte_size = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Bytes of the stored canonical PNG (every picture of a comparison is served padded to the longest); "
        "empty for files stored before it was recorded, whose size is read from storage.",
    )
    generation_ms = models.PositiveIntegerField(null=True, blank=True)
    provenance = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the image's source was asked and answered (a hosted API's model, size, revised prompt, "
        "request id; an import's file and row); empty for a local pipeline, whose seed and prompt say it all.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["population", "index"]
        constraints = [
            models.UniqueConstraint(fields=["population", "index"], name="image_unique_index"),
            models.CheckConstraint(condition=Q(width__gt=0) & Q(height__gt=0), name="image_positive_size"),
            models.CheckConstraint(condition=Q(index__lt=MAX_POPULATION_SIZE), name="image_index_range"),
        ]

    def __str__(self) -> str:
        return f"image {self.index} of population {self.population_id}"
