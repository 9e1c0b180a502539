"""The scale benchmark's data generator on tiny sizes: the rows it bulk-inserts are ones the
application reads, decides on and acts on as its own. And the benchmark itself runs end to end
(it times nothing here)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.generate import Generated, generate
from sqlalchemy import ColumnElement, Engine, func, select

from jitpam.adapters.sql.models import (
    AuditRow,
    AuthorizationRow,
    PolicyRow,
    RequestRow,
    UserRow,
)
from jitpam.bootstrap import build_context
from jitpam.domain.check import Reason
from jitpam.domain.requests import RequestStatus
from jitpam.services import access, audit_log, directory, requests
from jitpam.services.context import Caller, ServiceContext

SIZES = {"policies": 50, "authorizations": 200, "requests": 300, "users": 20}
BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_scale.py"


@pytest.fixture(scope="module")
def made(database_url: str) -> Generated:
    return generate(database_url, **SIZES)


@pytest.fixture
def ctx(made: Generated) -> Iterator[ServiceContext]:
    context, engine = build_context(database_url=made.url)
    yield context
    engine.dispose()


def admin(ctx: ServiceContext, made: Generated) -> Caller:
    with ctx.uow() as uow:
        user = uow.users.get_by_upn(made.admin_upn)
        assert user is not None
        return Caller(made.org_id, user.id)


def count(engine: Engine, model: type, *where: ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_the_organization_has_what_was_asked_for(engine: Engine, made: Generated) -> None:
    assert len(made.users) == SIZES["users"]
    assert len(made.tasks) == SIZES["policies"]
    assert made.tasks[17] == "Bench\\Task-17"
    assert count(engine, PolicyRow, PolicyRow.org_id == made.org_id) == SIZES["policies"]
    assert count(engine, RequestRow, RequestRow.org_id == made.org_id) == SIZES["requests"]
    assert (
        count(engine, AuthorizationRow, AuthorizationRow.org_id == made.org_id)
        == SIZES["authorizations"]
    )
    # The requesters, plus the administrator and approvers the services made.
    assert count(engine, UserRow, UserRow.org_id == made.org_id) == SIZES["users"] + 6


def test_every_request_reads_back_with_a_status_that_fits_its_authorization(
    ctx: ServiceContext, made: Generated
) -> None:
    caller = admin(ctx, made)
    seen: list[requests.RequestView] = []
    cursor = None
    while True:
        page = requests.list_requests(ctx, caller=caller, cursor=cursor, limit=40)
        assert len(page.items) <= 40
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len({v.request.id for v in seen}) == SIZES["requests"]
    created = [v.request.created_at for v in seen]
    assert created == sorted(created, reverse=True)  # newest first, across pages
    statuses = Counter(v.status for v in seen)
    assert set(statuses) == set(RequestStatus)  # every status there is, each at least once
    granted = {RequestStatus.APPROVED, RequestStatus.COMPLETED, RequestStatus.REVOKED}
    for v in seen:
        assert (v.request.authorization is not None) == (v.status in granted)
    for v in seen[::10]:  # signed with the generator's key, which the registry holds
        assert requests.verify_request(ctx, caller=caller, request_id=v.request.id)
    assert sum(n for s, n in statuses.items() if s in granted) == SIZES["authorizations"]
    pending = requests.list_requests(ctx, caller=caller, status=RequestStatus.PENDING, limit=5)
    assert pending.items
    assert pending.next_cursor is not None
    assert {v.status for v in pending.items} == {RequestStatus.PENDING}


def test_a_user_is_allowed_a_task_they_hold_a_grant_for_and_denied_another(
    ctx: ServiceContext, made: Generated
) -> None:
    caller = admin(ctx, made)
    active = requests.list_authorizations(ctx, caller=caller, user="*", active=True).items
    assert active
    grant = active[0].request
    assert grant.authorization is not None
    user = directory.get_user(ctx, caller=caller, upn=grant.requester_upn)
    me = Caller(made.org_id, user.id)
    allowed = access.check_access(ctx, caller=me, user=user.upn, task=str(grant.target))
    assert allowed.allowed
    assert allowed.reason is Reason.AUTHORIZED
    assert allowed.authorization_id == grant.authorization.id
    theirs = requests.list_authorizations(ctx, caller=caller, user=user.upn, active=True, limit=500)
    mine = {str(v.request.target) for v in theirs.items}
    other = next(t for t in made.tasks if t not in mine)
    denied = access.check_access(ctx, caller=me, user=user.upn, task=other)
    assert not denied.allowed
    assert denied.reason is Reason.AUTHORIZATION_REQUIRED


def test_a_generated_request_is_approved_like_any_and_the_audit_chain_verifies(
    ctx: ServiceContext, engine: Engine, database_url: str
) -> None:
    made = generate(database_url, **SIZES)  # its own: this test changes what it reads
    caller = admin(ctx, made)
    before = count(engine, AuditRow, AuditRow.org_id == made.org_id)
    domain = made.admin_upn.split("@")[1]
    approver_user = directory.get_user(ctx, caller=caller, upn=f"approver1@{domain}")
    approver = Caller(made.org_id, approver_user.id)
    pending = requests.list_requests(ctx, caller=approver, status=RequestStatus.PENDING, limit=100)
    one = next(v.request for v in pending.items if v.request.approvals_required == 1)
    user = directory.get_user(ctx, caller=caller, upn=one.requester_upn)
    me = Caller(made.org_id, user.id)
    assert not access.check_access(ctx, caller=me, user=user.upn, task=str(one.target)).allowed
    # The generator's key is new to this process. Verify first, outside any transaction: looked
    # up inside the approval's, on SQLite, the key registry's second connection waits for the
    # approval's own write lock (30 s, then ConcurrentChange), a problem of jitpam's, not the
    # data's.
    assert requests.verify_request(ctx, caller=approver, request_id=one.id)
    view = requests.approve_request(ctx, caller=approver, request_id=one.id, comment="ok")
    assert view.status is RequestStatus.APPROVED
    assert access.check_access(ctx, caller=me, user=user.upn, task=str(one.target)).allowed
    verified = audit_log.verify_audit(ctx, caller=caller)
    assert verified.report.ok, verified.report.problem
    # The chain holds the services' records and this test's, nothing for the bulk rows.
    assert verified.report.records == before + 3


def test_the_scale_benchmark_runs_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--db",
            f"sqlite:///{tmp_path / 'scale.db'}",
            *("--policies", "40", "--authorizations", "150", "--requests", "200"),
            *("--users", "15", "--samples", "2", "--pages", "2", "--budget", "2"),
            *("--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    figures = {f["name"]: f for f in result["figures"]}
    assert figures["server start to /readyz"]["value"] > 0
    assert figures["server resident memory after the run (VmRSS)"]["value"] > 0
    assert figures["POST /check, cold (first after start)"]["note"].endswith("(authorized)")
    lists = [f for f in result["figures"] if f["unit"] == "ms" and f["target"] is not None]
    assert len(lists) > 20
    assert all(f["samples"] >= 1 and not f["note"].startswith("HTTP") for f in lists), [
        (f["name"], f["note"]) for f in lists if f["note"]
    ]
    assert "server start to /readyz" in done.stdout
