"""Connectors in worker processes: a worker killed in the middle of a change leaves nothing lost
or doubled; the next worker finishes it, and each change is audited once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jitpam.bootstrap import build_context
from jitpam.domain.audit import Outcome
from jitpam.domain.connectors import Change
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.services import audit_log, directory, organizations, policies, requests
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import AuditFilter
from tests.e2e.conftest import FAST, JITPAM
from tests.integration.pg_roles import admin, dsn, made_roles, members

ROLE = "Exchange\\Mailbox Search"


def wait_for(check: Callable[[], object], deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.1)  # polling interval
    raise AssertionError("not done in time")


@dataclass
class Org:
    ctx: ServiceContext
    name: str
    admin: Caller
    alice: Caller
    alice_upn: str

    def audit(self, operation: str) -> list[tuple[Outcome, dict[str, object]]]:
        page = audit_log.search_audit(
            self.ctx, caller=self.admin, flt=AuditFilter(operation=operation), limit=100
        )
        return [(r.outcome, dict(r.details)) for r in page.items]

    def records(self) -> list[tuple[str, Change | None]]:
        with self.ctx.reader() as uow:
            return [
                (r.applied.membership.member, r.pending)
                for r in uow.connectors.records(self.admin.org_id, "exchange")
            ]


@pytest.fixture
def org(fresh_database: str) -> Iterator[Org]:
    ctx, engine = build_context(database_url=fresh_database)
    suffix = uuid.uuid4().hex[:8]
    made, admin_user = organizations.create_organization(
        ctx,
        name=f"c-{suffix}",
        admin_upn=f"admin@{suffix}.test",
        admin_display_name="Admin",
        catalogs=("exchange",),
    )
    boss = Caller(made.id, admin_user.id)
    approver = directory.add_user(ctx, caller=boss, upn=f"approver@{suffix}.test", display_name="A")
    directory.add_group(ctx, caller=boss, name="Approvers")
    directory.change_membership(ctx, caller=boss, group="Approvers", upn=approver.upn, add=True)
    organizations.enable_access_control(ctx, caller=boss, admin_group="Approvers")
    policies.new_policy(
        ctx, caller=boss, type=PolicyType.ROLE, target=ROLE, approval_type=ApprovalType.AUTO
    )
    alice = directory.add_user(ctx, caller=boss, upn=f"alice@{suffix}.test", display_name="Al")
    yield Org(ctx, made.name, boss, Caller(made.id, alice.id), alice.upn)
    engine.dispose()


def start_worker(db: str, tmp: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with (tmp / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [JITPAM, "worker", "--db", db],
            env={**os.environ, **FAST, "JITPAM_DATA_DIR": str(tmp / name), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_a_worker_killed_in_the_middle_of_a_change_loses_and_doubles_nothing(
    org: Org, fresh_database: str, tmp_path: Path
) -> None:
    prefix = f"jitpam_w_{uuid.uuid4().hex[:6]}_"
    password = f"pw-{uuid.uuid4().hex}"
    folder = tmp_path / "connectors" / org.name
    folder.mkdir(parents=True)
    (folder / "exchange.toml").write_text(
        f'kind = "postgresql"\ndsn = "env:PG_DSN"\nlogin = "{prefix}{{local}}"\n'
        f'[[bindings]]\nrole = "{ROLE.replace(chr(92), chr(92) * 2)}"\ngrant = "{prefix}search"\n',
        encoding="utf-8",
    )
    env = {
        "JITPAM_CONNECTORS_DIR": str(tmp_path / "connectors"),
        "JITPAM_CONNECTOR_INTERVAL_MS": "100",
        "JITPAM_CONNECTOR_LEASE_SECONDS": "3",
        "PG_DSN": dsn(prefix + "connector", password),
    }
    login, role = prefix + "alice", prefix + "search"
    with (
        made_roles(connector=prefix + "connector", password=password, bound=[role], logins=[login]),
        admin() as blocker,
    ):
        # GRANT waits behind this lock; reading the members does not: the worker gets as far
        # as the change itself, and is killed there.
        blocker.autocommit = False
        blocker.execute("LOCK TABLE pg_catalog.pg_auth_members IN SHARE MODE")
        first = start_worker(fresh_database, tmp_path, "first", env)
        try:
            view = requests.new_request(
                org.ctx, caller=org.alice, type=PolicyType.ROLE, target=ROLE, reason="case 9"
            )
            wait_for(lambda: org.records() == [(login, Change.ADD)])
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=20)
        blocker.rollback()  # the dead worker's GRANT, still queued on the server, may run now

        second = start_worker(fresh_database, tmp_path, "second", env)
        try:
            wait_for(lambda: org.records() == [(login, None)] and members(role, admins=False))
            assert members(role, admins=False) == [login]
            requests.revoke_authorization(org.ctx, caller=org.admin, request_id=view.request.id)
            wait_for(lambda: org.records() == [] and not members(role, admins=False))
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0
        with admin() as conn:  # nothing of the test's is left connected when the roles go
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (prefix + "connector",),
            )
    added = [(o, d["member"]) for o, d in org.audit("Add-ConnectorMember")]
    removed = [(o, d["member"]) for o, d in org.audit("Remove-ConnectorMember")]
    assert added == [(Outcome.SUCCESS, login)]
    assert removed == [(Outcome.SUCCESS, login)]
    assert org.audit("Register-ConnectorMember") == []  # never mistaken for a member found there
