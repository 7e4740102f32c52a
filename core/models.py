"""Shared model base classes and the idempotent upsert used by seeding commands."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


def sync_object(model: type[M], *, lookup: dict[str, Any], values: dict[str, Any]) -> tuple[M, str]:
    """Get or create the row at `lookup` and bring `values` up to date; write only what differs.

    Returns the object and "created", "updated" or "unchanged", so seeding commands can be
    idempotent in the strict sense: a second run issues no UPDATE at all.
    """
    obj = model._default_manager.filter(**lookup).first()
    if obj is None:
        return model._default_manager.create(**lookup, **values), "created"
    changed = [field for field, value in values.items() if getattr(obj, field) != value]
    if not changed:
        return obj, "unchanged"
    for field in changed:
        setattr(obj, field, values[field])
    obj.full_clean()
    obj.save()
    return obj, "updated"
