"""Who may manage which campaign: the one place the staff / researcher / participant rules live.

- Superusers, and staff who are not researchers, manage every campaign.
- A researcher (a member of the "researcher" group) manages only the campaigns they own. Django's
  admin only lets staff in, so researchers are staff accounts too; the group narrows what they reach.
- Everybody else only votes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from annotation.models import Campaign
from core.errors import NotFound

RESEARCHER_GROUP = "researcher"

# What the group may do in the admin, as (app label, model name, actions). Rows are further
# narrowed to the researcher's own campaigns by CampaignAdmin and CriterionAdmin.
RESEARCHER_MODEL_PERMISSIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("annotation", "campaign", ("add", "change", "view")),
    ("annotation", "criterion", ("add", "change", "delete", "view")),
    ("generation", "generator", ("view",)),
    ("generation", "prompt", ("add", "view")),
)

User = AbstractBaseUser | AnonymousUser
ROLE_CACHE_KEY = "_poparena_is_researcher"


def is_researcher(user: User) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    # Asked several times per request (nav, view, admin): remember the answer on the user object.
    cached = user.__dict__.get(ROLE_CACHE_KEY)
    if cached is None:
        cached = user.__dict__[ROLE_CACHE_KEY] = Group.objects.filter(name=RESEARCHER_GROUP, user__pk=user.pk).exists()
    return bool(cached)


def manages_every_campaign(user: User) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return bool(getattr(user, "is_staff", False)) and not is_researcher(user)


def can_use_staff_pages(user: User) -> bool:
    """May open the staff dashboard and create campaigns."""
    return manages_every_campaign(user) or is_researcher(user)


def can_manage_campaign(user: User, campaign: Campaign) -> bool:
    """May see the campaign's progress and quality report, edit it, and open, pause or close it."""
    if manages_every_campaign(user):
        return True
    return is_researcher(user) and campaign.owner_id is not None and campaign.owner_id == user.pk


def managed_campaigns(user: User) -> QuerySet[Campaign]:
    """Every campaign `user` may manage (none for a participant)."""
    if manages_every_campaign(user):
        return Campaign.objects.all()
    if is_researcher(user):
        return Campaign.objects.filter(owner_id=user.pk)
    return Campaign.objects.none()


View = TypeVar("View", bound=Callable[..., HttpResponseBase])


def staff_area(view: View) -> View:
    """Every staff page: others log in first, or are refused if they are only participants.

    A campaign is reached through annotation.selectors.get_managed_campaign; its NotFound (no such
    campaign, or one this user does not manage) answers 404 here, so a campaign's existence does not leak.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_use_staff_pages(request.user):
            raise PermissionDenied("staff and researchers only")
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from None

    return cast(View, wrapped)


class StaffArea(BasePermission):
    """`staff_area` for the JSON API: staff and researchers; the campaign is then looked up as one they manage."""

    message = "staff and researchers only"

    def has_permission(self, request: Request, view: Any) -> bool:
        return can_use_staff_pages(request.user)
