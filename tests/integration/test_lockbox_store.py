"""The Customer Lockbox store: the SQL adapter (adapters/sql/lockbox.py) on each database and its
in-memory twin (tests/fakes/memory.py) answer the same, test by test.

Each test runs on a database of its own (the operator is one per installation, and ``due`` reads
every organization's requests) and on a fresh in-memory database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.sql.uow import SqlUnitOfWork, unit_of_work_factory
from jitpam.domain.errors import InvalidInput
from jitpam.domain.lockbox import LockboxRequest
from jitpam.domain.requests import RequestStatus
from jitpam.services.context import ServiceContext
from jitpam.services.ports import LockboxFilter, Operator, UnitOfWork
from tests.conftest import database_of_its_own
from tests.fakes.memory import MemoryDatabase, factory
from tests.integration.conftest import SIGNER, START
from tests.integration.world import Person, World, own_process

AT = START + timedelta(hours=1)  # when the listings are read


@pytest.fixture(params=["database", "memory"])
def ctx(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, clock: FixedClock
) -> Iterator[ServiceContext]:
    if request.param == "memory":
        yield own_process(ServiceContext(uow=factory(MemoryDatabase()), clock=clock, signer=SIGNER))
        return
    with database_of_its_own(database_url, tmp_path) as engine:
        sessions = unit_of_work_factory(engine)

        def new_uow() -> UnitOfWork:
            return SqlUnitOfWork(sessions)

        yield own_process(ServiceContext(uow=new_uow, clock=clock, signer=SIGNER))


@dataclass
class Scene:
    ctx: ServiceContext
    operator: World
    customer: World
    other_customer: World
    ann: Person  # the operator's engineers
    bob: Person


@pytest.fixture
def scene(ctx: ServiceContext, clock: FixedClock) -> Scene:
    operator = World(ctx, clock)
    return Scene(
        ctx,
        operator,
        World(ctx, clock),
        World(ctx, clock),
        operator.user("ann"),
        operator.user("bob"),
    )


def filed(
    scene: Scene,
    *,
    created: datetime,
    by: Person | None = None,
    customer: World | None = None,
    **fields: object,
) -> LockboxRequest:
    """A request of ``by`` (ann) to ``customer`` (the scene's), filed at ``created``."""
    requester = by or scene.ann
    request = LockboxRequest(
        id=uuid4(),
        customer_org_id=(customer or scene.customer).org.id,
        operator_org_id=scene.operator.org.id,
        requester_id=requester.caller.user_id,
        requester_upn=requester.upn,
        service="Exchange",
        reason="mail flow broken for the whole tenant",
        case_reference="CASE-1234",
        duration_hours=2,
        created_at=created,
        pending_until=created + timedelta(hours=12),
    )
    return replace(request, **fields)  # type: ignore[arg-type]


def store(ctx: ServiceContext, *requests: LockboxRequest) -> None:
    with ctx.uow() as uow:
        for request in requests:
            uow.lockbox.add(request)
        uow.commit()


def read(ctx: ServiceContext, request_id: UUID) -> LockboxRequest | None:
    with ctx.uow() as uow:
        return uow.lockbox.get(request_id)


# --- one request -----------------------------------------------------------------------------


def test_a_request_reads_back_with_every_field_as_added_and_as_saved(scene: Scene) -> None:
    ctx = scene.ctx
    request = filed(scene, created=START)
    assert request.decided_at is request.start is request.revocation_comment is None
    store(ctx, request)
    assert read(ctx, request.id) == request
    assert read(ctx, uuid4()) is None

    approver = scene.customer.admin.caller.user_id
    with ctx.uow() as uow:
        locked = uow.lockbox.get(request.id, for_update=True)
        assert locked is not None
        locked.status = RequestStatus.APPROVED
        locked.decided_at = locked.start = START + timedelta(minutes=5)
        locked.end = START + timedelta(hours=2, minutes=5)
        locked.decided_by = approver
        locked.decision_comment = "go ahead"
        uow.lockbox.save(locked)
        # saved twice in one transaction: the second save compares the version the first set
        locked.status = RequestStatus.REVOKED
        locked.revoked_at = START + timedelta(minutes=30)
        locked.revoked_by = approver
        locked.revocation_comment = "done early"
        uow.lockbox.save(locked)
        uow.commit()

    again = read(ctx, request.id)
    assert again == locked
    assert again is not None
    assert again.decision_comment == "go ahead"
    assert again.revocation_comment == "done early"


def test_a_request_read_in_an_earlier_transaction_is_not_saved(scene: Scene) -> None:
    ctx = scene.ctx
    request = filed(scene, created=START)
    store(ctx, request)
    with ctx.uow() as uow:
        held = uow.lockbox.get(request.id)
        uow.commit()
        assert held is not None
        held.status = RequestStatus.CANCELLED
        with pytest.raises(LookupError):
            uow.lockbox.save(held)
    assert read(ctx, request.id) == request


def test_the_operator_is_set_replaced_and_cleared(scene: Scene) -> None:
    ctx = scene.ctx
    with ctx.uow() as uow:
        assert uow.lockbox.operator() is None
        uow.lockbox.set_operator(scene.operator.org.id, at=START)
        uow.commit()
    with ctx.uow() as uow:
        assert uow.lockbox.operator() == Operator(scene.operator.org.id, START)
        uow.lockbox.set_operator(scene.customer.org.id, at=AT)
        assert uow.lockbox.operator() == Operator(scene.customer.org.id, AT)
        # not committed: the earlier operator stays
    with ctx.uow() as uow:
        assert uow.lockbox.operator() == Operator(scene.operator.org.id, START)
        uow.lockbox.set_operator(scene.customer.org.id, at=AT)
        uow.commit()
    with ctx.uow() as uow:
        assert uow.lockbox.operator() == Operator(scene.customer.org.id, AT)
        uow.lockbox.set_operator(None, at=AT)
        uow.commit()
    with ctx.uow() as uow:
        assert uow.lockbox.operator() is None


# --- listings --------------------------------------------------------------------------------


@dataclass
class Filed:
    pending: LockboxRequest
    expired: LockboxRequest  # stored pending, past its deadline at AT
    approved: LockboxRequest
    completed: LockboxRequest  # stored approved, past its end at AT
    denied: LockboxRequest
    twin: LockboxRequest  # filed at the same instant as ``denied``
    bobs: LockboxRequest
    elsewhere: LockboxRequest  # to the other customer


def file_all(scene: Scene) -> Filed:
    # the expired one filed 13 hours before START; the others two hours before, a minute apart
    minutes = [START - timedelta(hours=13)] + [
        START - timedelta(hours=2) + timedelta(minutes=m) for m in range(1, 8)
    ]
    approver = scene.customer.admin.caller.user_id
    f = Filed(
        expired=filed(scene, created=minutes[0]),
        approved=filed(
            scene,
            created=minutes[1],
            status=RequestStatus.APPROVED,
            decided_at=minutes[1],
            start=minutes[1],
            end=AT + timedelta(hours=1),
            decided_by=approver,
        ),
        completed=filed(
            scene,
            created=minutes[2],
            status=RequestStatus.APPROVED,
            decided_at=minutes[2],
            start=minutes[2],
            end=AT - timedelta(minutes=1),
        ),
        denied=filed(scene, created=minutes[3], status=RequestStatus.DENIED),
        twin=filed(scene, created=minutes[3], status=RequestStatus.CANCELLED),
        bobs=filed(scene, created=minutes[4], by=scene.bob),
        elsewhere=filed(scene, created=minutes[5], customer=scene.other_customer),
        pending=filed(scene, created=START),
    )
    store(scene.ctx, *vars(f).values())
    return f


def newest_first(*requests: LockboxRequest) -> list[UUID]:
    return [r.id for r in sorted(requests, key=lambda r: (r.created_at, r.id), reverse=True)]


def listed(ctx: ServiceContext, flt: LockboxFilter, limit: int = 100) -> list[UUID]:
    """Every request of the listing, page after page, each page full but the last."""
    ids: list[UUID] = []
    cursor: str | None = None
    with ctx.uow() as uow:
        while True:
            page = uow.lockbox.page(flt, at=AT, cursor=cursor, limit=limit)
            ids.extend(r.id for r in page.items)
            if page.next_cursor is None:
                assert len(page.items) <= limit
                return ids
            assert len(page.items) == limit
            cursor = page.next_cursor


def test_the_listings_filter_by_side_requester_status_time_and_id(scene: Scene) -> None:
    ctx, f = scene.ctx, file_all(scene)
    customer, operator = scene.customer.org.id, scene.operator.org.id
    to_customer = [r for name, r in vars(f).items() if name != "elsewhere"]

    assert listed(ctx, LockboxFilter(customer_org_id=customer)) == newest_first(*to_customer)
    assert listed(ctx, LockboxFilter(customer_org_id=scene.other_customer.org.id)) == [
        f.elsewhere.id
    ]
    everything = newest_first(*vars(f).values())
    assert listed(ctx, LockboxFilter(operator_org_id=operator)) == everything
    assert listed(ctx, LockboxFilter(operator_org_id=customer)) == []
    assert listed(
        ctx, LockboxFilter(operator_org_id=operator, requester_id=scene.bob.caller.user_id)
    ) == [f.bobs.id]

    def of_status(*statuses: RequestStatus) -> list[UUID]:
        return listed(ctx, LockboxFilter(customer_org_id=customer, statuses=frozenset(statuses)))

    pending = [f.pending, f.bobs]
    assert of_status(RequestStatus.PENDING) == newest_first(*pending)
    assert of_status(RequestStatus.EXPIRED) == [f.expired.id]
    assert of_status(RequestStatus.APPROVED) == [f.approved.id]
    assert of_status(RequestStatus.COMPLETED) == [f.completed.id]
    assert of_status(RequestStatus.DENIED, RequestStatus.CANCELLED) == newest_first(
        f.denied, f.twin
    )
    assert of_status(RequestStatus.REVOKED) == []
    assert of_status(RequestStatus.PENDING, RequestStatus.EXPIRED) == newest_first(
        *pending, f.expired
    )
    assert of_status() == []

    after = LockboxFilter(customer_org_id=customer, created_after=f.denied.created_at)
    assert listed(ctx, after) == newest_first(f.bobs, f.pending)
    one = LockboxFilter(operator_org_id=operator, request_id=f.elsewhere.id)
    assert listed(ctx, one) == [f.elsewhere.id]
    assert listed(ctx, replace(one, customer_org_id=customer)) == []


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_following_the_cursors_gives_every_request_once_in_full_pages(
    scene: Scene, limit: int
) -> None:
    ctx, f = scene.ctx, file_all(scene)
    operator = LockboxFilter(operator_org_id=scene.operator.org.id)
    assert listed(ctx, operator, limit) == newest_first(*vars(f).values())
    # the statuses the clock decides are matched in the query: the pages stay full
    settled = LockboxFilter(
        customer_org_id=scene.customer.org.id,
        statuses=frozenset({RequestStatus.EXPIRED, RequestStatus.COMPLETED, RequestStatus.DENIED}),
    )
    assert listed(ctx, settled, limit) == newest_first(f.expired, f.completed, f.denied)


def test_a_cursor_the_adapter_did_not_make_is_invalid_input(scene: Scene) -> None:
    with scene.ctx.uow() as uow, pytest.raises(InvalidInput):
        uow.lockbox.page(
            LockboxFilter(customer_org_id=scene.customer.org.id),
            at=AT,
            cursor="not-a-cursor",
            limit=10,
        )


def test_approved_reads_the_stored_approved_requests_of_one_engineer_to_one_customer(
    scene: Scene,
) -> None:
    ctx, f = scene.ctx, file_all(scene)
    bobs_approved = filed(scene, created=START, by=scene.bob, status=RequestStatus.APPROVED, end=AT)
    store(ctx, bobs_approved)
    with ctx.uow() as uow:
        ann = scene.ann.caller.user_id
        found = uow.lockbox.approved(scene.customer.org.id, ann)
        assert sorted(r.id for r in found) == sorted([f.approved.id, f.completed.id])
        assert {r.id: r for r in found}[f.approved.id] == f.approved
        assert uow.lockbox.approved(scene.other_customer.org.id, ann) == []
        bob = scene.bob.caller.user_id
        assert [r.id for r in uow.lockbox.approved(scene.customer.org.id, bob)] == [
            bobs_approved.id
        ]


def test_due_lists_what_the_clock_overtook_by_when_it_did(scene: Scene) -> None:
    ctx, f = scene.ctx, file_all(scene)
    with ctx.uow() as uow:
        # expired at its deadline (START - 1 h), completed at its end (AT - 1 min)
        assert [r.id for r in uow.lockbox.due(AT, limit=10)] == [f.expired.id, f.completed.id]
        assert [r.id for r in uow.lockbox.due(AT, limit=1)] == [f.expired.id]
        assert uow.lockbox.due(f.expired.pending_until - timedelta(seconds=1), limit=10) == []
        later = AT + timedelta(hours=12)
        assert [r.id for r in uow.lockbox.due(later, limit=10)] == [
            f.expired.id,
            f.completed.id,
            f.approved.id,
            f.bobs.id,
            f.elsewhere.id,
            f.pending.id,
        ]
    # once written down, a request is no longer due
    with ctx.uow() as uow:
        for request in uow.lockbox.due(AT, limit=10):
            assert request.settle(at=AT) is not None
            uow.lockbox.save(request)
        uow.commit()
    with ctx.uow() as uow:
        assert uow.lockbox.due(AT, limit=10) == []
        expired = uow.lockbox.get(f.expired.id)
        assert expired is not None
        assert expired.status is RequestStatus.EXPIRED
        assert expired.decided_at == f.expired.pending_until


# --- the customer's settings -----------------------------------------------------------------


def test_the_organizations_keep_their_lockbox_settings(scene: Scene) -> None:
    ctx, org = scene.ctx, scene.customer.org.id
    with ctx.uow() as uow:
        control = uow.orgs.control(org)
        assert (control.lockbox_approval_required, control.lockbox_max_hours) == (False, 4)
        uow.orgs.save_control(replace(control, lockbox_approval_required=True, lockbox_max_hours=2))
        saved = uow.orgs.control(org)  # read back in the same transaction
        assert (saved.lockbox_approval_required, saved.lockbox_max_hours) == (True, 2)
        uow.commit()
    with ctx.uow() as uow:
        control = uow.orgs.control(org)
        assert (control.lockbox_approval_required, control.lockbox_max_hours) == (True, 2)
        other = uow.orgs.control(scene.other_customer.org.id)
        assert (other.lockbox_approval_required, other.lockbox_max_hours) == (False, 4)
