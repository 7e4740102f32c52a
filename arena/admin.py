"""Admin for comparisons and votes. Votes are evidence: read-only, never deleted here."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from arena.models import Comparison, PairTally, Vote


class VoteInline(admin.TabularInline):
    model = Vote
    extra = 0
    can_delete = False
    fields = readonly_fields = ("criterion", "choice", "dwell_ms", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Comparison | None = None) -> bool:
        return False


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "prompt", "left_generator", "right_generator", "status", "is_gold", "issued_at"]
    list_filter = ["status", "is_gold", "campaign"]
    search_fields = ["prompt__caption"]
    list_select_related = [
        "campaign",
        "prompt",
        "left_population__generator",
        "right_population__generator",
    ]
    raw_id_fields = ["participant", "prompt", "left_population", "right_population", "repeat_of"]
    readonly_fields = ["token", "issued_at", "voted_at"]
    inlines = [VoteInline]

    @admin.display(description="left")
    def left_generator(self, obj: Comparison) -> str:
        return obj.left_population.generator.name

    @admin.display(description="right")
    def right_generator(self, obj: Comparison) -> str:
        return obj.right_population.generator.name


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "criterion", "choice", "dwell_ms", "created_at"]
    list_filter = ["choice", "criterion__key", "comparison__campaign"]
    list_select_related = ["comparison", "criterion__campaign"]
    readonly_fields = ["comparison", "criterion", "choice", "dwell_ms", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Vote | None = None) -> bool:
        return False


@admin.register(PairTally)
class PairTallyAdmin(admin.ModelAdmin):
    """Running counts behind the leaderboards; derived from votes, so read-only here."""

    list_display = [
        "campaign",
        "criterion",
        "category",
        "generator_a",
        "generator_b",
        "a_wins",
        "b_wins",
        "ties",
        "both_bad",
    ]
    list_filter = ["campaign", "criterion__key", "category"]
    list_select_related = ["campaign", "criterion", "generator_a", "generator_b"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PairTally | None = None) -> bool:
        return False
