"""Request and authorization listings as their queries run at scale, checked against the rules on
every row: each status filter, both orders, small pages followed by cursor, searches that stop at
their window, what an approver and a requester see, and the approver's count of waiting votes.

The data is the scale benchmark's generator on tiny sizes, seen at several instants: now, when
the active grants have ended and the pending requests lapsed (rows whose stored status the clock
has overtaken, as before the worker's sweep writes it down).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bench.generate import Generated, generate
from sqlalchemy import Engine, event, select

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.sql import request_listings
from jitpam.adapters.sql.models import RequestRow
from jitpam.bootstrap import build_context
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import AccessRequest, RequestStatus
from jitpam.services import requests
from jitpam.services.context import Caller, ServiceContext

SIZES = {"policies": 12, "authorizations": 70, "requests": 160, "users": 8}
LATER = (timedelta(0), timedelta(days=2))  # now, and once every open request and grant is over


@pytest.fixture(scope="module")
def made(database_url: str) -> Generated:
    return generate(database_url, seed=7, **SIZES)


@pytest.fixture(scope="module")
def everything(made: Generated) -> Iterator[tuple[ServiceContext, Engine, list[AccessRequest]]]:
    ctx, engine = build_context(database_url=made.url)
    with ctx.uow() as uow:
        session = uow.session  # type: ignore[attr-defined]
        ids = list(session.scalars(select(RequestRow.id).where(RequestRow.org_id == made.org_id)))
        found = [uow.requests.get(i) for i in ids]
    yield ctx, engine, [r for r in found if r is not None]
    engine.dispose()


def at(ctx: ServiceContext, moment: datetime) -> ServiceContext:
    return ServiceContext(uow=ctx.uow, clock=FixedClock(moment), signer=ctx.signer, read=ctx.read)


def caller_for(ctx: ServiceContext, made: Generated, upn: str) -> Caller:
    with ctx.uow() as uow:
        user = uow.users.get_by_upn(upn)
        assert user is not None
        return Caller(made.org_id, user.id)


def every_page(
    ctx: ServiceContext, caller: Caller, limit: int, **filters: Any
) -> tuple[list[AccessRequest], list[int]]:
    """The requests of every page, following next_cursor, and each page's size."""
    seen: list[AccessRequest] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(1000):
        page = requests.list_requests(ctx, caller=caller, cursor=cursor, limit=limit, **filters)
        assert len(page.items) <= limit
        seen.extend(v.request for v in page.items)
        sizes.append(len(page.items))
        if page.next_cursor is None:
            return seen, sizes
        cursor = page.next_cursor
    raise AssertionError("the cursors never end")


def in_order(found: list[AccessRequest], *, oldest_first: bool) -> list[AccessRequest]:
    return sorted(found, key=lambda r: (r.created_at, r.id), reverse=not oldest_first)


@pytest.mark.parametrize("later", LATER, ids=["now", "two days later"])
@pytest.mark.parametrize("oldest_first", [False, True], ids=["newest first", "oldest first"])
def test_each_status_lists_exactly_the_requests_in_that_status_in_order(
    made: Generated,
    everything: tuple[ServiceContext, Engine, list[AccessRequest]],
    later: timedelta,
    oldest_first: bool,
) -> None:
    base, _, all_requests = everything
    moment = datetime.now(UTC) + later
    ctx = at(base, moment)
    admin = caller_for(ctx, made, made.admin_upn)
    statuses = {r.status_at(moment) for r in all_requests}
    # Both parts of a merged status occur: stored "expired" beside lapsed "pending", and so on.
    if later:
        assert RequestStatus.PENDING not in statuses
        assert {RequestStatus.EXPIRED, RequestStatus.COMPLETED} <= statuses
    for status in [None, *RequestStatus]:
        expected = in_order(
            [r for r in all_requests if status is None or r.status_at(moment) is status],
            oldest_first=oldest_first,
        )
        for limit in (1, 7, 500):
            seen, _ = every_page(
                ctx,
                admin,
                limit,
                status=status.value if status else None,
                oldest_first=oldest_first,
            )
            assert [r.id for r in seen] == [r.id for r in expected], (status, limit)


def test_a_search_stops_at_its_window_and_the_cursors_find_every_match(
    made: Generated,
    everything: tuple[ServiceContext, Engine, list[AccessRequest]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx, _, all_requests = everything
    monkeypatch.setattr(request_listings, "SEARCH_WINDOW", 9)
    admin = caller_for(ctx, made, made.admin_upn)
    moment = datetime.now(UTC)
    for text, status in [
        (made.users[3].upper(), None),
        ("TASK-1", None),
        ("task-1", RequestStatus.COMPLETED),
        ("no such thing", None),
    ]:
        expected = [
            r
            for r in in_order(all_requests, oldest_first=False)
            if (text.lower() in str(r.target).lower() or text.lower() in r.requester_upn.lower())
            and (status is None or r.status_at(moment) is status)
        ]
        seen, sizes = every_page(
            ctx, admin, 4, search=text, status=status.value if status else None
        )
        assert [r.id for r in seen] == [r.id for r in expected], text
        # With a window of 9 rows, a rare match leaves pages short (even empty) before the end.
        assert len(sizes) > 1
        assert any(size < 4 for size in sizes[:-1])
    # The API's target filter is the same kind of search.
    seen, _ = every_page(ctx, admin, 5, target_contains="Task-1")
    assert {str(r.target) for r in seen} <= {t for t in made.tasks if "Task-1" in t}
    assert len(seen) == sum(1 for r in all_requests if "Task-1" in str(r.target))


def test_a_requester_lists_their_own_requests_and_an_approver_everything_they_review(
    made: Generated, everything: tuple[ServiceContext, Engine, list[AccessRequest]]
) -> None:
    ctx, engine, all_requests = everything
    requester = made.users[2]
    seen, _ = every_page(ctx, caller_for(ctx, made, requester), 6)
    assert {r.id for r in seen} == {r.id for r in all_requests if r.requester_upn == requester}

    domain = made.admin_upn.split("@")[1]
    approver = caller_for(ctx, made, f"approver1@{domain}")
    parameters: list[int] = []

    def count_parameters(*args: Any) -> None:
        params = args[3]
        parameters.append(len(params) if isinstance(params, (dict, list, tuple)) else 0)

    event.listen(engine, "before_cursor_execute", count_parameters)
    try:
        seen, _ = every_page(ctx, approver, 5)
    finally:
        event.remove(engine, "before_cursor_execute", count_parameters)
    # Every generated policy is reviewed by the approver's group (its own or as the default).
    assert {r.id for r in seen} == {r.id for r in all_requests}
    # The policies they review are found in the query, not sent as a list that grows with them
    # (100,000 policies once made PostgreSQL refuse the statement): statements carry the page's
    # ids at most.
    assert parameters
    assert max(parameters) < SIZES["policies"]


@pytest.mark.parametrize("later", LATER, ids=["now", "two days later"])
def test_the_count_of_waiting_votes_is_the_pending_requests_the_approver_may_still_review(
    made: Generated,
    everything: tuple[ServiceContext, Engine, list[AccessRequest]],
    later: timedelta,
) -> None:
    base, _, all_requests = everything
    moment = datetime.now(UTC) + later
    ctx = at(base, moment)
    domain = made.admin_upn.split("@")[1]
    approver = caller_for(ctx, made, f"approver1@{domain}")
    with ctx.uow() as uow:
        me = uow.users.get(approver.user_id)
    assert me is not None
    waiting = [
        r
        for r in all_requests
        if r.review_refusal(approver=me, in_approver_group=True, at=moment) is None
    ]
    assert bool(waiting) is not bool(later)
    assert requests.pending_reviews(ctx, caller=approver, limit=1000) == len(waiting)
    assert requests.pending_reviews(ctx, caller=approver, limit=2) == min(2, len(waiting))


@pytest.mark.parametrize("active", [False, True], ids=["history", "active"])
def test_authorizations_page_by_cursor_newest_grant_first_or_soonest_ending_first(
    made: Generated,
    everything: tuple[ServiceContext, Engine, list[AccessRequest]],
    active: bool,
) -> None:
    ctx, _, all_requests = everything
    admin = caller_for(ctx, made, made.admin_upn)
    moment = datetime.now(UTC)
    granted = [r for r in all_requests if r.authorization is not None]
    if active:
        expected = sorted(
            (r for r in granted if r.authorization and r.authorization.is_active(moment)),
            key=lambda r: (r.authorization.end, r.authorization.id),  # type: ignore[union-attr]
        )
        assert expected
    else:
        expected = sorted(
            granted,
            key=lambda r: (r.authorization.start, r.authorization.id),  # type: ignore[union-attr]
            reverse=True,
        )
    for user in ("*", made.users[1]):
        wanted = [r.id for r in expected if user == "*" or r.requester_upn == user]
        seen: list[Any] = []
        cursor = None
        while True:
            page = requests.list_authorizations(
                ctx, caller=admin, user=user, active=active, cursor=cursor, limit=6
            )
            assert len(page.items) <= 6
            seen.extend(v.request.id for v in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == wanted, user


def test_a_kind_filter_keeps_the_requests_of_those_kinds_and_an_empty_one_none(
    made: Generated, everything: tuple[ServiceContext, Engine, list[AccessRequest]]
) -> None:
    base, _, all_requests = everything
    moment = datetime.now(UTC)
    ctx = at(base, moment)
    admin = caller_for(ctx, made, made.admin_upn)
    kinds = {r.type for r in all_requests}
    assert kinds == {PolicyType.TASK}  # the generator's requests are all for tasks
    everyone = in_order(all_requests, oldest_first=False)
    pending = [r for r in everyone if r.status_at(moment) is RequestStatus.PENDING]
    assert pending
    for types, status, expected in (
        ([PolicyType.TASK], None, everyone),
        ([PolicyType.TASK, PolicyType.ROLE], "pending", pending),
        ([PolicyType.ROLE, PolicyType.ROLE_GROUP], None, []),
        ([], None, []),  # a kind no access request is (a data access request)
    ):
        for limit in (7, 500):
            seen, _ = every_page(ctx, admin, limit, types=types, status=status)
            assert [r.id for r in seen] == [r.id for r in expected], (types, status, limit)
