"""Writes through real servers, and what the servers acknowledged: for the fault tests and the soak.

An organization of its own (made in process, through the use cases) where each requester cycles
through the changes users wait for: a new request (201), the approver's approval (200), the
approver's revocation (200), and again. A ``Writer`` keeps, for each request, the furthest change
a server acknowledged; ``unfound`` then reads every one back and names those the database lost.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from sqlalchemy import select

from jitpam.adapters.sql.db import make_engine
from jitpam.adapters.sql.models import AuditRow, RequestRow
from jitpam.bootstrap import build_context
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.services import audit_log, auth, directory, organizations, policies
from jitpam.services.context import Caller
from tests.e2e.conftest import Server

MOVE = "Exchange\\New-MoveRequest"
PROBLEM = "application/problem+json"
# A server that lost its database (connection killed, disk full) answers these, and nothing else.
UNAVAILABLE = {"database_unavailable", "audit_unavailable"}


class Stage(IntEnum):
    """How far a request got; each stage implies the ones before it."""

    REQUESTED = 1
    APPROVED = 2
    REVOKED = 3


OPERATION = {
    Stage.REQUESTED: "New-ElevatedAccessRequest",
    Stage.APPROVED: "Approve-ElevatedAccessRequest",
    Stage.REVOKED: "Revoke-ElevatedAccessAuthorization",
}
# The statuses a request may show once a stage was acknowledged (a later change may have been
# made by a try whose answer was lost).
SHOWN = {
    Stage.REQUESTED: {"pending", "approved", "revoked"},
    Stage.APPROVED: {"approved", "revoked"},
    Stage.REVOKED: {"revoked"},
}


@dataclass(frozen=True)
class WriteOrg:
    org_id: uuid.UUID
    admin: Caller
    admin_token: str
    approver_token: str
    requester_tokens: list[str]


def make_write_org(db: str, requesters: int) -> WriteOrg:
    """An organization with control on, a Manual policy on MOVE reviewed by one approver, and
    ``requesters`` people holding the task; API tokens for all of them."""
    ctx, engine = build_context(database_url=db)
    try:
        suffix = uuid.uuid4().hex[:8]
        org, admin_user = organizations.create_organization(
            ctx,
            name=f"writes-{suffix}",
            admin_upn=f"admin@{suffix}.test",
            admin_display_name="Admin",
            catalogs=("exchange",),
        )
        admin = Caller(org.id, admin_user.id)

        def person(name: str) -> Caller:
            upn = f"{name}@{suffix}.test"
            return Caller(
                org.id, directory.add_user(ctx, caller=admin, upn=upn, display_name=name).id
            )

        approver = person("approver")
        directory.add_group(ctx, caller=admin, name="Approvers")
        directory.change_membership(
            ctx, caller=admin, group="Approvers", upn=f"approver@{suffix}.test", add=True
        )
        organizations.enable_access_control(ctx, caller=admin, admin_group="Approvers")
        policies.new_policy(
            ctx,
            caller=admin,
            type=PolicyType.TASK,
            target=MOVE,
            approval_type=ApprovalType.MANUAL,
            approver_group="Approvers",
        )
        tokens = []
        for i in range(requesters):
            caller = person(f"r{i}")
            directory.change_assignment(
                ctx, caller=admin, role="Move Mailboxes", user=f"r{i}@{suffix}.test", add=True
            )
            tokens.append(auth.create_token(ctx, caller=caller, name="writes").secret)
        return WriteOrg(
            org.id,
            admin,
            auth.create_token(ctx, caller=admin, name="writes").secret,
            auth.create_token(ctx, caller=approver, name="writes").secret,
            tokens,
        )
    finally:
        engine.dispose()


@dataclass
class Answer:
    status: int  # 0: no HTTP answer (the connection failed or the server is gone)
    content_type: str
    text: str

    @property
    def body(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    @property
    def code(self) -> str | None:
        body = self.body
        return body.get("code") if isinstance(body, dict) else None

    @property
    def unavailable(self) -> bool:
        """A clean refusal for want of the database: problem+json, a 503, a known code."""
        return (
            self.status == 503
            and self.content_type.startswith(PROBLEM)
            and self.code in UNAVAILABLE
            and "Traceback" not in self.text
        )

    def label(self) -> str:
        if self.status == 0:
            return "no answer"
        return f"{self.status} {self.code or ''}".strip()


def server_url(server: Server) -> Callable[[], str]:
    return lambda: server.url


class Connection:
    """One kept-alive connection to a server (http.client: a small request in one write)."""

    def __init__(self, url: Callable[[], str], token: str) -> None:
        self.url, self.token = url, token
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        if self.conn is None:
            host, port = self.url().removeprefix("http://").split(":")
            self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            self.conn.request(
                method,
                "/api/v1" + path,
                body=None if body is None else json.dumps(body).encode(),
                headers=headers,
            )
            response = self.conn.getresponse()
            text = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Answer(0, "", repr(exc))
        return Answer(response.status, response.getheader("content-type", ""), text)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Acks:
    """What the servers acknowledged, shared by the writers: request id -> furthest stage."""

    stages: dict[str, Stage] = field(default_factory=dict)
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[str] = field(default_factory=Counter)
    # Answers that are neither a success, nor an expected refusal, nor a clean 503.
    unexpected: list[str] = field(default_factory=list)
    on_ack: Callable[[int], None] | None = None

    def acknowledged(self, request_id: str, stage: Stage) -> None:
        with self.lock:
            self.stages[request_id] = max(stage, self.stages.get(request_id, stage))
            self.count += 1
            count = self.count
        if self.on_ack is not None:
            self.on_ack(count)

    def answered(self, answer: Answer) -> None:
        with self.lock:
            self.answers[answer.label()] += 1

    def by_stage(self) -> dict[str, int]:
        with self.lock:
            return {s.name.lower(): sum(1 for v in self.stages.values() if v >= s) for s in Stage}


class Writer(threading.Thread):
    """One requester's cycle against a server, until ``stop`` is set.

    A clean 503, a ``concurrent_change`` or a lost connection leaves the step to be tried again
    (after ``pause``); with ``give_up_when_gone`` a lost connection ends the writer instead (the
    server was killed and will not come back). A try that failed may still have committed: the
    next try's refusal says so (a duplicate request, a request no longer pending, a grant no
    longer active) and the cycle moves on, acknowledging nothing for it."""

    def __init__(
        self,
        url: Callable[[], str],
        org: WriteOrg,
        index: int,
        acks: Acks,
        stop: threading.Event,
        *,
        give_up_when_gone: bool = False,
        pause: float = 0.05,
    ) -> None:
        super().__init__(daemon=True)
        self.requester = Connection(url, org.requester_tokens[index])
        self.approver = Connection(url, org.approver_token)
        self.acks, self.stop, self.pause = acks, stop, pause
        self.give_up_when_gone = give_up_when_gone
        self.request_id: str | None = None
        self.stage: Stage | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if not self.step():
                    return
        finally:
            self.requester.close()
            self.approver.close()

    def step(self) -> bool:
        if self.request_id is None:
            answer = self.requester.call(
                "POST", "/requests", {"type": "task", "target": MOVE, "reason": "writes"}
            )
            done, stage = answer.status == 201, Stage.REQUESTED
        elif self.stage is Stage.REQUESTED:
            answer = self.approver.call("POST", f"/requests/{self.request_id}/approve", {})
            done, stage = answer.status == 200, Stage.APPROVED
        else:
            answer = self.approver.call(
                "POST", f"/authorizations/{self.request_id}/revoke", {"comment": "writes"}
            )
            done, stage = answer.status == 200, Stage.REVOKED
        self.acks.answered(answer)
        if done:
            request_id = str(answer.body["id"]) if stage is Stage.REQUESTED else self.request_id
            assert request_id is not None
            self.acks.acknowledged(request_id, stage)
            self.advance(request_id, stage)
            return True
        if answer.status == 0:
            if self.give_up_when_gone:
                return False
            time.sleep(self.pause)
            return True
        if answer.unavailable or answer.code == "concurrent_change":  # nothing done: again
            time.sleep(self.pause)
            return True
        if not self.caught_up(answer):
            self.acks.unexpected.append(f"{stage.name} {answer.status} {answer.text[:300]}")
            time.sleep(self.pause)
        return True

    def advance(self, request_id: str, stage: Stage) -> None:
        if stage is Stage.REVOKED:
            self.request_id, self.stage = None, None
        else:
            self.request_id, self.stage = request_id, stage

    def caught_up(self, answer: Answer) -> bool:
        """An earlier try whose answer was lost did commit: move on as if it had answered."""
        if answer.status != 409:
            return False
        if self.request_id is None and answer.code == "duplicate_request":
            # The requester's open request: pending, or approved and not yet revoked.
            mine = self.requester.call("GET", "/requests?limit=10")
            if mine.status != 200:  # away again: look on the next try
                return mine.status == 0 or mine.unavailable
            items = mine.body.get("items", [])
            open_ = [i for i in items if i["status"] in ("pending", "approved")]
            if not open_:
                return False
            stage = Stage.REQUESTED if open_[0]["status"] == "pending" else Stage.APPROVED
            self.advance(str(open_[0]["id"]), stage)
            return True
        if self.stage is Stage.REQUESTED and answer.code == "request_not_pending":
            assert self.request_id is not None
            self.advance(self.request_id, Stage.APPROVED)
            return True
        if self.stage is Stage.APPROVED and answer.code == "authorization_not_active":
            self.advance("", Stage.REVOKED)
            return True
        return False


def chain_verified(db: str, org: WriteOrg) -> str | None:
    """``audit verify`` of the organization, in process; None when the chain is whole, else what
    is wrong with it."""
    ctx, engine = build_context(database_url=db, migrate=False)
    try:
        report = audit_log.verify_audit(ctx, caller=org.admin).report
    finally:
        engine.dispose()
    return None if report.ok else f"{report.problem} (record {report.bad_seq})"


def requests_of(db: str, org_id: uuid.UUID) -> dict[str, str]:
    """The organization's requests and their stored statuses, read directly from the database."""
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(RequestRow.id, RequestRow.status).where(RequestRow.org_id == org_id)
            )
            return {str(request_id): status for request_id, status in rows}
    finally:
        engine.dispose()


def unfound(db: str, org_id: uuid.UUID, acks: Acks) -> list[str]:
    """Every acknowledged change the database does not hold, read directly from it: the request
    in a status its furthest acknowledged stage allows, and a successful audit record for that
    stage and each before it. Empty when nothing acknowledged was lost."""
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                select(AuditRow.operation, AuditRow.target).where(
                    AuditRow.org_id == org_id, AuditRow.outcome == "success"
                )
            )
            records = {(operation, target) for operation, target in found}
    finally:
        engine.dispose()
    statuses = requests_of(db, org_id)
    lost = []
    for request_id, stage in sorted(acks.stages.items()):
        status = statuses.get(request_id)
        if status not in SHOWN[stage]:
            lost.append(f"request {request_id}: {stage.name} acknowledged, found {status}")
        for earlier in Stage:
            if earlier <= stage and (OPERATION[earlier], request_id) not in records:
                lost.append(f"request {request_id}: no {OPERATION[earlier]} record")
    return lost
