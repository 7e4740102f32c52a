"""Routes of the staff pages, mounted under /staff/."""

from django.urls import path

from arena import participant_staff_views, staff_views

urlpatterns = [
    path("", staff_views.dashboard, name="staff-dashboard"),
    path("campaigns/new/", staff_views.campaign_new, name="staff-campaign-new"),
    path("campaigns/<slug:slug>/", staff_views.campaign_detail, name="staff-campaign"),
    path("campaigns/<slug:slug>/progress.json", staff_views.campaign_progress, name="staff-campaign-progress"),
    path("campaigns/<slug:slug>/status/", staff_views.campaign_status, name="staff-campaign-status"),
    path("campaigns/<slug:slug>/reconcile/", staff_views.campaign_reconcile, name="staff-campaign-reconcile"),
    path("campaigns/<slug:slug>/import/", staff_views.campaign_import, name="staff-campaign-import"),
    path(
        "campaigns/<slug:slug>/participants/",
        participant_staff_views.participants_page,
        name="staff-campaign-participants",
    ),
    path(
        "campaigns/<slug:slug>/participants/settings/",
        participant_staff_views.participants_settings,
        name="staff-campaign-participants-settings",
    ),
    path(
        "campaigns/<slug:slug>/participants/questions/",
        participant_staff_views.question_save,
        name="staff-campaign-question-save",
    ),
    path(
        "campaigns/<slug:slug>/participants/questions/<slug:key>/retire/",
        participant_staff_views.question_retire,
        name="staff-campaign-question-retire",
    ),
    path(
        "campaigns/<slug:slug>/participants/demographics/",
        participant_staff_views.demographics_import,
        name="staff-campaign-demographics",
    ),
    path(
        "campaigns/<slug:slug>/participants/withdrawals/",
        participant_staff_views.withdrawal_request,
        name="staff-campaign-withdrawal",
    ),
    path(
        "campaigns/<slug:slug>/count-only-reconciled/",
        staff_views.campaign_count_only_reconciled,
        name="staff-campaign-count-only-reconciled",
    ),
]
