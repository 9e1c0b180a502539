"""Once a change is committed, its answer is success: nothing a route does after the commit can
turn it into an error.

A route that committed its use case and then opened a second transaction (to turn ids into names,
or to read back what it had just changed) answered ``database_unavailable`` when that transaction
lost its connection, for a change that was made; a retry then met a conflict. Here the server's
units of work lose the database the moment a change commits: every transaction after it fails as
a dead connection does. Each write route, and each form of the web pages that changes something,
must still answer success, and the change must be there once the database is back.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any
from urllib.parse import unquote
from uuid import UUID

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.webhooks import OutboundUrls
from jitpam.bootstrap import Runtime, build_context
from jitpam.domain.directory import UserKind
from jitpam.domain.errors import DatabaseUnavailable
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.services import auth, organizations, requests
from jitpam.services.context import ServiceContext
from jitpam.services.ports import UnitOfWork, UnitOfWorkFactory
from jitpam.settings import Settings
from jitpam.web.app import create_server
from jitpam.web.session import csrf_token
from tests.integration.conftest import START
from tests.integration.world import Person, World

API = "/api/v1"
MOVE = "Exchange\\New-MoveRequest"
SEARCH = "Exchange\\Search-Mailbox"


class LostAfterCommit:
    """Units of work that lose the database once a change commits, while armed: the commit goes
    through, and every transaction begun after it fails at its start, as one on a connection
    killed meanwhile does (``DatabaseUnavailable``)."""

    def __init__(self) -> None:
        self.armed = False
        self.lost = False
        self.commits = 0  # commits made while armed (the use case's own: exactly one)

    def arm(self) -> None:
        self.armed, self.lost, self.commits = True, False, 0

    def disarm(self) -> None:
        self.armed = self.lost = False

    def wrap(self, real: UnitOfWorkFactory) -> UnitOfWorkFactory:
        def new() -> UnitOfWork:
            return _Unit(real(), self)  # type: ignore[return-value]

        return new


class _Unit:
    def __init__(self, inner: UnitOfWork, faults: LostAfterCommit) -> None:
        self._inner, self._faults = inner, faults

    def __enter__(self) -> _Unit:
        if self._faults.lost:
            raise DatabaseUnavailable("the database could not be reached or failed; try again")
        self._inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inner.__exit__(exc_type, exc, tb)

    def commit(self) -> None:
        self._inner.commit()
        if self._faults.armed:
            self._faults.commits += 1
            self._faults.lost = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class Scene:
    """Control on with default approver group Approvers (ann); rita may run mailbox moves; a
    Manual policy on MOVE; the server app whose transactions ``faults`` breaks."""

    world: World
    client: httpx.Client
    faults: LostAfterCommit
    tokens: dict[str, str]
    ann: Person
    rita: Person
    sam: Person  # a service account
    policy_id: UUID

    def token(self, who: Person) -> str:
        if who.upn not in self.tokens:
            self.tokens[who.upn] = auth.create_token(self.world.ctx, caller=who.caller).secret
        return self.tokens[who.upn]

    def call(self, who: Person, method: str, path: str, **kwargs: Any) -> Any:
        """A call made while the database goes away at the commit; the response."""
        headers = {"Authorization": f"Bearer {self.token(who)}"}
        self.faults.arm()
        try:
            return self.client.request(method, API + path, headers=headers, **kwargs)
        finally:
            self.faults.disarm()

    def read(self, who: Person, path: str) -> Any:
        """A GET on a healthy database, after the fact."""
        r = self.client.get(API + path, headers={"Authorization": f"Bearer {self.token(who)}"})
        assert r.status_code == 200, r.text
        return r.json()

    def form(self, who: Person, path: str, form: dict[str, str]) -> Any:
        """A web form posted while the database goes away at the commit; the response."""
        secret = self.token(who)
        self.client.cookies.set("jitpam_session", secret)
        self.faults.arm()
        try:
            return self.client.post(
                path, data={**form, "csrf": csrf_token(secret)}, follow_redirects=False
            )
        finally:
            self.faults.disarm()
            self.client.cookies.clear()

    def ask(self, who: Person | None = None, target: str = MOVE) -> UUID:
        v = requests.new_request(
            self.world.ctx,
            caller=(who or self.rita).caller,
            type=PolicyType.TASK,
            target=target,
            reason="Fix a stuck mailbox move",
        )
        return v.request.id

    def granted(self) -> tuple[UUID, str]:
        """A request of rita's approved by ann: its id and its authorization's."""
        request_id = self.ask()
        requests.approve_request(self.world.ctx, caller=self.ann.caller, request_id=request_id)
        found = self.read(self.rita, f"/requests/{request_id}")
        return request_id, str(found["authorization_id"])


@dataclass
class Served:
    """The whole server application on this process's database context, its transactions
    broken by ``faults`` (``plain``: the same context unbroken, for setting up and looking)."""

    plain: ServiceContext
    clock: FixedClock
    faults: LostAfterCommit
    client: httpx.Client


@pytest.fixture(scope="module")
def served(database_url: str, engine: Engine) -> Iterator[Served]:
    del engine  # migrated
    clock = FixedClock(START)
    settings = Settings(argon2_time_cost=1, argon2_memory_kib=8)
    plain, own_engine = build_context(
        database_url=database_url, migrate=False, clock=clock, settings=settings
    )
    faults = LostAfterCommit()
    broken: ServiceContext = replace(
        plain, uow=faults.wrap(plain.uow), read=faults.wrap(plain.reader)
    )
    runtime = Runtime(
        settings=settings,
        ctx=broken,
        engine=own_engine,
        oidc=None,
        urls=OutboundUrls(allow_private=False),
    )
    try:
        with _serving(create_server(runtime)) as url, httpx.Client(base_url=url) as client:
            yield Served(plain, clock, faults, client)
    finally:
        own_engine.dispose()


@pytest.fixture
def scene(served: Served) -> Scene:
    world = World(served.plain, served.clock)
    ann = world.user("ann")
    world.group("Approvers", ann)
    rita = world.user("rita", roles=("Exchange\\Move Mailboxes", "Exchange\\Mailbox Search"))
    sam = world.user("sam", kind=UserKind.SERVICE)
    organizations.enable_access_control(
        served.plain, caller=world.admin.caller, admin_group="Approvers"
    )
    policy = world.policy(MOVE, eligible_users=[rita.upn])
    return Scene(world, served.client, served.faults, {}, ann, rita, sam, policy.id)


@contextmanager
def _serving(app: Any) -> Iterator[str]:
    """The app served by uvicorn on a thread of this process (so the test holds its context)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server stopped"
        assert time.monotonic() < end, "the server did not start"
        time.sleep(0.01)  # polling interval, not a wait for an effect
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _done(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


# --- the API: each write route, the database lost at its commit --------------------------------


def new_request(s: Scene) -> None:
    body = _done(
        s.call(s.rita, "POST", "/requests", json={"type": "task", "target": MOVE, "reason": "x"}),
        201,
    )
    assert (body["status"], body["requester"]) == ("pending", s.rita.upn)
    assert s.read(s.rita, f"/requests/{body['id']}") == body


def approve(s: Scene) -> None:
    request_id = s.ask()
    body = _done(s.call(s.ann, "POST", f"/requests/{request_id}/approve", json={}), 200)
    assert body["status"] == "approved"
    assert [r["approver"] for r in body["reviews"]] == [s.ann.upn]
    assert s.read(s.rita, f"/requests/{request_id}") == body


def deny(s: Scene) -> None:
    request_id = s.ask()
    body = _done(s.call(s.ann, "POST", f"/requests/{request_id}/deny", json={}), 200)
    assert body["status"] == "denied"
    assert [r["approver"] for r in body["reviews"]] == [s.ann.upn]
    assert s.read(s.rita, f"/requests/{request_id}") == body


def cancel(s: Scene) -> None:
    request_id = s.ask()
    body = _done(s.call(s.rita, "POST", f"/requests/{request_id}/cancel"), 200)
    assert body["status"] == "cancelled"
    assert s.read(s.rita, f"/requests/{request_id}") == body


def revoke(s: Scene) -> None:
    request_id, authorization_id = s.granted()
    body = _done(
        s.call(s.ann, "POST", f"/authorizations/{authorization_id}/revoke", json={"comment": "c"}),
        200,
    )
    assert (body["status"], body["revoked_by"], body["user"]) == ("revoked", s.ann.upn, s.rita.upn)
    shown = s.read(s.rita, f"/requests/{request_id}")
    assert (shown["status"], shown["revoked_by"]) == ("revoked", s.ann.upn)


def enable_control(s: Scene) -> None:
    # A second administrator designates sam: the world's admin made sam's account, so it may not
    # make it a system account (separation of duties); root (made by the admin) does not steer sam.
    root = s.world.user("root", role_groups=("jitpam\\Global Administrator",))
    body = _done(
        s.call(
            root,
            "POST",
            "/control/enable",
            json={"admin_group": "Approvers", "system_accounts": [s.sam.upn]},
        ),
        200,
    )
    assert (body["default_approver_group"], body["system_accounts"]) == ("Approvers", [s.sam.upn])
    assert s.read(s.rita, "/control") == body


def disable_control(s: Scene) -> None:
    body = _done(s.call(s.world.admin, "POST", "/control/disable"), 200)
    assert (body["enabled"], body["default_approver_group"]) == (False, "Approvers")
    assert s.read(s.rita, "/control") == body


def set_config(s: Scene) -> None:
    body = _done(s.call(s.world.admin, "PATCH", "/control/config", json={"pending_hours": 5}), 200)
    assert (body["pending_hours"], body["default_approver_group"]) == (5, "Approvers")
    assert s.read(s.rita, "/control") == body


def new_policy(s: Scene) -> None:
    body = _done(
        s.call(
            s.world.admin,
            "POST",
            "/policies",
            json={
                "type": "task",
                "target": SEARCH,
                "approval_type": "manual",
                "approver_group": "Approvers",
                "eligible_users": [s.rita.upn],
                "eligible_groups": ["Approvers"],
            },
        ),
        201,
    )
    assert (body["approver_group"], body["eligible"]) == ("Approvers", ["Approvers", s.rita.upn])
    assert s.read(s.rita, f"/policies/{body['id']}") == body


def change_policy(s: Scene) -> None:
    body = _done(
        s.call(
            s.world.admin,
            "PATCH",
            f"/policies/{s.policy_id}",
            json={"approver_group": "Approvers", "approvals_required": 1, "max_duration_hours": 3},
        ),
        200,
    )
    assert (body["approver_group"], body["eligible"]) == ("Approvers", [s.rita.upn])
    assert s.read(s.rita, f"/policies/{s.policy_id}") == body


def remove_policy(s: Scene) -> None:
    body = _done(s.call(s.world.admin, "DELETE", f"/policies/{s.policy_id}"), 200)
    assert body["eligible"] == [s.rita.upn]
    listed = s.read(s.rita, "/policies")["items"]
    assert s.policy_id not in {UUID(p["id"]) for p in listed}


def new_group(s: Scene) -> None:
    body = _done(
        s.call(s.world.admin, "POST", "/groups", json={"name": "Movers", "members": [s.rita.upn]}),
        201,
    )
    assert body["members"] == [s.rita.upn]
    assert s.read(s.rita, "/groups/Movers") == body


def add_member(s: Scene) -> None:
    body = _done(s.call(s.world.admin, "PUT", f"/groups/Approvers/members/{s.rita.upn}"), 200)
    assert body["members"] == sorted([s.ann.upn, s.rita.upn])
    assert s.read(s.rita, "/groups/Approvers") == body


def remove_member(s: Scene) -> None:
    body = _done(s.call(s.world.admin, "DELETE", f"/groups/Approvers/members/{s.ann.upn}"), 200)
    assert body["members"] == []
    assert s.read(s.rita, "/groups/Approvers") == body


def new_token(s: Scene) -> None:
    body = _done(s.call(s.world.admin, "POST", "/tokens", json={"user": s.sam.upn}), 201)
    assert body["user"] == s.sam.upn
    mine = s.client.get(API + "/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert mine.json()["upn"] == s.sam.upn


def new_user(s: Scene) -> None:
    body = _done(s.call(s.world.admin, "POST", "/users", json={"upn": s.world.upn("una")}), 201)
    assert s.read(s.rita, f"/users/{body['upn']}") == body


def change_user(s: Scene) -> None:
    body = _done(
        s.call(s.world.admin, "PATCH", f"/users/{s.rita.upn}", json={"display_name": "R"}), 200
    )
    assert s.read(s.rita, f"/users/{s.rita.upn}") == body


def assign(s: Scene) -> None:
    body = _done(
        s.call(
            s.world.admin,
            "POST",
            "/assignments",
            json={"role": "Exchange\\Mailbox Search", "user": s.ann.upn},
        ),
        201,
    )
    assert body["principal"] == s.ann.upn


API_CHANGES: dict[str, Callable[[Scene], None]] = {
    f.__name__: f
    for f in (
        new_request,
        approve,
        deny,
        cancel,
        revoke,
        enable_control,
        disable_control,
        set_config,
        new_policy,
        change_policy,
        remove_policy,
        new_group,
        add_member,
        remove_member,
        new_token,
        new_user,
        change_user,
        assign,
    )
}


@pytest.mark.parametrize("change", sorted(API_CHANGES))
def test_a_change_committed_is_answered_as_done_though_the_database_goes_away_after(
    scene: Scene, change: str
) -> None:
    API_CHANGES[change](scene)
    assert scene.faults.commits == 1, "the use case did not commit once while armed"


# --- the web pages' forms ------------------------------------------------------------------------


def _flash(response: Any) -> str:
    """The message a redirect carries ('+' done, '!' refused)."""
    return unquote(response.cookies.get("jitpam_flash", ""))


def _redirected(response: Any, to: str) -> str:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == to or to == "*", response.headers["location"]
    message = _flash(response)
    assert message.startswith("+"), message
    return message[1:]


def page_new_request(s: Scene) -> None:
    r = s.form(s.rita, "/requests", {"target": f"task|{MOVE}", "reason": "x"})
    message = _redirected(r, "*")
    request_id = r.headers["location"].removeprefix("/requests/")
    assert message == f"Request for {MOVE}: pending"
    assert s.read(s.rita, f"/requests/{request_id}")["status"] == "pending"


def page_approve(s: Scene) -> None:
    request_id = s.ask()
    r = s.form(s.ann, f"/requests/{request_id}/approve", {})
    assert _redirected(r, f"/requests/{request_id}") == "The request is now approved"
    assert s.read(s.rita, f"/requests/{request_id}")["status"] == "approved"


def page_revoke(s: Scene) -> None:
    request_id, _ = s.granted()
    r = s.form(s.ann, f"/requests/{request_id}/revoke", {"comment": "done"})
    assert _redirected(r, f"/requests/{request_id}") == "The request is now revoked"
    assert s.read(s.rita, f"/requests/{request_id}")["revoked_by"] == s.ann.upn


def page_settings(s: Scene) -> None:
    r = s.form(s.world.admin, "/settings", {})
    _redirected(r, "/settings")
    assert s.read(s.rita, "/control")["enabled"] is False


def page_new_policy(s: Scene) -> None:
    form = {"type": "task", "target": SEARCH, "approval_type": "manual"}
    r = s.form(s.world.admin, "/policies", {**form, "approver_group": "Approvers"})
    _redirected(r, "/policies")
    targets = [p["target"] for p in s.read(s.rita, "/policies")["items"]]
    assert SEARCH in targets


def page_change_policy(s: Scene) -> None:
    here = f"/policies/{s.policy_id}"
    r = s.form(s.world.admin, here, {"approval_type": "auto", "approver_group": "Approvers"})
    _redirected(r, here)
    assert s.read(s.rita, here)["approval_type"] == ApprovalType.AUTO.value


PAGE_CHANGES: dict[str, Callable[[Scene], None]] = {
    f.__name__: f
    for f in (
        page_new_request,
        page_approve,
        page_revoke,
        page_settings,
        page_new_policy,
        page_change_policy,
    )
}


@pytest.mark.parametrize("change", sorted(PAGE_CHANGES))
def test_a_form_whose_change_committed_says_it_is_done_though_the_database_goes_away_after(
    scene: Scene, change: str
) -> None:
    PAGE_CHANGES[change](scene)
    assert scene.faults.commits == 1, "the use case did not commit once while armed"


def test_the_database_lost_before_the_commit_is_still_an_outage(scene: Scene) -> None:
    """The double is no blanket: a change that did not commit answers 503 and is not there."""
    scene.faults.arm()
    scene.faults.lost = True
    try:
        r = scene.client.post(
            API + "/requests",
            json={"type": "task", "target": MOVE, "reason": "x"},
            headers={"Authorization": f"Bearer {scene.token(scene.rita)}"},
        )
    finally:
        scene.faults.disarm()
    assert (r.status_code, r.json()["code"]) == (503, "database_unavailable")
    assert scene.read(scene.rita, "/requests?mine=true")["items"] == []
