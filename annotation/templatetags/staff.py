"""Template filters for the staff pages' links (the nav shows the dashboard to staff and researchers)."""

from __future__ import annotations

from django import template

from annotation import permissions

register = template.Library()


@register.filter
def can_use_staff_pages(user: permissions.User) -> bool:
    return permissions.can_use_staff_pages(user)
