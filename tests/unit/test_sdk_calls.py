"""The SDK's calls, without a server: where each goes, what reaches a URL path, and that the HTTP
library is not imported until a call is made."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import pytest

from jitpam.sdk import AccessRequest, AsyncClient, Client, Decision, LockboxRequest, calls
from tests.loops import on_a_loop

T = TypeVar("T")


def test_a_name_is_one_path_segment_whatever_it_holds() -> None:
    assert calls.get_group("a/b?c#d").path == "/api/v1/groups/a%2Fb%3Fc%23d"
    assert calls.get_user("..").path == "/api/v1/users/%2E%2E"
    assert calls.get_user(".").path == "/api/v1/users/%2E"
    assert calls.role_page("Exchange\\Move Mailboxes").path == (
        "/api/v1/roles/Exchange%5CMove%20Mailboxes"
    )
    assert calls.add_group_member("x/../y", "a#b@contoso.com").path == (
        "/api/v1/groups/x%2F..%2Fy/members/a%23b%40contoso.com"
    )


def test_an_empty_name_never_makes_a_call() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        calls.get_group("")
    with pytest.raises(ValueError, match="must not be empty"):
        calls.run_task("", {})


def test_each_call_names_its_method_and_path() -> None:
    assert (calls.cancel("r1").method, calls.cancel("r1").path) == (
        "POST",
        "/api/v1/requests/r1/cancel",
    )
    assert calls.cancel("r1").json is None  # withdrawing takes no body
    assert (calls.ready().method, calls.ready().path) == ("GET", "/readyz")
    assert calls.revoke("a1", "done").path == "/api/v1/authorizations/a1/revoke"
    assert calls.run_task("Exchange\\New-MoveRequest", {}).unbounded


def test_data_access_calls_send_the_documented_bodies() -> None:
    installing = calls.install_application(
        "Contoso Insights",
        service="Office365",
        scopes=("Mail.Read",),
        resources=["group:Sales"],
        reason="insights",
    )
    assert (installing.method, installing.path) == ("POST", "/api/v1/applications")
    assert installing.json == {
        "name": "Contoso Insights",
        "service": "Office365",
        "scopes": ["Mail.Read"],
        "resources": ["group:Sales"],
        "reason": "insights",
    }
    asked = calls.check(None, "app@contoso.com", service="Office365", scope="Mail.Read",
                        resource="mailbox:ceo@contoso.com")  # fmt: skip
    assert asked.json == {
        "service": "Office365",
        "scope": "Mail.Read",
        "resource": "mailbox:ceo@contoso.com",
        "user": "app@contoso.com",
    }


def test_a_change_sends_only_what_is_given() -> None:
    assert calls.set_user("u@contoso.com", enabled=False).json == {"enabled": False}
    assert calls.set_policy("p1", require_ticket=False).json == {"require_ticket": False}
    assert calls.set_policy("p1", eligible_users=[]).json == {"eligible_users": []}


def test_an_audit_search_asks_for_pages_no_larger_than_it_needs() -> None:
    assert calls.audit().params["limit"] == calls.AUDIT_PAGE
    assert calls.audit(limit=7).params["limit"] == 7
    assert calls.audit(limit=5000).params["limit"] == calls.AUDIT_PAGE
    assert calls.audit(page_size=10).params["limit"] == 10


WRITTEN_OUT = {"check", "check_batch"}  # a check with no answer is a denial, not an error


def test_both_clients_offer_every_call_with_its_signature() -> None:
    for build in calls.ENDPOINTS.values():
        name = build.__name__
        for client in (Client, AsyncClient):
            method = getattr(client, name)
            declared = list(inspect.signature(build).parameters)
            assert list(inspect.signature(method).parameters) == ["self", *declared], name
            if name not in WRITTEN_OUT:
                assert method.__doc__ == build.__doc__, name


def test_the_http_library_is_imported_with_the_first_call_only() -> None:
    probe = (
        "import sys\n"
        "import jitpam.sdk\n"
        "from jitpam.sdk import Client\n"
        "client = Client('http://127.0.0.1:9', 'token')\n"
        "print('httpx' in sys.modules)\n"
        "client.check('Exchange\\\\New-MoveRequest')\n"
        "print('httpx' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "True"]


def test_secrets_in_answers_never_show_in_their_repr() -> None:
    from jitpam.sdk.models import IssuedToken, Webhook

    token = IssuedToken.from_json(
        {"token": "jp_s3cr3t-token", "id": "t1", "user": "a@b.c", "expires_at": "2026-12-08"}
    )
    hook = Webhook.from_json(
        {
            "id": "w1",
            "url": "https://hooks.example/x",
            "events": ["request.approved"],
            "format": "json",
            "created_at": "2026-12-07",
            "secret": "whsec-s3cr3t",
        }
    )
    assert token.token == "jp_s3cr3t-token"
    assert hook.secret == "whsec-s3cr3t"
    assert "s3cr3t" not in repr(token)
    assert "s3cr3t" not in repr(hook)


def _role_pages() -> dict[str | None, dict[str, Any]]:
    """A role's pages by members' cursor: its first page names more tasks and more members."""
    member = {"kind": "user", "name": "bob@contoso.com", "just_in_time": False}
    first = {
        "name": "Movers",
        "type": "role",
        "tasks": ["t1"],
        "tasks_next_cursor": "tasks-2",
        "members": [member],
        "members_next_cursor": "members-2",
    }
    second = {
        **first,
        "members": [{**member, "name": "cy@contoso.com"}],
        "members_next_cursor": None,
    }
    return {None: first, "members-2": second}


class _ScriptedClient(Client):
    def send(self, call: calls.Call[T]) -> T:
        return call.parse(_role_pages()[call.params.get("members_cursor")])

    def each(self, listing: calls.Listing[T]) -> Iterator[T]:
        assert listing.params["cursor"] == "tasks-2"
        yield from (listing.item({"name": name}) for name in ("t2", "t3"))


class _ScriptedAsyncClient(AsyncClient):
    async def send(self, call: calls.Call[T]) -> T:
        return call.parse(_role_pages()[call.params.get("members_cursor")])

    async def each(self, listing: calls.Listing[T]) -> AsyncIterator[T]:
        assert listing.params["cursor"] == "tasks-2"
        for name in ("t2", "t3"):
            yield listing.item({"name": name})


def test_both_clients_follow_every_page_of_a_role() -> None:
    for role in (
        _ScriptedClient("http://jitpam.invalid").role("Movers"),
        on_a_loop(lambda: _ScriptedAsyncClient("http://jitpam.invalid").role("Movers")),
    ):
        assert role.tasks == ("t1", "t2", "t3")
        assert [m.name for m in role.members] == ["bob@contoso.com", "cy@contoso.com"]
        assert role.raw["tasks"] == ["t1", "t2", "t3"]
        assert role.raw["members_next_cursor"] is None


def test_each_client_shows_its_own_answer_in_a_calls_signature() -> None:
    assert inspect.signature(Client.users).return_annotation == "Iterator[User]"
    assert inspect.signature(AsyncClient.users).return_annotation == "AsyncIterator[User]"
    assert inspect.signature(Client.get_user).return_annotation == "User"
    assert inspect.signature(AsyncClient.get_user).return_annotation == "Awaitable[User]"


def test_a_customer_lockbox_check_is_the_check_with_an_organization_and_a_service() -> None:
    task = calls.check("Exchange\\New-MoveRequest", "alice@contoso.com")
    assert task.json == {"task": "Exchange\\New-MoveRequest", "user": "alice@contoso.com"}
    lockbox = calls.check(None, "engineer@fabrikam.com", organization="contoso", service="Exchange")
    assert (lockbox.method, lockbox.path) == ("POST", "/api/v1/check")
    assert lockbox.json == {
        "organization": "contoso",
        "service": "Exchange",
        "user": "engineer@fabrikam.com",
    }
    sent: list[Any] = []

    class Recording(Client):
        def send(self, call: Any) -> Any:
            sent.append(call)
            return Decision(True, "lockbox_approved")

    assert Recording("http://127.0.0.1:9").check_customer_data(None, "contoso", "Exchange").allowed
    assert sent[0].json == {"organization": "contoso", "service": "Exchange", "user": None}


def test_a_listing_of_requests_reads_each_kind_as_its_model() -> None:
    listing = calls.requests(access="customer_lockbox")
    assert listing.params["access"] == "customer_lockbox"
    lockbox = listing.item(
        {
            "id": "l1",
            "requested_access": "Customer Lockbox",
            "status": "pending",
            "customer": "contoso",
            "operator": "fabrikam",
            "requester": "engineer@fabrikam.com",
            "service": "Exchange",
            "reason": "repair",
            "case_reference": "EXSR123456",
            "duration_hours": 2,
            "created_at": "2026-01-01T00:00:00.000000Z",
            "pending_until": "2026-01-01T12:00:00.000000Z",
        }
    )
    assert isinstance(lockbox, LockboxRequest)
    assert (lockbox.customer, lockbox.case_reference) == ("contoso", "EXSR123456")
    task = listing.item(
        {
            "id": "r1",
            "requested_access": "Task",
            "status": "pending",
            "requester": "alice@contoso.com",
            "type": "task",
            "target": "Exchange\\New-MoveRequest",
            "reason": "fix",
            "duration_hours": 4,
            "approvals_required": 1,
            "created_at": "2026-01-01T00:00:00.000000Z",
            "pending_until": "2026-01-02T00:00:00.000000Z",
        }
    )
    assert isinstance(task, AccessRequest)
    assert task.requested_access == "Task"
