"""The security tester's finding, through a real server and its API: an administrator makes an
account, sets its password, puts it in the approver group, asks to disable control and approves
as that account. The vote is refused as separation of duties and control stays on.

The administrator who tries it is bob, made a second administrator: the demo's admin made every
demo account (bob included), so it steers them all and a request of its own would be refused as
soon as it is filed, whoever set the policy up. Bob steers neither the demo's admin nor its
accounts, so the admin sets the guard up and bob's request is accepted: the refusal this test
asserts is the vote of the account bob made."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.e2e.conftest import Server, start_server, token_for

DISABLE = "jitpam\\Disable-ElevatedAccessControl"
PASSWORD = "mallory-password-2026"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("sod"), "--demo")
    yield server
    server.stop()


def client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_an_admin_cannot_approve_their_own_disable_through_an_account_they_made(
    server: Server,
) -> None:
    with ExitStack() as clients:
        admin = clients.enter_context(client(server, token_for(server, "admin@contoso.com")))
        bob = clients.enter_context(client(server, token_for(server, "bob@contoso.com")))
        disable_through_mallory(server, admin, bob, clients)


def disable_through_mallory(
    server: Server, admin: httpx.Client, bob: httpx.Client, clients: ExitStack
) -> None:
    # Bob is made a second administrator; the demo's admin puts disabling behind pamapprovers:
    # bob did not choose that setup, so his request is accepted and waits for an independent vote
    # (carol's would count).
    assert admin.post(
        "/assignments",
        json={"role_group": "jitpam\\Global Administrator", "user": "bob@contoso.com"},
    ).is_success
    made = admin.post(
        "/policies",
        json={
            "type": "task",
            "target": DISABLE,
            "approval_type": "manual",
            "approver_group": "pamapprovers",
        },
    )
    assert made.status_code == 201, made.text

    # Bob makes mallory, sets her password, puts her among the approvers and asks to disable.
    assert bob.post("/users", json={"upn": "mallory@contoso.com"}).is_success
    assert bob.put("/users/mallory@contoso.com/password", json={"password": PASSWORD}).is_success
    assert bob.put("/groups/pamapprovers/members/mallory@contoso.com").is_success
    asked = bob.post(
        "/requests",
        json={"type": "task", "target": DISABLE, "reason": "maintenance", "duration_hours": 1},
    )
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]

    signed_in = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"user": "mallory@contoso.com", "password": PASSWORD},
    )
    assert signed_in.status_code == 200, signed_in.text
    mallory = clients.enter_context(client(server, signed_in.json()["token"]))
    voted = mallory.post(f"/requests/{request_id}/approve", json={"comment": "sure"})
    assert voted.status_code == 403, voted.text
    assert voted.headers["content-type"].startswith("application/problem+json")
    assert voted.json()["code"] == "separation_of_duties"
    assert "mallory@contoso.com" in voted.json()["detail"]

    assert bob.post("/control/disable").status_code == 403
    assert admin.get("/control").json()["enabled"] is True
    assert admin.get(f"/requests/{request_id}").json()["status"] == "pending"
    refused = admin.get(
        "/audit", params={"operation": "Approve-ElevatedAccessRequest", "outcome": "refused"}
    ).json()["items"]
    assert [r["details"]["error"] for r in refused] == ["separation_of_duties"]

    # The scene is sound: an approver bob had no hand in (carol) can still approve the request.
    carol = clients.enter_context(client(server, token_for(server, "carol@contoso.com")))
    approved = carol.post(f"/requests/{request_id}/approve", json={"comment": "ok"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
