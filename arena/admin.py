"""Admin for comparisons and votes (evidence: read-only, never deleted here), and standing per campaign."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.models import Campaign, CampaignParticipation
from annotation.permissions import managed_campaigns
from arena.models import Comparison, PairTally, Vote
from arena.participation import set_flags


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


@admin.register(CampaignParticipation)
class CampaignParticipationAdmin(admin.ModelAdmin):
    """A participant's flag and the crowd platform's verdict in one campaign.

    Every flag change, one row or a bulk action, goes through arena.participation.set_flags, which recounts
    the campaign's leaderboard; the platform's verdict is written only by the reconciliation import.
    """

    list_display = ["campaign", "participant", "is_flagged", "flag_reason", "platform_status", "reconciled_at"]
    list_filter = [("campaign", admin.RelatedOnlyFieldListFilter), "is_flagged", "platform_status"]
    list_select_related = ["campaign", "participant"]
    raw_id_fields = ["participant"]
    fields = ["campaign", "participant", "is_flagged", "flag_reason", "platform_status", "reconciled_at"]
    actions = ["flag_participants", "clear_flags"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CampaignParticipation]:
        return super().get_queryset(request).filter(campaign__in=managed_campaigns(request.user).values("pk"))

    def get_readonly_fields(self, request: HttpRequest, obj: CampaignParticipation | None = None) -> Any:
        fixed = ["platform_status", "reconciled_at"]
        return [*fixed, "campaign", "participant"] if obj is not None else fixed

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "campaign":
            kwargs["queryset"] = managed_campaigns(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: CampaignParticipation | None = None) -> bool:
        return False  # a row holds the platform's verdict too; clearing a flag is a change, not a deletion

    def save_model(self, request: HttpRequest, obj: CampaignParticipation, form: Any, change: bool) -> None:
        reason = (obj.flag_reason or f"flagged by {request.user} in the admin") if obj.is_flagged else None
        set_flags(campaign=obj.campaign, flags={obj.participant_id: reason})
        saved = CampaignParticipation.objects.get(campaign=obj.campaign, participant_id=obj.participant_id)
        obj.pk, obj.flag_reason = saved.pk, saved.flag_reason

    def _set(self, request: HttpRequest, queryset: QuerySet[CampaignParticipation], reason: str | None) -> int:
        by_campaign: dict[int, list[int]] = defaultdict(list)
        for campaign_id, participant_id in queryset.values_list("campaign_id", "participant_id"):
            by_campaign[campaign_id].append(participant_id)
        changed = 0
        for campaign in Campaign.objects.filter(pk__in=by_campaign):
            changed += set_flags(
                campaign=campaign, flags=dict.fromkeys(by_campaign[campaign.pk], reason), keep_reasons=True
            )
        return changed

    @admin.action(description="Flag the selected participants in their campaign")
    def flag_participants(self, request: HttpRequest, queryset: QuerySet[CampaignParticipation]) -> None:
        changed = self._set(request, queryset, f"flagged by {request.user} in the admin")
        self.message_user(request, f"{changed} participant(s) flagged; their campaigns' leaderboards recounted.")

    @admin.action(description="Clear the selected participants' flags in their campaign")
    def clear_flags(self, request: HttpRequest, queryset: QuerySet[CampaignParticipation]) -> None:
        changed = self._set(request, queryset, None)
        self.message_user(request, f"{changed} flag(s) cleared; their campaigns' leaderboards recounted.")
