"""The exports app's refusals."""

from __future__ import annotations

from core.errors import ApplicationError


class ExportError(ApplicationError):
    code = "export_invalid"
