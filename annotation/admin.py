"""Admin for campaigns (with their criteria), and participants; researchers reach only their own campaigns."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.models import (
    Answer,
    Campaign,
    ConsentDecision,
    ConsentVersion,
    Criterion,
    CrowdAssignment,
    Participant,
    Question,
    QuestionnaireResponse,
)
from annotation.permissions import can_manage_campaign, managed_campaigns, manages_every_campaign
from annotation.selectors import visible_prompts
from annotation.services import (
    check_campaign_members,
    check_crowd_setup,
    set_campaign_status,
    update_campaign_members,
)
from core.errors import ApplicationError
from generation.admin import PromptAdmin
from generation.models import Prompt


class CriterionInline(admin.TabularInline):
    model = Criterion
    extra = 0
    fields = ["position", "key", "question"]


class CampaignAdminForm(forms.ModelForm):
    """Checks generators and prompts as the services do (annotation.services.check_campaign_members), as form errors."""

    requested_by: Any = None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if "generators" in data and "prompts" in data:
            try:
                check_campaign_members(
                    campaign=self.instance,
                    slug=data.get("slug") or self.instance.slug,
                    generators=data["generators"],
                    prompts=data["prompts"],
                    user=self.requested_by,
                )
            except ApplicationError as error:
                raise forms.ValidationError(error.message) from error
        return data

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]  # Django's hook, not in the stubs; the instance now holds the edits
        if self.instance.pk is not None and self.instance.status in (Campaign.Status.OPEN, Campaign.Status.PAUSED):
            # A running crowd campaign keeps what it was opened with (its study id, quota, completion code).
            try:
                check_crowd_setup(self.instance)
            except ApplicationError as error:
                self.add_error(None, error.message)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """Status changes only through the actions and membership only through annotation.services, as elsewhere.

    The status is read-only here: opening checks generators, prompts, criteria and image sizes and starts
    generation (set_campaign_status), so it is done with the actions above the list, never by a saved field.
    """

    form = CampaignAdminForm
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
    readonly_fields = ["status", "invite_token", "created_at", "updated_at"]
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

    def get_form(self, request: HttpRequest, obj: Campaign | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"requested_by": request.user})

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "prompts":
            # A researcher picks among the prompts of their own campaigns and shared ones (the service checks too).
            kwargs["queryset"] = visible_prompts(request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Prompts and generators are saved here, after the campaign row: only now is the demand known.
        super().save_related(request, form, formsets, change)
        update_campaign_members(
            campaign=form.instance,
            generators=form.cleaned_data["generators"],
            prompts=form.cleaned_data["prompts"],
            user=request.user,
        )


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    # Flags are per campaign (CampaignParticipation, edited in its admin through arena.participation).
    list_display = ["id", "kind", "user", "created_at", "last_seen_at"]
    list_filter = ["kind"]
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


class CampaignRecordAdmin(admin.ModelAdmin):
    """Read-only: a campaign's records of its participants (consent, questionnaire), written only by services.

    Staff who manage the campaign see them here; changes go through the participants' staff page, which
    keeps versions and recounts what they change.
    """

    campaign_path = "campaign"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        managed = managed_campaigns(request.user).values("pk")
        return super().get_queryset(request).filter(**{f"{self.campaign_path}__in": managed})

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ConsentVersion)
class ConsentVersionAdmin(CampaignRecordAdmin):
    list_display = ["campaign", "version", "created_at"]


@admin.register(ConsentDecision)
class ConsentDecisionAdmin(CampaignRecordAdmin):
    list_display = ["campaign", "participant", "version", "accepted", "decided_at"]


@admin.register(Question)
class QuestionAdmin(CampaignRecordAdmin):
    list_display = ["campaign", "key", "version", "is_current", "kind", "required", "sensitive"]


@admin.register(QuestionnaireResponse)
class QuestionnaireResponseAdmin(CampaignRecordAdmin):
    list_display = ["campaign", "participant", "asked_at"]


@admin.register(Answer)
class AnswerAdmin(CampaignRecordAdmin):
    campaign_path = "response__campaign"
    list_display = ["response", "question", "source", "answered_at"]


admin.site.unregister(Prompt)


class StudyPromptForm(forms.ModelForm):
    """A new prompt of a researcher is theirs: the same caption and category twice in their prompts is named here."""

    requested_by: Any = None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        owner = self.instance.owner_id if self.instance.pk else self._new_owner()
        if owner is not None and "caption" in data:
            twins = Prompt.objects.filter(owner_id=owner, caption=data["caption"], category=data.get("category", ""))
            if twins.exclude(pk=self.instance.pk).exists():
                raise forms.ValidationError("you already have a prompt with this caption and category")
        return data

    def _new_owner(self) -> int | None:
        user = self.requested_by
        return None if user is None or manages_every_campaign(user) else user.pk


@admin.register(Prompt)
class StudyPromptAdmin(PromptAdmin):
    """generation's prompt admin, narrowed to the prompts a user may see (annotation.selectors.visible_prompts).

    Registered here because who sees a prompt depends on campaigns, which generation knows nothing of.
    A researcher's new prompt is their own; only staff who manage every campaign mark one shared.
    """

    form = StudyPromptForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[Prompt]:
        return super().get_queryset(request).filter(pk__in=visible_prompts(request.user).values("pk"))

    def get_form(self, request: HttpRequest, obj: Prompt | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"requested_by": request.user})

    def get_readonly_fields(self, request: HttpRequest, obj: Prompt | None = None) -> Any:
        fields = [*super().get_readonly_fields(request, obj), "owner"]
        return fields if manages_every_campaign(request.user) else [*fields, "is_shared"]

    def save_model(self, request: HttpRequest, obj: Prompt, form: Any, change: bool) -> None:
        if not change and not manages_every_campaign(request.user):
            obj.owner = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
