"""Every API route x (anonymous, requester, approver, admin, another organization's admin).

The table below must name every route the server publishes in its OpenAPI document: a new route
without a row fails the test, so nothing is left out of the matrix.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import FAST, JITPAM, Server, start_server, token_for

MOVE = "Exchange\\New-MoveRequest"
R, P, D, OUT = "requester", "approver", "admin", "outsider"


@dataclass
class Scene:
    server: Server
    tokens: dict[str, str]
    ids: dict[str, str]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("matrix")
    server = start_server(tmp, "--demo", extra_env={"JITPAM_WEBHOOK_ALLOW_PRIVATE": "true"})
    db = f"sqlite:///{server.data_dir / 'jitpam.db'}"
    made = subprocess.run(
        [
            JITPAM,
            "org",
            "create",
            "fabrikam",
            "--admin",
            "admin@fabrikam.com",
            "--db",
            db,
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**server.env, **FAST},
        check=True,
        timeout=60,
    )
    tokens = {
        R: token_for(server, "alice@contoso.com"),
        P: token_for(server, "bob@contoso.com"),
        D: token_for(server, "admin@contoso.com"),
        OUT: json.loads(made.stdout)["token"],
    }
    api = httpx.Client(
        base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {tokens[R]}"}
    )
    request = api.post(
        "/requests", json={"type": "task", "target": MOVE, "reason": "matrix"}
    ).json()
    token = api.post("/tokens", json={"name": "matrix"}).json()
    admin = httpx.Client(
        base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {tokens[D]}"}
    )
    policy = next(p for p in admin.get("/policies").json()["items"] if p["target"] == MOVE)
    hook = admin.post(
        "/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["request.created"]}
    )
    message = admin.get("/outbox").json()["items"][0]
    ids = {
        "request_id": request["id"],
        "token_id": token["id"],
        "policy_id": policy["id"],
        "authorization_id": request["id"],
        "upn": "alice@contoso.com",
        "webhook_id": hook.json()["id"],
        "message_id": message["id"],
        "name": "pamapprovers",
    }
    yield Scene(server, tokens, ids)
    api.close()
    admin.close()
    server.stop()


ANY_OK = "2xx"
# (method, path, body, expected status per caller). Write routes are not run as the admin here
# (the rest of the suite covers what they do); every other cell is run.
ROUTES: list[tuple[str, str, Any, dict[str, int | str]]] = [
    ("GET", "/me", None, {R: 200, P: 200, D: 200, OUT: 200}),
    (
        "PUT",
        "/me/password",
        {"password": "x" * 12, "current_password": "wrong-password"},
        {R: 403, P: 403, D: 403, OUT: 204},
    ),
    ("PUT", "/users/{upn}/password", {"password": "y" * 14}, {R: 403, P: 403, OUT: 404}),
    ("POST", "/tokens", {"user": "sys@contoso.com"}, {R: 403, P: 403, OUT: 404}),
    ("GET", "/tokens", None, {R: 200, P: 200, D: 200, OUT: 200}),
    ("DELETE", "/tokens/{token_id}", None, {P: 404, OUT: 404}),
    ("GET", "/users", None, {R: 200, P: 200, D: 200, OUT: 200}),
    ("POST", "/users", {"upn": "mallory@contoso.com"}, {R: 403, P: 403}),
    ("GET", "/users/{upn}", None, {R: 200, P: 200, D: 200, OUT: 404}),
    ("PATCH", "/users/{upn}", {"enabled": False}, {R: 403, P: 403, OUT: 404}),
    ("GET", "/groups", None, {R: 200, P: 200, D: 200, OUT: 200}),
    ("POST", "/groups", {"name": "rogue"}, {R: 403, P: 403}),
    ("GET", "/groups/{name}", None, {R: 200, P: 200, D: 200, OUT: 404}),
    ("DELETE", "/groups/{name}", None, {R: 403, P: 403, OUT: 404}),
    ("PUT", "/groups/{name}/members/{upn}", None, {R: 403, P: 403, OUT: 404}),
    ("DELETE", "/groups/{name}/members/{upn}", None, {R: 403, P: 403, OUT: 404}),
    ("GET", "/roles", None, {R: 200, P: 200, D: 200, OUT: 200}),
    ("GET", "/roles/{role}", None, {R: 200, P: 200, D: 200, OUT: 200}),
    (
        "POST",
        "/assignments",
        {"role": "Exchange\\Mailbox Search", "user": "alice@contoso.com"},
        {R: 403, P: 403, OUT: 404},
    ),
    (
        "POST",
        "/assignments/remove",
        {"role": "Exchange\\Move Mailboxes", "user": "alice@contoso.com"},
        {R: 403, P: 403, OUT: 404},
    ),
    ("GET", "/catalog/tasks", None, {R: 200, P: 200, D: 200, OUT: 200}),
    ("POST", "/catalog/import", {"text": 'scope = "Rogue"'}, {R: 403, P: 403}),
    ("GET", "/control", None, {R: 200, P: 200, D: 200, OUT: 200}),
    ("POST", "/control/enable", {"admin_group": "pamapprovers"}, {R: 403, P: 403, OUT: 404}),
    ("POST", "/control/disable", None, {R: 403, P: 403}),
    ("PATCH", "/control/config", {"pending_hours": 2}, {R: 403, P: 403}),
    ("GET", "/policies", None, {R: 200, P: 200, D: 200, OUT: 200}),
    (
        "POST",
        "/policies",
        {"type": "task", "target": "Exchange\\Set-Mailbox", "approval_type": "auto"},
        {R: 403, P: 403},
    ),
    ("GET", "/policies/{policy_id}", None, {R: 200, P: 200, D: 200, OUT: 404}),
    ("PATCH", "/policies/{policy_id}", {"approval_type": "auto"}, {R: 403, P: 403, OUT: 404}),
    ("DELETE", "/policies/{policy_id}", None, {R: 403, P: 403, OUT: 404}),
    ("GET", "/requests", None, {R: 200, P: 200, D: 200, OUT: 200}),
    ("POST", "/requests", {"type": "task", "target": MOVE, "reason": "again"}, {P: 403, OUT: 409}),
    ("GET", "/requests/{request_id}", None, {R: 200, P: 200, D: 200, OUT: 404}),
    ("POST", "/requests/{request_id}/approve", {"comment": "x"}, {R: 403, OUT: 404}),
    ("POST", "/requests/{request_id}/deny", {"comment": "x"}, {R: 403, OUT: 404}),
    ("POST", "/requests/{request_id}/cancel", None, {P: 403, OUT: 404}),
    ("GET", "/requests/{request_id}/verify", None, {R: 200, P: 200, D: 200, OUT: 404}),
    ("GET", "/authorizations", None, {R: 200, P: 200, D: 200, OUT: 200}),
    ("POST", "/authorizations/{authorization_id}/revoke", {"comment": "x"}, {R: 409, OUT: 404}),
    ("POST", "/check", {"task": MOVE}, {R: 200, P: 200, D: 200, OUT: 200}),
    # The other organization's checker learns nothing: to it, contoso's users do not exist.
    (
        "POST",
        "/check",
        {"task": MOVE, "user": "sys@contoso.com"},
        {R: 403, P: 403, D: 200, OUT: 200},
    ),
    ("POST", "/check/batch", {"checks": [{"task": MOVE}] * 3}, {R: 200, P: 200, D: 200, OUT: 200}),
    (
        "POST",
        "/check/batch",
        {"checks": [{"task": MOVE}, {"task": MOVE, "user": "sys@contoso.com"}]},
        {R: 403, P: 403, D: 200, OUT: 200},
    ),
    # A data access check: about oneself, anyone may ask; about another, an Access Checker.
    (
        "POST",
        "/check",
        {"service": "Office365", "scope": "Mail.Read", "resource": "mailbox:alice@contoso.com"},
        {R: 200, P: 200, D: 200, OUT: 200},
    ),
    (
        "POST",
        "/check",
        {
            "service": "Office365",
            "scope": "Mail.Read",
            "resource": "mailbox:alice@contoso.com",
            "user": "sys@contoso.com",
        },
        {R: 403, P: 403, D: 200, OUT: 200},
    ),
    # Installing an application: alice is an Application Installer, but no policy covers
    # Mail.Send; bob is none; the other organization has access control off.
    (
        "POST",
        "/applications",
        {
            "name": "Matrix App",
            "service": "Office365",
            "scopes": ["Mail.Send"],
            "resources": ["group:helpdesk"],
            "reason": "matrix",
        },
        {R: 422, P: 403, OUT: 409},
    ),
    ("GET", "/audit", None, {R: 403, P: 403, D: 200, OUT: 200}),
    ("GET", "/audit/export", None, {R: 403, P: 403, D: 200, OUT: 200}),
    ("POST", "/audit/checkpoint", None, {R: 403, P: 403}),
    ("POST", "/audit/verify", {}, {R: 403, P: 403, D: 200, OUT: 200}),
    ("GET", "/webhooks", None, {R: 403, P: 403, D: 200, OUT: 200}),
    (
        "POST",
        "/webhooks",
        {"url": "http://127.0.0.1:9/h", "events": ["request.created"]},
        {R: 403, P: 403},
    ),
    ("POST", "/webhooks/{webhook_id}/test", None, {R: 403, P: 403, OUT: 404}),
    ("DELETE", "/webhooks/{webhook_id}", None, {R: 403, P: 403, OUT: 404}),
    ("GET", "/outbox", None, {R: 403, P: 403, D: 200, OUT: 200}),
    ("POST", "/outbox/{message_id}/retry", None, {R: 403, P: 403, OUT: 404}),
    # This server has no connectors configured: those allowed learn so (404).
    ("GET", "/connectors", None, {R: 403, P: 403, D: 404, OUT: 404}),
    ("GET", "/connectors/{name}", None, {R: 403, P: 403, D: 404, OUT: 404}),
    ("POST", "/connectors/{name}/reconcile", {"dry_run": True}, {R: 403, P: 403, OUT: 404}),
    ("GET", "/tasks", None, {R: 200, P: 200, D: 200, OUT: 200}),
    ("GET", "/tasks/{task}", None, {R: 200, P: 200, D: 200, OUT: 404}),
    # Nobody here may run it: alice has no approval, bob and admin hold no Exchange role, and
    # the other organization has no such task.
    (
        "POST",
        "/tasks/{task}/run",
        {"parameters": {"Identity": "alice@contoso.com", "TargetDatabase": "DB01"}},
        {R: 403, P: 403, D: 403, OUT: 404},
    ),
    # Customer Lockbox: no operator is designated here, nobody holds Lockbox Requester, and
    # {request_id} names an access request, which is no lockbox request.
    (
        "POST",
        "/lockbox/requests",
        {
            "customer": "fabrikam",
            "service": "Exchange",
            "reason": "matrix",
            "case_reference": "EXSR1",
            "duration_hours": 1,
        },
        {R: 403, P: 403, D: 403, OUT: 403},
    ),
    ("GET", "/lockbox/requests", None, {R: 200, P: 200, D: 200, OUT: 200}),
    ("GET", "/lockbox/requests/{request_id}", None, {R: 404, P: 404, D: 404, OUT: 404}),
    (
        "POST",
        "/lockbox/requests/{request_id}/decision",
        {"decision": "Approve"},
        {R: 404, P: 404, D: 404, OUT: 404},
    ),
    (
        "POST",
        "/lockbox/requests/{request_id}/revoke",
        {"comment": "x"},
        {R: 404, P: 404, D: 404, OUT: 404},
    ),
    ("POST", "/auth/logout", None, {}),
]
UNAUTHENTICATED = {"/auth/login"}


def _fill(path: str, ids: dict[str, str]) -> str:
    return (
        path.replace("{role}", "Exchange%5CMove%20Mailboxes")
        .replace("{task}", "Exchange%5CNew-MoveRequest")
        .format(**ids)
    )


def test_every_published_route_has_a_row(scene: Scene) -> None:
    published = httpx.get(scene.server.url + "/openapi.json").json()["paths"]
    routes = {(m.upper(), p.removeprefix("/api/v1")) for p, ops in published.items() for m in ops}
    listed = {(m, p.replace("{role}", "{name}")) for m, p, _, _ in ROUTES} | {
        ("POST", "/auth/login")
    }
    api_routes = {r for r in routes if r[1].startswith("/")} - {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    }
    assert api_routes - listed == set()


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
def test_route_answers_each_caller_as_the_rules_say(
    scene: Scene, method: str, path: str, body: Any, expected: dict[str, int | str]
) -> None:
    url = scene.server.url + "/api/v1" + _fill(path, scene.ids)
    anonymous = httpx.request(method, url, json=body)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    for caller, status in expected.items():
        response = httpx.request(
            method, url, json=body, headers={"Authorization": f"Bearer {scene.tokens[caller]}"}
        )
        assert response.status_code == status, f"{caller}: {response.status_code} {response.text}"
        # The outsider's own audit log records its refused attempts, naming what it typed.
        if caller == OUT and response.status_code == 200 and not path.startswith("/audit"):
            if path == "/check" and body.get("user"):
                assert response.json()["reason"] == "unknown_user"
            leaked = {v for k, v in scene.ids.items() if k != "name"} & set(
                _strings(response.json())
            )
            assert not leaked, f"another organization's admin saw {leaked}"
            assert "contoso.com" not in response.text


def _strings(doc: Any) -> Iterator[str]:
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for v in doc.values():
            yield from _strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _strings(v)
