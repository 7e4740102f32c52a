"""Admin for campaigns (with their criteria), and participants; researchers reach only their own campaigns."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.models import Campaign, Criterion, CrowdAssignment, Participant
from annotation.permissions import can_manage_campaign, managed_campaigns, manages_every_campaign
from annotation.services import set_campaign_status, sync_campaign_demand
from core.errors import ApplicationError


class CriterionInline(admin.TabularInline):
    model = Criterion
    extra = 0
    fields = ["position", "key", "question"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "title",
        "status",
        "access",
        "population_size",
        "votes_per_pair",
        "sampling_policy",
        "created_at",
    ]
    list_filter = ["status", "access", "sampling_policy"]
    search_fields = ["slug", "title", "instructions"]
    prepopulated_fields = {"slug": ["title"]}
    filter_horizontal = ["prompts", "generators", "gold_excluded_generators"]
    readonly_fields = ["invite_token", "created_at", "updated_at"]
    inlines = [CriterionInline]
    actions = ["open_campaigns", "pause_campaigns", "close_campaigns"]

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Campaign], status: str, verb: str) -> None:
        done = 0
        for campaign in queryset:
            try:
                set_campaign_status(campaign=campaign, status=status)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
        self.message_user(request, f"{done} campaign(s) {verb}.")

    @admin.action(description="Open the selected campaigns")
    def open_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._set_status(request, queryset, Campaign.Status.OPEN, "opened")

    @admin.action(description="Pause the selected campaigns")
    def pause_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._set_status(request, queryset, Campaign.Status.PAUSED, "paused")

    @admin.action(description="Close the selected campaigns")
    def close_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._set_status(request, queryset, Campaign.Status.CLOSED, "closed")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return super().get_queryset(request).filter(pk__in=managed_campaigns(request.user).values("pk"))

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        # A campaign that has left draft keeps its slug (Campaign.slug_is_frozen): shown, not editable.
        if obj is not None and obj.slug_is_frozen():
            fields.append("slug")
        # Researchers own what they create; only those who manage every campaign hand one over.
        return fields if manages_every_campaign(request.user) else [*fields, "owner"]

    def get_prepopulated_fields(self, request: HttpRequest, obj: Campaign | None = None) -> dict[str, Any]:
        # A read-only slug is not in the form, so nothing may fill it in from the title.
        return {} if obj is not None and obj.slug_is_frozen() else dict(self.prepopulated_fields)

    def has_view_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        return super().has_view_permission(request, obj) and (obj is None or can_manage_campaign(request.user, obj))

    def has_change_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or can_manage_campaign(request.user, obj))

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or can_manage_campaign(request.user, obj))

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        if not change and (obj.owner_id is None or not manages_every_campaign(request.user)):
            obj.owner = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Prompts and generators are saved here, after the campaign row: only now is the demand known.
        super().save_related(request, form, formsets, change)
        sync_campaign_demand(campaign=form.instance)


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "user", "is_flagged", "created_at", "last_seen_at"]
    list_filter = ["kind", "is_flagged"]
    search_fields = ["external_id_hash", "user__username"]
    raw_id_fields = ["user"]
    readonly_fields = ["external_id_hash", "entry_params", "created_at", "updated_at", "last_seen_at"]


@admin.register(Criterion)
class CriterionAdmin(admin.ModelAdmin):
    list_display = ["key", "question", "campaign", "position"]
    # Only the campaigns in the list: a researcher must not see others' campaign titles in the filter.
    list_filter = [("campaign", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["key", "question"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Criterion]:
        return super().get_queryset(request).filter(campaign__in=managed_campaigns(request.user).values("pk"))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "campaign":
            kwargs["queryset"] = managed_campaigns(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(CrowdAssignment)
class CrowdAssignmentAdmin(admin.ModelAdmin):
    """Read-only: which assignment each crowd worker does a campaign on (written only by crowd arrivals)."""

    list_display = ["campaign", "participant", "updated_at"]
    list_filter = [("campaign", admin.RelatedOnlyFieldListFilter)]
    readonly_fields = ["campaign", "participant", "assignment_hash", "created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CrowdAssignment]:
        return super().get_queryset(request).filter(campaign__in=managed_campaigns(request.user).values("pk"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
