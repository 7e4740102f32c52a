"""The one application error type: services raise it; views, API and commands render it."""

from __future__ import annotations


class ApplicationError(Exception):
    """A refused request: `code` is stable for clients, `message` is for people, `status` for HTTP."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class Forbidden(ApplicationError):
    code = "forbidden"
    status = 403


class Gone(ApplicationError):
    code = "gone"
    status = 410


class NotFound(ApplicationError):
    code = "not_found"
    status = 404


class Conflict(ApplicationError):
    code = "conflict"
    status = 409


class StorageUnavailable(ApplicationError):
    """The media storage could not be reached (a connection refused, reset or timed out): try again shortly.

    Not a missing file: what is missing stays missing, while this passes once the storage is back.
    """

    code = "storage_unavailable"
    status = 503
    retry_after_s = 5
