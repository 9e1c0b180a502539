"""Customer Lockbox through the services: an operator's engineer asks a customer, the customer's
setting decides whether its approvers must approve, access lasts the approved window and ends at
expiry or revocation, and every step lands in both organizations' audit chains.

The rules run on the in-memory unit of work; the flows that prove the adapter (isolation across
organizations, the 12-hour expiry written down by the sweeper) run on the databases too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.sql.uow import SqlUnitOfWork, unit_of_work_factory
from jitpam.domain.audit import AuditRecord, Outcome
from jitpam.domain.check import Reason
from jitpam.domain.errors import (
    AuthorizationNotActive,
    InvalidInput,
    NotFound,
    NotPermitted,
    RequestNotPending,
)
from jitpam.domain.requests import RequestStatus
from jitpam.services import audit_log, directory, lockbox, organizations, requests
from jitpam.services.context import KEEP, ServiceContext
from jitpam.services.ports import AuditFilter
from tests.conftest import database_of_its_own
from tests.integration.conftest import SIGNER
from tests.integration.world import Person, World, own_process

APPROVER_ROLE = "jitpam\\Customer Lockbox Access Approver"
REQUESTER_ROLE = "jitpam\\Lockbox Requester"
REASON = "Mailbox database repair for the customer's support case"


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    return memory_ctx


@dataclass(frozen=True)
class Scene:
    operator: World
    customer: World
    engineer: Person  # the operator's, holding Lockbox Requester
    approver: Person  # the customer's, holding Customer Lockbox Access Approver

    def file(self, hours: int = 2, service: str = "Exchange", who: Person | None = None) -> str:
        view = lockbox.file_request(
            self.operator.ctx,
            caller=(who or self.engineer).caller,
            customer=self.customer.org.name,
            service=service,
            reason=REASON,
            case_reference="EXSR123456",
            duration_hours=hours,
        )
        return str(view.request.id)

    def check(self, service: str = "Exchange", who: Person | None = None) -> Reason:
        return lockbox.check_customer_data_access(
            self.operator.ctx,
            caller=(who or self.engineer).caller,
            organization=self.customer.org.name,
            service=service,
            user=self.engineer.upn,
        ).reason

    def require_approval(self, max_hours: int | None = None) -> None:
        """The customer's administrator requires approval (and may lower the cap)."""
        organizations.set_organization_config(
            self.customer.ctx,
            caller=self.customer.admin.caller,
            lockbox_approval_required=True,
            lockbox_max_hours=KEEP if max_hours is None else max_hours,
        )


def make_scene(ctx: ServiceContext, clock: FixedClock) -> Scene:
    operator = World(ctx, clock)
    customer = World(ctx, clock)
    lockbox.designate_operator(ctx, org_name=operator.org.name)
    engineer = operator.user("engineer", roles=(REQUESTER_ROLE,))
    approver = customer.user("approver", roles=(APPROVER_ROLE,))
    return Scene(operator, customer, engineer, approver)


@pytest.fixture
def scene(ctx: ServiceContext, clock: FixedClock) -> Scene:
    return make_scene(ctx, clock)


@pytest.fixture
def db_scene(database_url: str, tmp_path: Path, clock: FixedClock) -> Iterator[Scene]:
    """On a database of its own: the operator is the whole installation's, and designating it
    writes to every organization's chain (the shared database holds chains that tamper tests
    broke on purpose)."""
    with database_of_its_own(database_url, tmp_path) as engine:
        sessions = unit_of_work_factory(engine)
        ctx = own_process(
            ServiceContext(uow=lambda: SqlUnitOfWork(sessions), clock=clock, signer=SIGNER)
        )
        yield make_scene(ctx, clock)


def chain(
    world: World, operation: str | None = None, outcome: Outcome | None = None
) -> list[AuditRecord]:
    with world.ctx.uow() as uow:
        return [
            r
            for r in uow.audit.records(world.org.id)
            if (operation is None or r.operation == operation)
            and (outcome is None or r.outcome is outcome)
        ]


# --- approval not required (the default) ------------------------------------------------------


def test_by_default_a_request_is_approved_automatically_but_never_skipped(scene: Scene) -> None:
    assert scene.check() is Reason.LOCKBOX_REQUEST_REQUIRED  # no request, no access
    request_id = scene.file(hours=2)
    assert scene.check() is Reason.LOCKBOX_APPROVED
    assert scene.check(service="SharePoint") is Reason.LOCKBOX_REQUEST_REQUIRED
    for world in (scene.customer, scene.operator):
        steps = [
            (r.operation, r.details.get("ApprovalDecision"))
            for r in chain(world)
            if r.target == request_id
        ]
        assert steps == [
            ("New-AccessToCustomerDataRequest", None),
            ("Set-AccessToCustomerDataRequest", "Approve"),
        ]
    scene.operator.later(hours=2)
    assert scene.check() is Reason.LOCKBOX_REQUEST_REQUIRED  # the window closed
    # The customer's chain has the checks of an engineer who asked it for access; the first,
    # before any request, told the customer nothing and is the operator's alone.
    checks = chain(scene.customer, "Test-AccessToCustomerData")
    assert [(c.outcome, c.details["reason"]) for c in checks] == [
        (Outcome.SUCCESS, "lockbox_approved"),
        (Outcome.REFUSED, "lockbox_request_required"),
        (Outcome.REFUSED, "lockbox_request_required"),
    ]
    assert len(chain(scene.operator, "Test-AccessToCustomerData")) == 4


def test_access_never_lasts_longer_than_four_hours_or_the_customers_cap(scene: Scene) -> None:
    with pytest.raises(InvalidInput, match="1 to 4 hours"):
        scene.file(hours=5)
    scene.require_approval(max_hours=2)
    with pytest.raises(InvalidInput, match="1 to 2 hours"):
        scene.file(hours=3)


# --- approval required ----------------------------------------------------------------------------


def test_with_approval_required_the_customers_approver_decides(scene: Scene) -> None:
    scene.require_approval()
    request_id = scene.file(hours=3)
    assert scene.check() is Reason.LOCKBOX_REQUEST_REQUIRED  # pending grants nothing
    plain = scene.customer.user("plain")
    with pytest.raises(NotPermitted):
        lockbox.set_request(
            scene.customer.ctx, caller=plain.caller, request_id=request_id, decision="Approve"
        )
    with pytest.raises(NotPermitted):  # the operator's side does not decide
        lockbox.set_request(
            scene.operator.ctx,
            caller=scene.engineer.caller,
            request_id=request_id,
            decision="Approve",
        )
    view = lockbox.set_request(
        scene.customer.ctx,
        caller=scene.approver.caller,
        request_id=request_id,
        decision="approve",
        comment="Go ahead, case confirmed",
    )
    assert view.status is RequestStatus.APPROVED
    assert scene.check() is Reason.LOCKBOX_APPROVED
    refused = chain(scene.customer, "Set-AccessToCustomerDataRequest", Outcome.REFUSED)
    assert [r.actor_name for r in refused] == [plain.upn]
    (tried,) = chain(scene.operator, "Set-AccessToCustomerDataRequest", Outcome.REFUSED)
    assert tried.actor_name == scene.engineer.upn
    (decided,) = chain(scene.customer, "Set-AccessToCustomerDataRequest", Outcome.SUCCESS)
    assert decided.actor_name == scene.approver.upn
    assert decided.details["ApprovalDecision"] == "Approve"

    scene.operator.later(minutes=30)
    lockbox.revoke_request(
        scene.customer.ctx, caller=scene.approver.caller, request_id=request_id, comment="Done"
    )
    assert scene.check() is Reason.LOCKBOX_REQUEST_REQUIRED
    with pytest.raises(AuthorizationNotActive):
        lockbox.revoke_request(
            scene.customer.ctx, caller=scene.approver.caller, request_id=request_id
        )


def test_the_global_administrator_decides_and_a_deny_grants_nothing(scene: Scene) -> None:
    scene.require_approval()
    request_id = scene.file()
    view = lockbox.set_request(
        scene.customer.ctx,
        caller=scene.customer.admin.caller,
        request_id=request_id,
        decision="Deny",
        comment="Not without the ticket owner",
    )
    assert view.status is RequestStatus.DENIED
    assert scene.check() is Reason.LOCKBOX_REQUEST_REQUIRED
    with pytest.raises(RequestNotPending):
        lockbox.set_request(
            scene.customer.ctx,
            caller=scene.approver.caller,
            request_id=request_id,
            decision="Approve",
        )


def test_the_engineer_cancels_their_own_pending_request(scene: Scene) -> None:
    scene.require_approval()
    request_id = scene.file()
    colleague = scene.operator.user("colleague", roles=(REQUESTER_ROLE,))
    with pytest.raises(NotPermitted):
        lockbox.set_request(
            scene.operator.ctx, caller=colleague.caller, request_id=request_id, decision="Cancel"
        )
    view = lockbox.set_request(
        scene.operator.ctx, caller=scene.engineer.caller, request_id=request_id, decision="Cancel"
    )
    assert view.status is RequestStatus.CANCELLED


def test_a_request_not_decided_in_twelve_hours_expires(scene: Scene) -> None:
    scene.require_approval()
    request_id = scene.file()
    scene.operator.later(hours=11, minutes=59)
    (pending,) = lockbox.list_requests(scene.customer.ctx, caller=scene.approver.caller).items
    assert pending.status is RequestStatus.PENDING
    scene.operator.later(minutes=1)
    with pytest.raises(RequestNotPending, match="expired"):
        lockbox.set_request(
            scene.customer.ctx,
            caller=scene.approver.caller,
            request_id=request_id,
            decision="Approve",
        )
    assert scene.check() is Reason.LOCKBOX_REQUEST_REQUIRED
    assert lockbox.settle_requests(scene.operator.ctx) == 1
    for world in (scene.customer, scene.operator):
        (expired,) = chain(world, "Expire-AccessToCustomerDataRequest")
        assert expired.target == request_id


# --- who may do what ------------------------------------------------------------------------------


def test_only_the_operators_lockbox_requesters_file(scene: Scene) -> None:
    plain = scene.operator.user("plain")
    with pytest.raises(NotPermitted):
        scene.file(who=plain)
    elsewhere = World(scene.operator.ctx, scene.operator.clock)
    outsider = elsewhere.user("outsider", roles=(REQUESTER_ROLE,))
    with pytest.raises(NotPermitted, match="operator's engineers"):
        scene.file(who=outsider)
    with pytest.raises(NotFound):
        lockbox.file_request(
            scene.operator.ctx,
            caller=scene.engineer.caller,
            customer="no-such-organization",
            service="Exchange",
            reason=REASON,
            case_reference="EXSR1",
            duration_hours=1,
        )
    with pytest.raises(InvalidInput, match="no service named"):
        scene.file(service="Dynamics")


def test_the_operator_is_designated_by_the_installation_and_every_chain_says_so(
    scene: Scene,
) -> None:
    for world in (scene.customer, scene.operator):
        (designated,) = chain(world, "Set-LockboxOperator")
        assert designated.target == scene.operator.org.name
    later = World(scene.operator.ctx, scene.operator.clock)  # created after the designation
    (told,) = chain(later, "Set-LockboxOperator")
    assert told.details["operator"] == scene.operator.org.name
    lockbox.designate_operator(scene.operator.ctx, org_name=None)
    with pytest.raises(NotPermitted, match="no organization of this installation"):
        scene.file()


# --- isolation ------------------------------------------------------------------------------------


def isolation(scene: Scene) -> None:
    scene.require_approval()
    request_id = scene.file()
    lockbox.set_request(
        scene.customer.ctx,
        caller=scene.approver.caller,
        request_id=request_id,
        decision="Approve",
        comment="ok",
    )
    # The operator sees its request and its outcome, never who decided at the customer.
    (seen,) = lockbox.list_requests(scene.operator.ctx, caller=scene.engineer.caller).items
    assert (seen.status, seen.decided_by, seen.customer) == (
        RequestStatus.APPROVED,
        "customer",
        scene.customer.org.name,
    )
    operator_log = [r for r in chain(scene.operator) if r.target == request_id]
    assert scene.approver.upn not in repr(operator_log)
    assert {r.actor_name for r in operator_log} == {
        scene.engineer.upn,
        f"customer {scene.customer.org.name}",
    }
    # Nothing else of the customer reaches the operator: its requests, users, audit log.
    with pytest.raises(NotFound):
        directory.get_user(
            scene.operator.ctx, caller=scene.operator.admin.caller, upn=scene.approver.upn
        )
    customer_requests = requests.list_requests(
        scene.operator.ctx, caller=scene.operator.admin.caller
    ).items
    assert customer_requests == []
    # A third organization sees none of it, and cannot check or decide.
    third = World(scene.operator.ctx, scene.operator.clock)
    stranger = third.user("stranger", roles=(APPROVER_ROLE,))
    with pytest.raises(NotFound):
        lockbox.get_request(third.ctx, caller=stranger.caller, request_id=request_id)
    with pytest.raises(NotFound):
        lockbox.set_request(
            third.ctx, caller=stranger.caller, request_id=request_id, decision="Deny"
        )
    assert lockbox.list_requests(third.ctx, caller=stranger.caller).items == []
    with pytest.raises(NotFound):
        lockbox.check_customer_data_access(
            third.ctx,
            caller=third.admin.caller,
            organization=scene.customer.org.name,
            service="Exchange",
            user=scene.engineer.upn,
        )
    # The customer sees the request addressed to it and the engineer who filed it.
    (addressed,) = lockbox.list_requests(scene.customer.ctx, caller=scene.approver.caller).items
    assert addressed.request.requester_upn == scene.engineer.upn
    assert addressed.decided_by == scene.approver.upn
    assert addressed.operator == scene.operator.org.name
    found = audit_log.search_audit(
        scene.customer.ctx,
        caller=scene.customer.admin.caller,
        flt=AuditFilter(operation="New-AccessToCustomerDataRequest"),
    )
    assert [r.actor_name for r in found.items] == [scene.engineer.upn]


def test_nothing_crosses_organizations_but_the_requests_addressed_to_the_customer(
    scene: Scene,
) -> None:
    isolation(scene)


def test_isolation_and_both_chains_hold_on_the_databases(db_scene: Scene) -> None:
    isolation(db_scene)
    for world in (db_scene.customer, db_scene.operator):
        assert audit_log.verify_audit(world.ctx, caller=world.admin.caller).report.ok


def test_the_twelve_hour_expiry_on_the_databases(db_scene: Scene) -> None:
    db_scene.require_approval()
    request_id = db_scene.file()
    db_scene.operator.later(hours=12)
    assert db_scene.check() is Reason.LOCKBOX_REQUEST_REQUIRED
    (expired,) = lockbox.list_requests(
        db_scene.customer.ctx, caller=db_scene.approver.caller, status="expired"
    ).items
    assert str(expired.request.id) == request_id
    assert lockbox.settle_requests(db_scene.operator.ctx) >= 1
    (written,) = chain(db_scene.customer, "Expire-AccessToCustomerDataRequest")
    assert written.target == request_id
    # The notices, read from the outbox tables: the customer's approvers (found through the
    # assignments' SQL listing: the approver directly, the admin through Global Administrator)
    # and the engineer, each side in its own messages.
    approvers = sorted([db_scene.approver.upn, db_scene.customer.admin.upn])
    for world, to in ((db_scene.customer, approvers), (db_scene.operator, [db_scene.engineer.upn])):
        with world.ctx.uow() as uow:
            queued = uow.outbox.listing(world.org.id, state=None, cursor=None, limit=50).items
        assert sorted((m.event.value, tuple(sorted(m.payload["to"]))) for m in queued) == [
            ("lockbox.created", tuple(to)),
            ("lockbox.expired", tuple(to)),
        ]


def test_a_customers_access_checker_may_ask_too(scene: Scene) -> None:
    scene.file()
    checker = scene.customer.user("checker", roles=("jitpam\\Access Checker",))
    assert scene.check(who=checker) is Reason.LOCKBOX_APPROVED
    plain = scene.customer.user("plain")
    with pytest.raises(NotPermitted):
        scene.check(who=plain)


def test_the_customers_settings_are_validated_and_audited(scene: Scene) -> None:
    for bad in (0, 5):
        with pytest.raises(InvalidInput, match="1 to 4"):
            organizations.set_organization_config(
                scene.customer.ctx, caller=scene.customer.admin.caller, lockbox_max_hours=bad
            )
    with pytest.raises(NotPermitted):
        organizations.set_organization_config(
            scene.customer.ctx, caller=scene.approver.caller, lockbox_approval_required=True
        )
    scene.require_approval(max_hours=3)
    (changed,) = chain(scene.customer, "Set-OrganizationConfig", Outcome.SUCCESS)
    assert changed.details == {
        "lockbox_approval_required": True,
        "lockbox_max_hours": 3,
        "allowed_by": "control_disabled",  # allowed by the admin's role
    }


# --- what each side learns of the other (review findings) ----------------------------------------


def test_a_customer_learns_nothing_of_engineers_who_never_asked_it(scene: Scene) -> None:
    """A customer's Access Checker gets "no request" for anyone who never filed against it
    (existing, disabled or unknown alike), and its probes stay out of the operator's chain."""
    checker = scene.customer.user("checker", roles=("jitpam\\Access Checker",))
    stranger = scene.operator.user("stranger", roles=(REQUESTER_ROLE,))
    before = len(chain(scene.operator))
    for upn in (stranger.upn, "nobody@nowhere.test", scene.approver.upn):
        decision = lockbox.check_customer_data_access(
            scene.customer.ctx,
            caller=checker.caller,
            organization=scene.customer.org.name,
            service="Exchange",
            user=upn,
        )
        assert decision.reason is Reason.LOCKBOX_REQUEST_REQUIRED
    assert len(chain(scene.operator)) == before
    assert len(chain(scene.customer, "Test-AccessToCustomerData")) == 3


def test_an_operator_probe_of_a_stranger_stays_in_the_operators_chain(scene: Scene) -> None:
    checker = scene.operator.user("opschecker", roles=("jitpam\\Access Checker",))
    stranger = scene.operator.user("stranger")
    lockbox.check_customer_data_access(
        scene.operator.ctx,
        caller=checker.caller,
        organization=scene.customer.org.name,
        service="Exchange",
        user=stranger.upn,
    )
    assert chain(scene.customer, "Test-AccessToCustomerData") == []
    scene.file()
    lockbox.check_customer_data_access(
        scene.operator.ctx,
        caller=checker.caller,
        organization=scene.customer.org.name,
        service="Exchange",
        user=scene.engineer.upn,
    )
    (seen,) = chain(scene.customer, "Test-AccessToCustomerData")
    assert seen.actor_name == f"operator {scene.operator.org.name}"  # not the checker's name
    assert seen.details["user"] == scene.engineer.upn


def test_how_a_side_was_allowed_stays_on_its_side(scene: Scene) -> None:
    scene.require_approval()
    request_id = scene.file()
    lockbox.set_request(
        scene.customer.ctx, caller=scene.approver.caller, request_id=request_id, decision="Deny"
    )
    (theirs,) = chain(scene.operator, "Set-AccessToCustomerDataRequest", Outcome.SUCCESS)
    (ours,) = chain(scene.customer, "Set-AccessToCustomerDataRequest", Outcome.SUCCESS)
    assert "allowed_by" in ours.details
    assert "allowed_by" not in theirs.details
    (filed,) = chain(scene.customer, "New-AccessToCustomerDataRequest")
    assert "allowed_by" not in filed.details


def test_a_cap_lowered_after_filing_bounds_the_approval(scene: Scene) -> None:
    scene.require_approval()
    request_id = scene.file(hours=4)
    organizations.set_organization_config(
        scene.customer.ctx, caller=scene.customer.admin.caller, lockbox_max_hours=1
    )
    view = lockbox.set_request(
        scene.customer.ctx, caller=scene.approver.caller, request_id=request_id, decision="Approve"
    )
    assert view.request.start is not None
    assert view.request.end is not None
    assert view.request.end - view.request.start == timedelta(hours=1)


def test_a_refused_filing_is_recorded_at_the_customer_and_names_no_workload(scene: Scene) -> None:
    with pytest.raises(InvalidInput, match="1 to 4 hours"):  # not "no service named"
        scene.file(hours=99, service="Payroll")
    (refused,) = chain(scene.customer, "New-AccessToCustomerDataRequest", Outcome.REFUSED)
    assert refused.actor_name == scene.engineer.upn


def test_a_former_operators_request_is_not_approved(scene: Scene) -> None:
    scene.require_approval()
    request_id = scene.file()
    other = World(scene.operator.ctx, scene.operator.clock)
    lockbox.designate_operator(scene.operator.ctx, org_name=other.org.name)
    with pytest.raises(NotPermitted, match="no longer"):
        lockbox.set_request(
            scene.customer.ctx,
            caller=scene.approver.caller,
            request_id=request_id,
            decision="Approve",
        )
    view = lockbox.set_request(
        scene.customer.ctx, caller=scene.approver.caller, request_id=request_id, decision="Deny"
    )
    assert view.status is RequestStatus.DENIED


def test_operator_views_name_the_engineer_and_say_automatic_only_for_approvals(
    scene: Scene,
) -> None:
    scene.require_approval()
    request_id = scene.file()
    lockbox.set_request(
        scene.operator.ctx, caller=scene.engineer.caller, request_id=request_id, decision="Cancel"
    )
    boss = scene.operator.user("boss", roles=(REQUESTER_ROLE,))
    seen = lockbox.get_request(scene.operator.ctx, caller=boss.caller, request_id=request_id)
    assert seen.decided_by == scene.engineer.upn
    expiring = scene.file(service="Teams")
    scene.operator.later(hours=12)
    lapsed = lockbox.get_request(scene.operator.ctx, caller=boss.caller, request_id=expiring)
    assert (lapsed.status, lapsed.decided_by) == (RequestStatus.EXPIRED, None)
