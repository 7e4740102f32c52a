"""Admin hook for exports: an action for the campaign admin that opens the staff export page of one campaign."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect

from annotation.models import Campaign


@admin.action(description="Export preference data of the selected campaign")
def export_preferences_action(
    modeladmin: admin.ModelAdmin[Campaign], request: HttpRequest, queryset: QuerySet[Campaign]
) -> HttpResponseRedirect | None:
    """Add to CampaignAdmin.actions; the export page itself lives at exports:campaign."""
    campaigns = list(queryset[:2])
    if len(campaigns) != 1:
        modeladmin.message_user(request, "Select exactly one campaign to export.", level=messages.WARNING)
        return None
    return redirect("exports:campaign", slug=campaigns[0].slug)


# Exports sit downstream of annotation, so this app adds its action to the campaign admin,
# rather than the campaign admin importing exports.
_campaign_admin = admin.site._registry.get(Campaign)
if _campaign_admin is not None:
    _actions = list(_campaign_admin.actions or [])
    if export_preferences_action not in _actions:
        _campaign_admin.actions = [*_actions, export_preferences_action]
