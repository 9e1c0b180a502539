"""Every prepared statement gives what SQLAlchemy gives for the same statement.

A ``Prepared`` statement runs on the driver's cursor with parameters and columns converted by
hand (adapters/sql/prepared.py). Here each one is watched while the product's paths run (a new
request, votes, checks, a revocation, tokens, webhooks): every read is run again through
SQLAlchemy in the same transaction and must return the same rows; every write is run both ways
inside a savepoint rolled back after each, and the rows it touched must read the same. The paths
must meet every registered statement, so a statement added without a path here fails.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import Engine, Table, and_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Insert, Update

import jitpam.adapters.sql as sql_package
from jitpam.adapters.clock import FixedClock
from jitpam.adapters.signing import Ed25519Signer
from jitpam.adapters.sql.prepared import STATEMENTS, Prepared
from jitpam.adapters.sql.uow import SqlUnitOfWork, unit_of_work_factory
from jitpam.adapters.webhooks import OutboundUrls
from jitpam.domain.directory import UserKind
from jitpam.domain.names import QualifiedName
from jitpam.domain.notifications import new_webhook_secret
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import AccessRequest
from jitpam.services import access, audit_log, auth, organizations, requests, webhooks
from jitpam.services.context import ServiceContext
from jitpam.services.ports import UnitOfWork
from tests.integration.conftest import START
from tests.integration.world import Person, World


def _named_statements() -> dict[str, Prepared]:
    """Every module-level ``Prepared`` of the SQL adapter, by ``module.NAME``."""
    found: dict[str, Prepared] = {}
    for info in pkgutil.iter_modules(sql_package.__path__):
        module = importlib.import_module(f"{sql_package.__name__}.{info.name}")
        for attr, value in vars(module).items():
            if isinstance(value, Prepared):
                found[f"{info.name}.{attr}"] = value
    return found


NAMED = _named_statements()


@dataclass
class Watched:
    calls: dict[str, int] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)


def _rows(result: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in result]


def _touched(session: Session, table: Table, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of ``table`` whose primary key the write's parameters name."""
    keys = []
    for column in table.primary_key.columns:
        value = params.get(column.key)
        if value is None:
            named = {"org_id": "org"}.get(column.key, table.name.removesuffix("s"))
            value = params.get(named, params.get("id"))
        keys.append(column == value)
    return _rows(session.execute(select(table).where(and_(*keys))))


def _compare_write(
    prepared: Prepared,
    run: Callable[[Prepared, Session, Sequence[Mapping[str, Any]]], None],
    session: Session,
    rows: Sequence[Mapping[str, Any]],
) -> str | None:
    """Run the write both ways, each in a savepoint rolled back; None if they agree."""
    stmt = prepared.statement(session.connection().dialect)
    assert isinstance(stmt, Insert | Update)
    table = stmt.table
    assert isinstance(table, Table)
    outcomes = []
    for way in ("prepared", "sqlalchemy"):
        savepoint = session.begin_nested()
        session.connection()  # SAVEPOINT is sent when the session next uses its connection
        if way == "prepared":
            run(prepared, session, rows)
        else:
            session.execute(stmt, list(rows))
        outcomes.append([_touched(session, table, p) for p in rows])
        savepoint.rollback()
    if outcomes[0] != outcomes[1] or not any(outcomes[0]):
        return f"prepared wrote {outcomes[0]}, SQLAlchemy wrote {outcomes[1]}"
    return None


@contextmanager
def watching() -> Iterator[Watched]:
    """Every prepared statement's calls counted and compared (see module) while it lasts."""
    seen = Watched()
    name_of = {id(p): n for n, p in NAMED.items()}
    real_all, real_execute, real_many = Prepared.all, Prepared.execute, Prepared.execute_many

    def note(prepared: Prepared) -> str:
        name = name_of[id(prepared)]
        seen.calls[name] = seen.calls.get(name, 0) + 1
        return name

    def all_(self: Prepared, session: Session, **params: Any) -> list[Any]:
        name = note(self)
        got = real_all(self, session, **params)
        stmt = self.statement(session.connection().dialect)
        expected = _rows(session.execute(stmt, params))
        if [tuple(r) for r in got] != expected:
            seen.mismatches.append(f"{name}: {got} != {expected}")
        return got

    def first(self: Prepared, session: Session, **params: Any) -> Any | None:
        found = all_(self, session, **params)
        return found[0] if found else None

    def execute(self: Prepared, session: Session, **params: Any) -> int:
        name = note(self)
        if (problem := _compare_write(self, real_many, session, [params])) is not None:
            seen.mismatches.append(f"{name}: {problem}")
        return real_execute(self, session, **params)

    def execute_many(self: Prepared, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        name = note(self)
        if (problem := _compare_write(self, real_many, session, rows)) is not None:
            seen.mismatches.append(f"{name}: {problem}")
        real_many(self, session, rows)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Prepared, "all", all_)
        patch.setattr(Prepared, "first", first)
        patch.setattr(Prepared, "execute", execute)
        patch.setattr(Prepared, "execute_many", execute_many)
        yield seen


TASK = "Exchange\\New-MoveRequest"
MAIL_READ = QualifiedName("Office365", "Mail.Read")
ROLE = "Move Mailboxes"


def _run_paths(engine: Engine) -> None:
    """The product's paths that the prepared statements serve."""
    clock = FixedClock(START)
    sessions = unit_of_work_factory(engine)

    def new_uow() -> UnitOfWork:
        return SqlUnitOfWork(sessions)

    ctx = ServiceContext(uow=new_uow, clock=clock, signer=Ed25519Signer.generate())
    w = World(ctx, clock)
    admin = w.admin.caller
    requester = w.user("requester", roles=(ROLE,), role_groups=("Exchange\\Recipient Management",))
    first, second = w.user("first"), w.user("second")
    w.group("Approvers", first, second)
    organizations.enable_access_control(ctx, caller=admin, admin_group="Approvers")
    w.exempt(w.user("robot"))
    webhooks.add_webhook(
        ctx,
        caller=admin,
        url="https://hooks.example.com/jitpam",
        events=["request.created", "request.approved"],
        urls=OutboundUrls(allow_private=True),
        secret=new_webhook_secret(),
    )
    w.policy(TASK, approver_group="Approvers", approvals_required=2)
    made = requests.new_request(
        ctx, caller=requester.caller, type=PolicyType.TASK, target=TASK, reason="move"
    )
    requests.request_actions(ctx, caller=requester.caller, request_id=made.request.id)
    requests.approve_request(ctx, caller=first.caller, request_id=made.request.id)
    requests.approve_request(ctx, caller=second.caller, request_id=made.request.id)
    access.check_access(ctx, caller=requester.caller, user=None, task=TASK)
    access.check_access(ctx, caller=admin, user=requester.upn, task=TASK)
    issued = auth.create_token(ctx, caller=requester.caller)
    auth.authenticate(ctx, secret=issued.secret)
    access.check_with_token(ctx, secret=issued.secret, pairs=[(None, TASK)])
    requests.get_request(ctx, caller=admin, request_id=made.request.id)
    requests.revoke_authorization(ctx, caller=admin, request_id=made.request.id, comment="done")
    audit_log.verify_audit(ctx, caller=admin)
    _data_access_request(ctx, w, requester)


def _data_access_request(ctx: ServiceContext, w: World, installer: Person) -> None:
    """A data access request for an application, stored and found as its open request (through
    the repository until the use case of installing an application files one)."""
    app = w.user("mailer", kind=UserKind.APPLICATION)
    at = ctx.clock.now()
    with ctx.uow() as uow:
        filer, subject = uow.users.get(installer.caller.user_id), uow.users.get(app.caller.user_id)
        assert filer is not None
        assert subject is not None
        request = AccessRequest.open(
            org_id=w.org.id,
            requester=filer,
            policy_id=uuid4(),
            type=PolicyType.DATA_ACCESS,
            target=MAIL_READ,
            reason="the mail archiver",
            duration_hours=8,
            approvals_required=1,
            at=at,
            pending_hours=24,
            subject=subject,
            resources=("group:Sales", "mailbox:ceo@example.com"),
        )
        uow.requests.add(request)
        uow.commit()
    with ctx.reader() as uow:
        found = uow.requests.open_for(
            w.org.id,
            installer.caller.user_id,
            PolicyType.DATA_ACCESS,
            str(MAIL_READ),
            at,
            subject_id=app.caller.user_id,
        )
    assert found == request


@pytest.fixture(scope="module")
def paths_run(engine: Engine) -> Watched:
    with watching() as seen:
        _run_paths(engine)
    return seen


@pytest.mark.parametrize("name", sorted(NAMED))
def test_the_prepared_statement_gives_what_sqlalchemy_gives(paths_run: Watched, name: str) -> None:
    assert paths_run.calls.get(name, 0) > 0, f"no path ran {name}"
    assert [m for m in paths_run.mismatches if m.startswith(f"{name}:")] == []


def test_every_prepared_statement_is_named_in_a_module() -> None:
    assert len(NAMED) == len(STATEMENTS)
