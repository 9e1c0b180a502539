"""The OpenAPI document, completed from what kind of operation each one is.

FastAPI describes a route's parameters, body and success answer. What it cannot see, this module
adds to the generated document, by rule rather than route by route:

- every operation needs the bearer token, except those that say ``openapi_extra=PUBLIC``;
- every error answer is a ``Problem`` (``application/problem+json``), 422 included;
- the statuses an operation can answer follow from its kind (``error_statuses``). A route declares
  only what no rule can know (sign-in's 429, readiness's 503, an export's content types).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from jitpam.api.problems import TITLES, Problem

BEARER = "bearer"
PUBLIC: dict[str, Any] = {"security": []}  # (openapi_extra) an operation without a token
WRITES = {"post", "put", "patch", "delete"}
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
WHY = {
    401: "No valid bearer token (header WWW-Authenticate: Bearer)",
    403: "The caller may not do this",
    404: "No such thing in the caller's organization (nor one the caller may not see)",
    409: "The state moved on, or the change repeats something that exists",
    413: "The request body is larger than 4 MB",
    422: "The input is malformed, breaks a rule about its form, or holds text jitpam does not "
    "accept (the detail names the field)",
    503: "The database (or the audit log) failed; nothing was changed",
}


def error_statuses(*, api: bool, public: bool, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer, from its kind."""
    takes_input = bool(operation.get("parameters")) or "requestBody" in operation
    statuses = {422}  # every query string is checked, even on routes that take none
    if "requestBody" in operation:
        statuses.add(413)
    if api:
        statuses.add(503)  # every API operation reads the database
    if not public:
        statuses |= {401, 403}
        if takes_input:
            statuses.add(404)  # the input names a user, group, role, task or id
        if method in WRITES:
            statuses.add(409)
    return statuses


def complete(document: dict[str, Any], *, api: str) -> dict[str, Any]:
    """``document`` with the security scheme, the Problem schema and every operation's error
    answers (the change is made in place)."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A jitpam token (POST /api/v1/auth/login, POST /api/v1/tokens) or a JWT "
        "from the configured OIDC issuer",
    }
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema()
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            operation.setdefault("security", [{BEARER: []}])
            public = operation["security"] == []
            responses = operation.setdefault("responses", {})
            declared = {int(s) for s in responses if int(s) >= 400}
            wanted = error_statuses(
                api=path.startswith(api + "/"), public=public, method=method, operation=operation
            )
            for status in sorted(wanted | declared):
                answer = responses.setdefault(str(status), {})
                if status not in declared or answer.get("description") == "Validation Error":
                    answer["description"] = WHY.get(status, TITLES.get(status, "Error"))
                answer["content"] = PROBLEM
                if status == 401:
                    answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


class DocumentedAPI(FastAPI):
    """A FastAPI app whose document is completed (``complete``) the first time it is asked for."""

    def __init__(self, *, api: str, **settings: Any) -> None:
        super().__init__(**settings)
        self.api = api

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = complete(super().openapi(), api=self.api)
        return self.openapi_schema
