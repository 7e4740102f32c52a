"""OpenAPI post-processing: the error responses every operation can give, documented once here."""

from __future__ import annotations

from typing import Any

ERROR_REF = {"$ref": "#/components/schemas/Error"}
METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
COMMON = {
    "401": "the API token is wrong, revoked or expired",
    "403": "not allowed: staff only, a missing CSRF token, or an API token without the scope needed",
    "429": "throttled: too many requests from this participant, address or token (see Retry-After)",
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def add_common_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every operation may answer 400; authenticated ones also 401, 403 and 429; 415 with a body; 404 by path."""
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            # core.middleware.RejectNulMiddleware answers any request carrying a NUL character.
            responses.setdefault("400", _error("bad input, e.g. a NUL character in the path, query string or body"))
            if not operation.get("security"):
                continue  # the health check: no authentication, never throttled
            for status, description in COMMON.items():
                responses.setdefault(status, _error(description))
            if "requestBody" in operation:
                responses.setdefault("400", _error("the request body is not valid"))
                responses.setdefault("415", _error("the request body's media type is not one this endpoint reads"))
            if "{" in path:
                responses.setdefault("404", _error("nothing at this path: an unknown slug, token or name"))
    return result
