"""Admin for generators, prompts, populations and images: find failed work, look at images."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from generation.models import Demand, Generator, Image, Population, Prompt
from generation.services import GeneratorRefused, check_generator, retry_failed_populations


class GeneratorForm(forms.ModelForm):
    """Refuses a hosted API generator whose source or settings could never run, naming the field.

    No Meta: GeneratorAdmin's get_form names the model and fields, as for its default form.
    """

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        backend, source = cleaned.get("backend"), cleaned.get("source")
        if backend and source:
            try:
                check_generator(backend=backend, source=source, settings=cleaned.get("settings"))
            except GeneratorRefused as exc:
                field = "source" if "source" in exc.message or "backend" in exc.message else "settings"
                self.add_error(field, exc.message)
        return cleaned


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin):
    form = GeneratorForm
    list_display = ["name", "display_name", "source", "prompt_template", "is_offline_standin", "is_active"]
    list_filter = ["backend", "is_active", "is_offline_standin"]
    search_fields = ["name", "display_name", "source", "description"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["caption", "category", "is_shared", "population_count", "created_at"]
    list_filter = ["category", "is_shared"]
    search_fields = ["caption", "category"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Prompt]:
        return super().get_queryset(request).annotate(_populations=Count("populations"))

    @admin.display(ordering="_populations", description="populations")
    def population_count(self, obj: Prompt) -> int:
        return obj._populations  # type: ignore[attr-defined]


class ImageInline(admin.TabularInline):
    model = Image
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "preview",
        "index",
        "seed",
        "generation_prompt",
        "width",
        "height",
        "sha256",
        "generation_ms",
    )

    @admin.display(description="image")
    def preview(self, obj: Image) -> str:
        if not obj.file:
            return "-"
        return format_html('<a href="{0}"><img src="{0}" alt="" style="max-height:96px"></a>', obj.file.url)

    def has_add_permission(self, request: HttpRequest, obj: Population | None = None) -> bool:
        return False


@admin.register(Population)
class PopulationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "generator",
        "prompt",
        "size",
        "status",
        "attempts",
        "uses",
        "short_error",
        "claimed_by",
        "lease_until",
        "created_at",
    ]
    list_filter = ["status", "generator"]
    search_fields = ["prompt__caption", "generator__name", "error", "claimed_by"]
    list_select_related = ["generator", "prompt"]
    raw_id_fields = ["prompt"]
    readonly_fields = ["thumbnails", "created_at", "updated_at", "ready_at", "generation_ms"]
    inlines = [ImageInline]
    actions = ["retry_failed"]

    @admin.display(description="error")
    def short_error(self, obj: Population) -> str:
        return obj.error[:120]

    @admin.action(description="Retry the selected failed populations")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Population]) -> None:
        count = retry_failed_populations(population_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} failed population(s) queued again.")

    @admin.display(description="images")
    def thumbnails(self, obj: Population) -> str:
        images = obj.images.all()
        if not images:
            return "-"
        return format_html_join(
            " ", '<img src="{}" alt="" style="max-height:96px">', ((image.file.url,) for image in images if image.file)
        )


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["id", "population", "index", "seed", "width", "height", "sha256", "created_at"]
    search_fields = ["sha256", "generation_prompt"]
    list_select_related = ["population__generator", "population__prompt"]
    raw_id_fields = ["population"]
    readonly_fields = ["created_at"]


@admin.register(Demand)
class DemandAdmin(admin.ModelAdmin):
    list_display = ["owner", "generator", "prompt", "size", "low_watermark", "high_watermark", "max_uses", "priority"]
    list_filter = ["owner", "generator"]
    search_fields = ["owner", "prompt__caption", "generator__name"]
    list_select_related = ["generator", "prompt"]
