"""The Python SDK against a real server: typed calls, the guard, and no allow without an answer."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest

from jitpam.sdk import AccessDenied, ApiError, AsyncClient, Client, Unreachable, calls, guard
from tests.e2e.conftest import Server, free_port, start_server, token_for

MOVE = "Exchange\\New-MoveRequest"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("sdk"), "--demo")
    yield s
    s.stop()


def test_request_approve_check_and_revoke_with_typed_answers(server: Server) -> None:
    alice = Client(server.url, token_for(server, "alice@contoso.com"))
    bob = Client(server.url, token_for(server, "bob@contoso.com"))
    with alice, bob:
        before = alice.check(MOVE)
        assert not before.allowed
        assert before.reason == "authorization_required"
        asked = alice.request_access(type="task", target=MOVE, reason="mailbox error")
        assert asked.status == "pending"
        approved = bob.approve(asked.id, comment="go ahead")
        assert approved.status == "approved"
        assert approved.reviews[0].approver == "bob@contoso.com"
        after = alice.check(MOVE)
        assert after.allowed
        assert after.authorization_id == approved.authorization_id
        revoked = bob.revoke(asked.id, comment="done")
        assert revoked.status == "revoked"
        assert alice.check(MOVE).reason == "authorization_required"


def test_the_guard_runs_the_code_only_when_the_check_allows(server: Server) -> None:
    ran: list[str] = []
    with Client(server.url, token_for(server, "alice@contoso.com")) as alice:

        @guard(alice, MOVE)
        def move(mailbox: str) -> str:
            ran.append(mailbox)
            return f"moved {mailbox}"

        with pytest.raises(AccessDenied) as denied:
            move("alice@contoso.com")
        assert denied.value.reason == "authorization_required"
        assert "Exchange\\New-MoveRequest" in str(denied.value)
        assert ran == []
        # A task the role allows and no policy covers: the block runs.
        with guard(alice, "Exchange\\Get-Recipient") as decision:
            ran.append("block")
        assert decision.reason == "not_protected"
        assert ran == ["block"]


def test_a_batch_of_checks_answers_in_order(server: Server) -> None:
    with Client(server.url, token_for(server, "admin@contoso.com")) as admin:
        answers = admin.check_batch(
            [
                (MOVE, "alice@contoso.com"),
                ("Exchange\\Get-Recipient", "alice@contoso.com"),
                (MOVE, "sys@contoso.com"),
                (MOVE, "nobody@contoso.com"),
            ]
        )
    assert [a.reason for a in answers] == [
        "authorization_required",
        "not_protected",
        "system_account",
        "unknown_user",
    ]
    assert answers[2].exempt


def test_an_unreachable_server_denies_and_says_why() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with Client(nobody, "no-token", timeout=2, retries=1) as client:
        decision = client.check(MOVE)
        assert not decision.allowed
        assert decision.reason == "server_unreachable"
        assert "cannot reach the jitpam server" in decision.detail
        with pytest.raises(AccessDenied) as denied, guard(client, MOVE):
            pytest.fail("the guarded block must not run")
        assert denied.value.reason == "server_unreachable"
        assert [d.allowed for d in client.check_batch([(MOVE, None)] * 3)] == [False] * 3


def test_a_call_whose_answer_is_lost_is_not_sent_again() -> None:
    """A server that takes the call and drops the connection: the call may have happened, so the
    client reports it and does not send it a second time."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.recv(65536)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        with Client(f"http://127.0.0.1:{port}", "t", timeout=5, retries=3) as client:
            with pytest.raises(Unreachable) as lost:
                client.request_access(type="task", target=MOVE, reason="x")
            assert "may or may not have been carried out" in str(lost.value)
            assert len(accepted) == 1
            decision = client.check(MOVE)
            assert not decision.allowed
            assert decision.reason == "server_unreachable"
    finally:
        listener.close()


def test_the_async_client_and_guard(server: Server) -> None:
    async def scenario() -> tuple[list[str], str]:
        ran: list[str] = []
        async with AsyncClient(server.url, token_for(server, "alice@contoso.com")) as alice:

            @guard(alice, MOVE)
            async def move() -> None:
                ran.append("move")

            try:
                await move()
            except AccessDenied as exc:
                reason = exc.reason
            async with guard(alice, "Exchange\\Get-Recipient"):
                ran.append("recipient")
            mine = [r async for r in alice.requests(mine=True, limit=5)]
            assert all(r.requester == "alice@contoso.com" for r in mine)
            by_hand = [r async for r in alice.items("/requests", {"mine": True}, limit=5)]
            assert [r["id"] for r in by_hand] == [r.id for r in mine]
        return ran, reason

    # In a thread of its own: another test's browser may hold an event loop in this thread.
    result: list[tuple[list[str], str]] = []
    worker = threading.Thread(target=lambda: result.append(asyncio.run(scenario())))
    worker.start()
    worker.join(60)
    ran, reason = result[0]
    assert ran == ["recipient"]
    assert reason == "authorization_required"


def test_every_operation_of_the_api_has_one_typed_call(server: Server) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    operations = {(m.upper(), path) for path, ops in document["paths"].items() for m in ops}
    assert operations == set(calls.ENDPOINTS)


def test_the_calls_the_command_line_does_not_make(server: Server) -> None:
    with Client(server.url, token_for(server, "admin@contoso.com")) as admin:
        assert admin.alive()
        assert admin.ready()
        assert "jitpam_http_requests_total" in admin.metrics()
        assert admin.me().upn == "admin@contoso.com"

        before = admin.access_control().pending_hours
        assert admin.set_organization_config(pending_hours=before + 1).pending_hours == before + 1
        assert admin.set_organization_config(pending_hours=before).pending_hours == before

        name = f"sdk-{uuid.uuid4().hex[:8]}"
        made = admin.new_group(name, description="made by the SDK", members=["bob@contoso.com"])
        assert (made.description, made.members) == ("made by the SDK", ("bob@contoso.com",))
        admin.remove_group(name)
        with pytest.raises(ApiError) as gone:
            admin.get_group(name)
        assert gone.value.status == 404

        upn = f"{name}@contoso.com"
        admin.new_user(upn, kind="service")
        changed = admin.set_user(upn, display_name="Renamed", email=upn)
        assert (changed.display_name, changed.email, changed.enabled) == ("Renamed", upn, True)

        # Small pages, followed by the server's own cursors, give what one large page gives.
        assert [u.upn for u in admin.users(page_size=1, limit=3)] == [
            u.upn for u in admin.users(limit=3)
        ]
        role = admin.role("Exchange\\Move Mailboxes")
        first = admin.role_page(role.name, page_size=1)
        assert first.tasks == role.tasks[:1]
        assert first.tasks_next_cursor
        rest = admin.catalog_tasks(role=role.name, cursor=first.tasks_next_cursor, page_size=2)
        assert (*first.tasks, *(t.name for t in rest)) == role.tasks
        members = list(first.members)
        cursor = first.members_next_cursor
        while cursor:
            page = admin.role_page(role.name, members_cursor=cursor, page_size=1)
            members += page.members
            cursor = page.members_next_cursor
        assert members == list(role.members)
        assert role.raw["tasks_next_cursor"] is None
        assert role.raw["members_next_cursor"] is None


def test_the_async_client_offers_the_same_typed_calls(server: Server) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, token_for(server, "admin@contoso.com")) as admin:
            assert (await admin.me()).upn == "admin@contoso.com"
            assert [u.upn async for u in admin.users(page_size=1, limit=2)] == [
                "admin@contoso.com",
                "alice@contoso.com",
            ]
            role = await admin.role("Exchange\\Move Mailboxes")
            assert "Exchange\\New-MoveRequest" in role.tasks
            (policy,) = [p async for p in admin.policies(type="task", limit=1)]
            assert (await admin.get_policy(policy.id)) == policy
            assert (await admin.access_control()).enabled

    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as exc:  # handed to the test's own thread
            errors.append(exc)

    # In a thread of its own: another test's browser may hold an event loop in this thread.
    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    if errors:
        raise errors[0]
