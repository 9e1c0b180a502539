"""The connector pass (services/connectors.py) from real grants to a real PostgreSQL server:
grants start and end, the target follows; every change is audited; failures retry, show as
"still present", and alert; a pass cut short anywhere is finished by the next without losing or
doubling a change. Runs on each database the suite uses for jitpam's own store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from psycopg import sql

from jitpam.adapters.connectors.directory import ConnectorDirectory
from jitpam.domain.audit import Outcome
from jitpam.domain.connectors import ChangeOutcome, ConnectorConfig, Plan
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import audit_log, connectors, directory, organizations, requests
from jitpam.services.context import ServiceContext
from jitpam.services.ports import AuditFilter, ConnectorTarget
from tests.integration.pg_roles import admin, dsn, made_roles, session_as
from tests.integration.pg_roles import members as all_members
from tests.integration.world import Person, World
from tests.slapd import CONNECTOR_DN, GROUPS, PEOPLE, SlapdServer

SEARCH = "Exchange\\Mailbox Search"  # a role
DISCOVERY = "Exchange\\Discovery Management"  # a role group holding Mailbox Search
MOVE = "Exchange\\Move Mailboxes"


def members(role: str) -> list[str]:
    return all_members(role, admins=False)


@dataclass
class Setup:
    world: World
    ctx: ServiceContext
    folder: Path
    prefix: str
    connector_role: str
    search: str  # the PostgreSQL role bound to Mailbox Search
    movers: str  # ... to Move Mailboxes
    alice: Person
    bob: Person

    def login(self, person: Person) -> str:
        return self.prefix + person.upn.split("@")[0]

    def write(self, name: str = "exchange", **extra: str) -> None:
        lines = [
            'kind = "postgresql"',
            'dsn = "env:PG_DSN"',
            f'login = "{self.prefix}{{local}}"',
            *(f"{k} = {v}" for k, v in extra.items()),
            f'[[bindings]]\nrole = "Exchange\\\\Mailbox Search"\ngrant = "{self.search}"',
            f'[[bindings]]\nrole = "Exchange\\\\Move Mailboxes"\ngrant = "{self.movers}"',
        ]
        (self.folder / f"{name}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def config(self) -> ConnectorConfig:
        assert self.ctx.connectors is not None
        return self.ctx.connectors.configured(self.world.org.name).configs["exchange"]

    def run(self) -> connectors.PassReport:
        return connectors.run_pass(self.ctx, org_id=self.world.org.id, config=self.config)

    def grant(
        self, person: Person, target: str = SEARCH, kind: PolicyType = PolicyType.ROLE
    ) -> UUID:
        view = requests.new_request(
            self.ctx, caller=person.caller, type=kind, target=target, reason="case 4711"
        )
        assert view.status is RequestStatus.APPROVED
        return view.request.id

    def revoke(self, request_id: UUID) -> None:
        requests.revoke_authorization(
            self.ctx, caller=self.world.admin.caller, request_id=request_id
        )

    def state(self) -> connectors.ConnectorView:
        return connectors.connector_status(
            self.ctx, caller=self.world.admin.caller, name="exchange"
        )

    def audit(self, operation: str) -> list[tuple[Outcome, dict[str, object]]]:
        page = audit_log.search_audit(
            self.ctx,
            caller=self.world.admin.caller,
            flt=AuditFilter(operation=operation),
            limit=500,
        )
        return [(r.outcome, dict(r.details)) for r in reversed(page.items)]


@pytest.fixture
def setup(world: World, tmp_path: Path) -> Iterator[Setup]:
    prefix = f"jitpam_p_{uuid4().hex[:6]}_"
    password = f"pw-{uuid4().hex}"
    root = tmp_path / "connectors"
    folder = root / world.org.name
    folder.mkdir(parents=True)
    source = ConnectorDirectory(root, environ={"PG_DSN": dsn(prefix + "connector", password)})
    ctx = replace(world.ctx, connectors=source)
    world.ctx = ctx
    approver = world.user("approver")
    world.group("Approvers", approver)
    organizations.enable_access_control(ctx, caller=world.admin.caller, admin_group="Approvers")
    for target, kind in (
        (SEARCH, PolicyType.ROLE),
        (MOVE, PolicyType.ROLE),
        (DISCOVERY, PolicyType.ROLE_GROUP),
    ):
        world.policy(target, type=kind, approval=ApprovalType.AUTO, approver_group="Approvers")
    alice, bob = world.user("alice"), world.user("bob")
    s = Setup(
        world,
        ctx,
        folder,
        prefix,
        prefix + "connector",
        prefix + "search",
        prefix + "movers",
        alice,
        bob,
    )
    with made_roles(
        connector=s.connector_role,
        password=password,
        bound=[s.search, s.movers],
        logins=[s.login(alice), s.login(bob), prefix + "standing"],
    ):
        s.write()
        yield s


def test_a_grant_makes_the_login_a_member_and_its_revocation_takes_it_away(setup: Setup) -> None:
    s = setup
    request_id = s.grant(s.alice)
    report = s.run()
    assert [o.done for o in report.outcomes] == [True]
    assert members(s.search) == [s.login(s.alice)]

    s.revoke(request_id)
    s.run()
    assert members(s.search) == []
    added = s.audit("Add-ConnectorMember")
    removed = s.audit("Remove-ConnectorMember")
    assert [(o, d["member"], d["user"]) for o, d in added] == [
        (Outcome.SUCCESS, s.login(s.alice), s.alice.upn)
    ]
    assert [(o, d["member"], d["why"]) for o, d in removed] == [
        (Outcome.SUCCESS, s.login(s.alice), "no grant needs it")
    ]
    assert s.state().health == "ok"


def test_expiry_and_disabling_the_user_take_access_away_too(setup: Setup) -> None:
    s = setup
    s.grant(s.alice)
    s.grant(s.bob)
    s.run()
    assert members(s.search) == sorted([s.login(s.alice), s.login(s.bob)])

    directory.set_user(s.ctx, caller=s.world.admin.caller, upn=s.bob.upn, enabled=False)
    s.run()
    assert members(s.search) == [s.login(s.alice)]
    s.world.later(hours=9)  # past the default duration
    s.run()
    assert members(s.search) == []


def test_access_stays_until_the_last_grant_that_needs_it_ends(setup: Setup) -> None:
    s = setup
    role = s.grant(s.alice)
    group = s.grant(s.alice, DISCOVERY, PolicyType.ROLE_GROUP)  # holds Mailbox Search too
    s.run()
    assert members(s.search) == [s.login(s.alice)]
    s.revoke(role)
    s.run()
    assert members(s.search) == [s.login(s.alice)]  # the role group still needs it
    s.revoke(group)
    s.run()
    assert members(s.search) == []


def test_a_member_there_before_jitpam_is_left_in_place(setup: Setup) -> None:
    s = setup
    with admin() as conn:
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(s.search), sql.Identifier(s.login(s.alice))
            )
        )
    request_id = s.grant(s.alice)
    s.run()
    s.revoke(request_id)
    s.run()
    assert members(s.search) == [s.login(s.alice)]
    assert [d["found"] for _, d in s.audit("Register-ConnectorMember")] == [
        "a member already: jitpam will never remove it"
    ]
    assert s.state().pre_existing == 1


def test_drift_is_reported_and_removed_only_when_the_configuration_says_repair(
    setup: Setup,
) -> None:
    s = setup
    standing = s.prefix + "standing"
    with admin() as conn:
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(s.movers), sql.Identifier(standing))
        )
    s.run()
    s.run()
    assert members(s.movers) == [standing]
    drift = s.audit("Report-ConnectorDrift")
    assert [(d["member"], d["repaired"]) for _, d in drift] == [(standing, False)]  # once
    assert [(m.target, m.member) for m in s.state().state.drift] == [(s.movers, standing)]

    s.write(reconcile='"repair"')
    s.run()
    assert members(s.movers) == []
    removed = s.audit("Remove-ConnectorMember")
    assert [(d["member"], d["why"]) for _, d in removed] == [(standing, "drift")]
    assert s.state().state.drift == ()


def test_a_target_that_is_down_is_retried_and_a_removal_it_holds_back_is_loud(
    setup: Setup,
) -> None:
    s = setup
    s.write(max_failures_before_alert="2")
    request_id = s.grant(s.alice)
    s.run()
    with admin() as conn:  # the target refuses the connector from now on
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(s.connector_role)))
    s.revoke(request_id)
    report = s.run()
    assert "cannot connect" in (report.error or "")
    view = s.state()
    assert view.health == "removal failing"
    assert view.state.failures == 1
    assert view.state.next_attempt_at == view.state.last_run_at + timedelta(seconds=1)
    assert [(f.membership.member, f.upn) for f in view.state.still_present] == [
        (s.login(s.alice), s.alice.upn)
    ]
    with s.ctx.reader() as uow:
        assert connectors.still_present(uow, s.world.org.id, s.alice.upn) == [
            f"exchange ({s.search})"
        ]
    failed = s.audit("Sync-Connector")
    assert [(o, d["failed_changes"]) for o, d in failed] == [(Outcome.FAILURE, 1)]

    s.world.later(seconds=1)
    s.run()  # the second failure in a row: the alert goes out, once
    s.world.later(seconds=2)
    s.run()
    with s.ctx.reader() as uow:
        alerts = [
            m
            for m in uow.outbox.listing(s.world.org.id, state=None, cursor=None, limit=50).items
            if m.event.value == "connector.failing"
        ]
    assert len(alerts) == 1
    assert s.login(s.alice) in str(alerts[0].payload)

    with admin() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(s.connector_role)))
    s.world.later(seconds=5)
    s.run()
    assert members(s.search) == []
    view = s.state()
    assert (view.health, view.state.failures, view.state.still_present) == ("ok", 0, ())


class Crash(BaseException):
    """The process dies here (a server killed): nothing after this point runs."""


@dataclass
class Crashing:
    """A target that makes the plan's changes and then dies before the pass records them, or
    dies before making them."""

    inner: ConnectorTarget
    after: bool

    @property
    def config(self) -> ConnectorConfig:
        return self.inner.config

    def present(self, targets: object = ()) -> dict[str, frozenset[str]]:
        return self.inner.present(targets)  # type: ignore[arg-type]

    def apply(self, plan: Plan) -> list[ChangeOutcome]:
        if self.after:
            self.inner.apply(plan)
        raise Crash


def crash_once(s: Setup, *, after: bool) -> None:
    real = s.ctx.connectors
    assert real is not None

    class Once:
        def configured(self, org_name: str):  # type: ignore[no-untyped-def]
            return real.configured(org_name)

        def open(self, config: ConnectorConfig) -> ConnectorTarget:
            return Crashing(real.open(config), after)

    with pytest.raises(Crash):
        connectors.run_pass(
            replace(s.ctx, connectors=Once()), org_id=s.world.org.id, config=s.config
        )  # type: ignore[arg-type]
    s.world.later(minutes=3)  # the dead pass's lease runs out


@pytest.mark.parametrize("after", [False, True], ids=["before-the-change", "after-the-change"])
def test_a_pass_cut_short_is_finished_by_the_next_without_losing_or_doubling(
    setup: Setup, after: bool
) -> None:
    s = setup
    request_id = s.grant(s.alice)
    crash_once(s, after=after)
    assert members(s.search) == ([s.login(s.alice)] if after else [])
    s.run()
    assert members(s.search) == [s.login(s.alice)]
    assert (s.state().added, s.state().pre_existing) == (1, 0)  # jitpam's, not adopted

    s.revoke(request_id)
    crash_once(s, after=after)
    s.run()
    assert members(s.search) == []
    assert s.state().added == 0
    assert s.run().plan == Plan(*(frozenset(),) * 5)
    # Each change audited once, as made by jitpam; one found made after a crash says so.
    for operation in ("Add-ConnectorMember", "Remove-ConnectorMember"):
        assert [(o, d.get("recovered", False)) for o, d in s.audit(operation)] == [
            (Outcome.SUCCESS, after)
        ]
    assert s.audit("Report-ConnectorDrift") == []
    assert s.audit("Register-ConnectorMember") == []


def test_a_dry_run_shows_the_plan_and_changes_nothing(setup: Setup) -> None:
    s = setup
    s.grant(s.alice)
    report = connectors.reconcile(s.ctx, caller=s.world.admin.caller, name="exchange", dry_run=True)
    assert report.plan is not None
    assert [(m.target, m.member) for m in report.plan.adds] == [(s.search, s.login(s.alice))]
    assert members(s.search) == []
    assert s.state().state.last_run_at is None
    report = connectors.reconcile(s.ctx, caller=s.world.admin.caller, name="exchange")
    assert members(s.search) == [s.login(s.alice)]
    assert [d["dry_run"] for _, d in s.audit("Sync-Connector")] == [True, False]


def test_the_worker_runs_a_pass_only_when_something_changed_or_it_is_due(setup: Setup) -> None:
    s = setup
    assert connectors.run_connectors(s.ctx) == 1  # never ran
    assert connectors.run_connectors(s.ctx) == 0  # nothing changed
    s.grant(s.alice)
    assert connectors.run_connectors(s.ctx) == 1
    assert members(s.search) == [s.login(s.alice)]
    s.write(reconcile='"repair"')  # a configuration change
    assert connectors.run_connectors(s.ctx) == 1
    s.world.later(minutes=5)
    assert connectors.run_connectors(s.ctx) == 1  # the periodic reconciliation


def test_a_file_that_does_not_parse_is_reported_and_runs_nothing(setup: Setup) -> None:
    s = setup
    (s.folder / "broken.toml").write_text('kind = "postgresql"\n', encoding="utf-8")
    views = {v.name: v for v in connectors.list_connectors(s.ctx, caller=s.world.admin.caller)}
    assert views["broken"].health == "misconfigured"
    assert "dsn: is required" in (views["broken"].problem or "")
    assert views["exchange"].health == "not run yet"
    assert connectors.run_connectors(s.ctx) == 1


def test_connectors_are_for_role_management_only(setup: Setup) -> None:
    from jitpam.domain.errors import NotPermitted

    with pytest.raises(NotPermitted):
        connectors.list_connectors(setup.ctx, caller=setup.alice.caller)
    with pytest.raises(NotPermitted):
        connectors.reconcile(setup.ctx, caller=setup.alice.caller, name="exchange")


def test_an_ldap_group_follows_the_grants_through_a_refusal_and_keeps_its_placeholder(
    setup: Setup, slapd: SlapdServer
) -> None:
    s = setup
    group = f"cn=search-{uuid4().hex[:8]},{GROUPS}"
    slapd.add(group, ["groupOfNames"], {"cn": group.split(",")[0][3:], "member": [group]})
    (s.folder / "directory.toml").write_text(
        'kind = "ldap"\n'
        f'url = "{slapd.url}"\n'
        f'bind_dn = "{CONNECTOR_DN}"\n'
        'password = "env:LDAP_PASSWORD"\n'
        f'user_dn = "uid={{local}},{PEOPLE}"\n'
        f'[[bindings]]\nrole = "Exchange\\\\Mailbox Search"\ngroup_dn = "{group}"\n',
        encoding="utf-8",
    )
    assert s.ctx.connectors is not None
    secrets = {"LDAP_PASSWORD": slapd.connector_password}
    source = ConnectorDirectory(s.folder.parent, environ=secrets)
    ctx = replace(s.ctx, connectors=source)
    config = source.configured(s.world.org.name).configs["directory"]
    alice = f"uid=alice,{PEOPLE}"

    first = s.grant(s.alice)
    second = s.grant(s.bob)
    connectors.run_pass(ctx, org_id=s.world.org.id, config=config)
    assert slapd.members(group) == sorted([group, alice, f"uid=bob,{PEOPLE}"])
    s.revoke(first)
    secrets["LDAP_PASSWORD"] = "not-the-password"  # the directory refuses the connector now
    report = connectors.run_pass(ctx, org_id=s.world.org.id, config=config)
    assert report.error is not None
    assert "not-the-password" not in report.error
    assert slapd.members(group) == sorted([group, alice, f"uid=bob,{PEOPLE}"])
    with ctx.reader() as uow:
        assert connectors.still_present(uow, s.world.org.id, s.alice.upn) == [
            f"directory ({group})"
        ]
    secrets["LDAP_PASSWORD"] = slapd.connector_password
    s.revoke(second)
    s.world.later(seconds=1)  # the retry is due
    report = connectors.run_pass(ctx, org_id=s.world.org.id, config=config)
    assert all(o.done for o in report.outcomes)
    assert slapd.members(group) == [group]  # groupOfNames keeps a member: its placeholder
    removed = s.audit("Remove-ConnectorMember")
    assert sorted(str(d["user"]) for _, d in removed) == sorted([s.alice.upn, s.bob.upn])


def grant_by_hand(role: str, login: str, *, revoke: bool = False) -> None:
    with admin() as conn:
        statement = "REVOKE {} FROM {}" if revoke else "GRANT {} TO {}"
        conn.execute(sql.SQL(statement).format(sql.Identifier(role), sql.Identifier(login)))


def test_a_member_there_before_who_left_and_was_added_again_by_jitpam_is_removed(
    setup: Setup,
) -> None:
    s = setup
    grant_by_hand(s.search, s.login(s.alice))
    request_id = s.grant(s.alice)
    s.run()  # found there: pre-existing
    grant_by_hand(s.search, s.login(s.alice), revoke=True)  # the standing membership ends
    s.run()  # the grant still needs it: jitpam adds it, and it is jitpam's now
    assert members(s.search) == [s.login(s.alice)]
    assert (s.state().added, s.state().pre_existing) == (1, 0)
    s.revoke(request_id)
    s.run()
    assert members(s.search) == []


def test_a_renamed_connector_takes_over_what_jitpam_added_and_still_removes_it(
    setup: Setup,
) -> None:
    s = setup
    request_id = s.grant(s.alice)
    s.run()
    (s.folder / "exchange.toml").rename(s.folder / "exchange-db.toml")
    assert s.ctx.connectors is not None
    config = s.ctx.connectors.configured(s.world.org.name).configs["exchange-db"]
    connectors.run_pass(s.ctx, org_id=s.world.org.id, config=config)
    views = {v.name: v for v in connectors.list_connectors(s.ctx, caller=s.world.admin.caller)}
    assert (views["exchange-db"].added, views["exchange-db"].pre_existing) == (1, 0)
    assert "exchange" not in views  # nothing left of the old name
    taken = [d["found"] for _, d in s.audit("Register-ConnectorMember")]
    assert taken == [
        "added by jitpam through connector exchange, whose configuration is gone: taken over"
    ]
    s.revoke(request_id)
    connectors.run_pass(s.ctx, org_id=s.world.org.id, config=config)
    assert members(s.search) == []


@pytest.mark.parametrize("how", ["deleted", "broken"])
def test_a_connector_that_cannot_run_any_more_says_what_it_left_behind(
    setup: Setup, how: str
) -> None:
    s = setup
    request_id = s.grant(s.alice)
    s.run()
    if how == "deleted":
        (s.folder / "exchange.toml").unlink()
    else:
        (s.folder / "exchange.toml").write_text('kind = "postgresql"\n', encoding="utf-8")
    s.revoke(request_id)
    for _ in range(3):  # said once, however many rounds see it
        connectors.run_connectors(s.ctx)
    assert members(s.search) == [s.login(s.alice)]  # nothing can take it away now
    view = connectors.connector_status(s.ctx, caller=s.world.admin.caller, name="exchange")
    assert view.health == ("removed" if how == "deleted" else "misconfigured")
    assert [(f.membership.member, f.upn) for f in view.state.still_present] == [
        (s.login(s.alice), s.alice.upn)
    ]
    failed = s.audit("Sync-Connector")
    assert len(failed) == 1
    assert "what jitpam added through it stays" in str(failed[0][1]["error"])
    with s.ctx.reader() as uow:
        events = [
            m.event.value
            for m in uow.outbox.listing(s.world.org.id, state=None, cursor=None, limit=50).items
        ]
    assert events.count("connector.failing") == 1


def test_a_removal_whose_sessions_could_not_be_ended_is_finished_later(setup: Setup) -> None:
    s = setup
    request_id = s.grant(s.alice)
    s.run()
    session = session_as(s.login(s.alice), s.search)
    try:
        with admin() as conn:  # the connector may no longer end sessions
            conn.execute(
                sql.SQL("REVOKE pg_signal_backend FROM {}").format(sql.Identifier(s.connector_role))
            )
        s.revoke(request_id)
        report = s.run()
        assert "sessions were not ended" in (report.failed[0].error or "")
        assert members(s.search) == []  # revoked, but the session that ran SET ROLE holds it
        assert session.execute("SELECT current_user").fetchone() == (s.search,)
        assert s.state().health == "removal failing"

        with admin() as conn:
            conn.execute(
                sql.SQL("GRANT pg_signal_backend TO {}").format(sql.Identifier(s.connector_role))
            )
        s.world.later(seconds=1)
        report = s.run()
        assert [(o.change.value, o.done, o.sessions_ended) for o in report.outcomes] == [
            ("remove", True, 1)
        ]
        assert s.state().health == "ok"
        removed = s.audit("Remove-ConnectorMember")
        assert [(o, d.get("recovered", False)) for o, d in removed] == [
            (Outcome.FAILURE, False),
            (Outcome.SUCCESS, True),
        ]
        assert s.audit("Report-ConnectorDrift") == []
    finally:
        session.close()


def test_two_users_the_mapping_cannot_tell_apart_get_nothing(setup: Setup) -> None:
    s = setup
    other = f"second-{uuid4().hex[:8]}.example.com"
    organizations.add_domain(s.ctx, org_name=s.world.org.name, domain=other)
    twin = directory.add_user(  # alice of the other domain: the same login under {local}
        s.ctx, caller=s.world.admin.caller, upn=f"alice@{other}", display_name="Alice Two"
    )
    s.grant(s.alice)
    report = s.run()
    assert members(s.search) == []
    assert any(twin.upn in u and s.alice.upn in u for u in report.unmappable)
    assert "map to" in (s.state().state.last_error or "")


def test_two_connectors_on_one_role_the_second_is_refused(setup: Setup) -> None:
    s = setup
    text = (s.folder / "exchange.toml").read_text()
    (s.folder / "second.toml").write_text(text, encoding="utf-8")
    views = {v.name: v for v in connectors.list_connectors(s.ctx, caller=s.world.admin.caller)}
    assert views["exchange"].problem is None
    assert "which connector exchange binds already" in (views["second"].problem or "")
