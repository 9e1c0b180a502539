"""Schemathesis over the published OpenAPI document, against real ``jitpam serve`` processes.

On each database, as the demo administrator, as a plain requester and without a token: no answer
is a server error, each status is one the document lists for the operation, and each body and
content type is what the document says. The suite's run is small and derandomized (the same cases
every time); ``make fuzz`` runs the same test with many more cases, unseeded (``JITPAM_FUZZ=1``).

Schemathesis's pytest plugin is not used (its lazy schemas break on pytest 9.2's node ids): each
operation's cases come from its Hypothesis strategy, in schemathesis's positive and negative
generation modes, and are checked by schemathesis's own checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import BACKENDS
from tests.e2e.conftest import DEMO_PASSWORD, Server

FUZZ = os.environ.get("JITPAM_FUZZ") == "1"
# Valid cases an operation (and one invalid): few in the suite (57 operations, six runs; a case
# costs some 40 ms of both processes), many of each under make fuzz.
EXAMPLES = {"admin": 2, "requester": 1, "anonymous": 1}
CALLERS = {"admin": "admin@contoso.com", "requester": "alice@contoso.com", "anonymous": None}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,  # a request the document forbids is refused (4xx)
]
# Signing out revokes the token the rest of the run is made with.
EXCLUDED = {("POST", "/api/v1/auth/logout")}


def load_document(server: Server) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        # The test sends the caller's own token (or none): no made-up credentials.
        {"generation": {"with-security-parameters": False}}
    )
    loaded = schemathesis.openapi.from_url(server.url + "/openapi.json", config=config)
    loaded.config.update(base_url=server.url)
    return loaded


def sign_in(server: Server, upn: str) -> dict[str, str]:
    """A session: its token and the token's id."""
    answer = httpx.post(
        server.url + "/api/v1/auth/login", json={"user": upn, "password": DEMO_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    session: dict[str, str] = answer.json()
    return session


def locks_out(case: schemathesis.Case, session: dict[str, str] | None) -> bool:
    """Whether the case would take the test's callers their access: revoking the session's
    token, disabling a test user or setting their password, taking them out of a group or a role
    (with ``make fuzz``'s many cases, a real name or id can come up)."""
    users = {u for u in CALLERS.values() if u}
    named = {str(v).strip().lower() for v in (case.path_parameters or {}).values()}
    if isinstance(case.body, dict):
        named.add(str(case.body.get("user", "")).strip().lower())
    if case.method == "GET":
        return False
    if case.path == "/api/v1/tokens/{token_id}":
        return session is not None and session["id"] in named
    return bool(named & users) and case.path.startswith(
        ("/api/v1/users/", "/api/v1/groups/", "/api/v1/assignments/remove")
    )


def negatable(operation: schemathesis.APIOperation) -> bool:
    """Whether the document forbids any request to the operation: a body, a query parameter or
    a path parameter that is not just any string (an operation taking only a free-text name in
    its path has no request the document forbids, so no negative case to make)."""
    raw = operation.definition.raw
    return "requestBody" in raw or any(
        p["in"] == "query" or p["schema"] != {"type": "string", "title": p["schema"].get("title")}
        for p in raw.get("parameters", [])
    )


def answers_as_documented(
    operation: schemathesis.APIOperation,
    mode: schemathesis.GenerationMode,
    examples: int,
    session: dict[str, str] | None,
) -> None:
    headers = {"Authorization": f"Bearer {session['token']}"} if session else {}

    @hypothesis.settings(
        max_examples=examples,
        derandomize=not FUZZ,  # the suite's cases are the same every run
        database=None,
        deadline=None,
        print_blob=FUZZ,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        hypothesis.assume(not locks_out(case, session))
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    run()


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_server_answers_as_its_document_says(
    demo_server_on: Callable[[str], Server], backend: str, caller: str
) -> None:
    server = demo_server_on(backend)
    upn = CALLERS[caller]
    session = sign_in(server, upn) if upn else None
    examples = int(os.environ.get("JITPAM_FUZZ_EXAMPLES", "100")) if FUZZ else EXAMPLES[caller]
    modes = [schemathesis.GenerationMode.POSITIVE]
    if session is not None:  # (without a token every operation but four answers 401 first)
        modes.append(schemathesis.GenerationMode.NEGATIVE)
    failures: list[str] = []
    tried = 0
    for found in load_document(server).get_all_operations():
        operation = found.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        tried += 1
        for mode in modes:
            if mode == schemathesis.GenerationMode.NEGATIVE and not negatable(operation):
                continue
            many = examples if mode == schemathesis.GenerationMode.POSITIVE or FUZZ else 1
            try:
                answers_as_documented(operation, mode, many, session)
            except Exception as failure:  # every operation is tried; all failures are reported
                failures.append(f"{operation.label} ({mode.value}): {failure}")
    assert tried > 50
    assert not failures, "\n\n".join(failures)
