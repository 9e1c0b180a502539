"""Listings that could be whole tables at scale come a keyset page at a time: the catalog, a
role's tasks, a role's holders, policies (filtered and searched) and groups. Following every
cursor gives every item exactly once, in the listing's order, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from jitpam.adapters.sql import catalog as sql_catalog
from jitpam.adapters.sql import policies as sql_policies
from jitpam.adapters.webhooks import OutboundUrls
from jitpam.domain.errors import InvalidInput
from jitpam.domain.names import QualifiedName
from jitpam.domain.notifications import new_webhook_secret
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.services import delivery, directory, organizations, policies, requests, webhooks
from jitpam.services.ports import Page
from tests.integration.world import World

T = TypeVar("T")

MOVE_ROLE = "Exchange\\Move Mailboxes"
CATALOG = """
scope = "Paging"
description = "tasks for paging"

[tasks]
{tasks}

[[roles]]
name = "Few"
tasks = ["Task-03", "Task-11", "Task-07"]

[[roles]]
name = "Many"
tasks = [{many}]

[[role_groups]]
name = "Both"
roles = ["Few", "Many"]
"""
TASKS = [f"Task-{i:02d}" for i in range(23)]


def walk(fetch: Callable[[str | None], Page[T]], limit: int) -> list[T]:
    """Every item, following cursors; every page but the last is full, none is empty."""
    out: list[T] = []
    cursor = None
    for _ in range(1000):
        page = fetch(cursor)
        assert len(page.items) <= limit
        out += page.items
        if page.next_cursor is None:
            return out
        assert page.items, "a page that names a next cursor holds items (no search here)"
        cursor = page.next_cursor
    raise AssertionError("the cursors never ended")


@pytest.fixture
def paging(world: World) -> World:
    many = [t for i, t in enumerate(TASKS) if i % 2 == 0]
    text = CATALOG.format(
        tasks="\n".join(f'"{t}" = "task {t}"' for t in TASKS),
        many=", ".join(f'"{t}"' for t in many),
    )
    organizations.import_catalog(
        world.ctx, caller=world.admin.caller, text=text, source="paging.toml"
    )
    return world


@pytest.mark.parametrize("limit", [1, 4, 500])
def test_the_catalog_pages_through_every_task_once_in_name_order(paging: World, limit: int) -> None:
    caller = paging.admin.caller
    whole = organizations.catalog_entries(paging.ctx, caller=caller, kind=PolicyType.TASK)

    def fetch(cursor: str | None) -> Page[QualifiedName]:
        return organizations.catalog_page(
            paging.ctx, caller=caller, kind=PolicyType.TASK, cursor=cursor, limit=limit
        )[1]

    paged = walk(fetch, limit)
    assert paged == whole
    assert len(paged) == len(set(paged)) > 23  # the shipped catalogs' tasks and these
    assert [q.key for q in paged] == sorted(q.key for q in paged)


@pytest.mark.parametrize("few_tasks", [2, 5_000])  # both ways of reading a role's tasks
@pytest.mark.parametrize("role", ["Paging\\Few", "Many", "Exchange\\Move Mailboxes"])
def test_a_roles_tasks_page_by_name(
    paging: World, monkeypatch: pytest.MonkeyPatch, role: str, few_tasks: int
) -> None:
    monkeypatch.setattr(sql_catalog, "_FEW_TASKS", few_tasks)
    caller = paging.admin.caller
    whole = organizations.role_tasks(paging.ctx, caller=caller, role=role)

    def fetch(cursor: str | None) -> Page[QualifiedName]:
        name, page = organizations.catalog_page(
            paging.ctx, caller=caller, kind=PolicyType.TASK, role=role, cursor=cursor, limit=2
        )
        assert name is not None
        assert name.endswith(role.split("\\")[-1])
        return page

    paged = [str(t) for t in walk(fetch, 2)]
    assert paged == sorted(whole, key=str.casefold)
    assert len(paged) == len(set(paged)) >= 3


def test_roles_and_role_groups_page_and_a_bad_cursor_is_invalid_input(paging: World) -> None:
    caller = paging.admin.caller
    for kind in (PolicyType.ROLE, PolicyType.ROLE_GROUP):
        whole = organizations.catalog_entries(paging.ctx, caller=caller, kind=kind)
        paged = walk(
            lambda c, k=kind: organizations.catalog_page(  # type: ignore[misc]
                paging.ctx, caller=caller, kind=k, cursor=c, limit=3
            )[1],
            3,
        )
        assert paged == whole
    with pytest.raises(InvalidInput):
        organizations.catalog_page(
            paging.ctx, caller=caller, kind=PolicyType.TASK, cursor="not-a-cursor", limit=3
        )


def test_a_roles_holders_page_standing_then_just_in_time_then_through_role_groups(
    paging: World,
) -> None:
    world = paging
    caller = world.admin.caller
    standing = [world.user(f"holder{i}", roles=("Paging\\Few",)) for i in range(5)]
    by_group = world.user("grouped", role_groups=("Paging\\Both",))
    team = world.group("HoldersTeam", world.user("teammate"))
    directory.change_assignment(world.ctx, caller=caller, role="Paging\\Few", group=team, add=True)
    organizations.enable_access_control(world.ctx, caller=caller, admin_group=team)
    world.policy("Paging\\Few", type=PolicyType.ROLE, approval=ApprovalType.AUTO)
    jit = [world.user(f"jit{i}") for i in range(3)]
    for i, person in enumerate(jit):
        requests.new_request(
            world.ctx,
            caller=person.caller,
            type=PolicyType.ROLE,
            target="Paging\\Few",
            reason="paging",
            duration_hours=i + 1,
        )
    whole = directory.role_members(world.ctx, caller=caller, role="Few")

    def fetch(cursor: str | None) -> Page[directory.RoleMember]:
        name, page = directory.role_members_page(
            world.ctx, caller=caller, role="Few", cursor=cursor, limit=2
        )
        assert name == "Paging\\Few"
        return page

    paged = walk(fetch, 2)
    assert paged == whole
    names = [(m.name, m.via, m.just_in_time) for m in paged]
    # Standing holders first (assignment order), then grants soonest ending first, then the
    # holders of the role groups that hold the role.
    assert sorted(names[:6]) == sorted(
        [(p.upn, "Paging\\Few", False) for p in standing] + [(team, "Paging\\Few", False)]
    )
    assert names[6:] == [(p.upn, "Paging\\Few", True) for p in jit] + [
        (by_group.upn, "Paging\\Both", False)
    ]
    # A grant that ends leaves the listing; a role group lists its own holders only.
    world.later(hours=1, minutes=30)
    after = directory.role_members(world.ctx, caller=caller, role="Few")
    assert [m.name for m in after if m.just_in_time] == [jit[1].upn, jit[2].upn]
    name, of_group = directory.role_members_page(
        world.ctx, caller=caller, role="Both", role_group=True, limit=10
    )
    assert name == "Paging\\Both"
    assert [m.name for m in of_group.items] == [by_group.upn]
    assert of_group.next_cursor is None


def test_holders_of_the_move_role_page_the_same_as_listed_whole(world: World) -> None:
    people = []
    for i in range(4):  # assigned a second apart: listed oldest assignment first
        people.append(world.user(f"mover{i}", roles=(MOVE_ROLE,)))
        world.later(seconds=1)
    whole = directory.role_members(world.ctx, caller=world.admin.caller, role=MOVE_ROLE)
    paged = walk(
        lambda c: directory.role_members_page(
            world.ctx, caller=world.admin.caller, role=MOVE_ROLE, cursor=c, limit=3
        )[1],
        3,
    )
    assert paged == whole
    assert [m.name for m in paged] == [p.upn for p in people]


@pytest.fixture
def many_policies(paging: World) -> World:
    paging.group("Deciders", paging.user("decider"))
    eligible = paging.user("eligible")
    for i, task in enumerate(TASKS):
        paging.policy(
            f"Paging\\{task}",
            approval=ApprovalType.AUTO if i % 3 == 0 else ApprovalType.MANUAL,
            approver_group="Deciders" if i % 2 else None,
            eligible_users=[eligible.upn] if i % 5 == 0 else None,
        )
    paging.policy("Paging\\Few", type=PolicyType.ROLE, approval=ApprovalType.AUTO)
    paging.policy("Exchange\\New-MoveRequest")
    return paging


@pytest.mark.parametrize(
    ("type", "approval"),
    [(None, None), (PolicyType.TASK, None), (None, ApprovalType.AUTO), (PolicyType.ROLE, None)],
)
def test_policies_page_by_type_and_target_under_filters(
    many_policies: World, type: PolicyType | None, approval: ApprovalType | None
) -> None:
    world = many_policies
    caller = world.admin.caller
    whole = policies.list_policies(world.ctx, caller=caller, type=type, approval_type=approval)
    paged = [
        v.policy
        for v in walk(
            lambda c: policies.policy_page(
                world.ctx, caller=caller, type=type, approval_type=approval, cursor=c, limit=4
            ),
            4,
        )
    ]
    assert [p.id for p in paged] == [p.id for p in whole]
    assert [(p.type.value, p.target.key) for p in paged] == sorted(
        (p.type.value, p.target.key) for p in paged
    )
    assert paged == whole  # eligible requesters and approver groups read for the page too
    assert any(p.eligible_user_ids for p in paged) or type is PolicyType.ROLE


@pytest.mark.parametrize("window", [3, 10_000])
def test_a_policy_search_finds_every_match_once_whatever_the_window(
    many_policies: World, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    monkeypatch.setattr(sql_policies, "SEARCH_WINDOW", window)
    world = many_policies
    caller = world.admin.caller
    found: list[str] = []
    cursor = None
    for _ in range(200):
        page = policies.policy_page(
            world.ctx, caller=caller, search="task-1", cursor=cursor, limit=2
        )
        assert len(page.items) <= 2
        found += [str(v.policy.target) for v in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = [f"Paging\\{t}" for t in TASKS if "task-1" in t.casefold()]
    assert found == expected


def test_groups_page_with_their_sizes_and_first_members(world: World) -> None:
    caller = world.admin.caller
    people = [world.user(f"member{i}") for i in range(5)]
    for i in range(7):
        world.group(f"Team{i}", *people[: i % 6])
    whole = [v.group.name for v in directory.list_groups(world.ctx, caller=caller).items]
    paged = walk(
        lambda c: directory.group_summaries(world.ctx, caller=caller, cursor=c, limit=3, members=2),
        3,
    )
    assert [g.name for g in paged] == whole
    team = {g.name: g for g in paged}
    assert team["Team4"].member_count == 4
    assert team["Team4"].members == sorted(p.upn for p in people[:4])[:2]
    assert (team["Team0"].member_count, team["Team0"].members) == (0, [])


@pytest.mark.parametrize("limit", [1, 3, 500])
def test_users_groups_and_the_outbox_page_by_the_listings_own_cursors(
    world: World, limit: int
) -> None:
    caller = world.admin.caller
    for i in range(6):
        world.group(f"Crew{i}", world.user(f"crew{i}"))
    hook = webhooks.add_webhook(
        world.ctx,
        caller=caller,
        url="http://127.0.0.1:9/hook",
        events=["request.created"],
        urls=OutboundUrls(allow_private=True),
        secret=new_webhook_secret(),
    )
    for _ in range(5):  # queued at one instant: the id orders them
        webhooks.test_webhook(world.ctx, caller=caller, endpoint_id=hook.id)

    users = directory.list_users(world.ctx, caller=caller).items
    assert [u.upn for u in users] == sorted(u.upn for u in users)
    paged_users = walk(
        lambda c: directory.list_users(world.ctx, caller=caller, cursor=c, limit=limit), limit
    )
    assert paged_users == users
    groups = [v.group for v in directory.list_groups(world.ctx, caller=caller).items]
    paged_groups = walk(
        lambda c: directory.list_groups(world.ctx, caller=caller, cursor=c, limit=limit), limit
    )
    assert [v.group for v in paged_groups] == groups
    outbox = delivery.list_outbox(world.ctx, caller=caller, limit=500).items
    assert len(outbox) == 5
    assert [(m.created_at, m.id) for m in outbox] == sorted(
        ((m.created_at, m.id) for m in outbox), reverse=True
    )
    paged_outbox = walk(
        lambda c: delivery.list_outbox(world.ctx, caller=caller, cursor=c, limit=limit), limit
    )
    assert paged_outbox == outbox


def test_a_page_that_ends_the_listing_names_no_next_cursor(world: World) -> None:
    caller = world.admin.caller
    world.user("ann")
    world.user("bob")
    every = directory.list_users(world.ctx, caller=caller).items
    assert directory.list_users(world.ctx, caller=caller, limit=len(every)).next_cursor is None
    first = directory.list_users(world.ctx, caller=caller, limit=len(every) - 1)
    assert first.next_cursor is not None
    last = directory.list_users(world.ctx, caller=caller, cursor=first.next_cursor, limit=1)
    assert (last.items, last.next_cursor) == ([every[-1]], None)


def test_a_cursor_of_another_listing_or_none_at_all_is_invalid_input(world: World) -> None:
    caller = world.admin.caller
    world.user("ann")
    world.group("Readers")
    users_cursor = directory.list_users(world.ctx, caller=caller, limit=1).next_cursor
    assert users_cursor is not None
    for bad in ("not-a-cursor", users_cursor):
        with pytest.raises(InvalidInput, match="cursor"):
            delivery.list_outbox(world.ctx, caller=caller, cursor=bad)
    for listing in (directory.list_users, directory.list_groups):
        with pytest.raises(InvalidInput, match="cursor"):
            listing(world.ctx, caller=caller, cursor="not-a-cursor", limit=2)


def test_names_in_answers_for_users_and_groups_of_the_organization_only(world: World) -> None:
    caller = world.admin.caller
    ann = world.user("ann")
    world.group("Readers", ann)
    ann_id = directory.get_user(world.ctx, caller=caller, upn=ann.upn).id
    group = next(
        v.group
        for v in directory.list_groups(world.ctx, caller=caller).items
        if v.group.name == "Readers"
    )
    other = World(world.ctx, world.clock)
    stranger = other.user("stranger")
    ids = {ann_id, group.id, stranger.caller.user_id}
    with world.ctx.reader() as uow:
        names = directory.names_in(uow, caller.org_id, users=ids, groups=ids)
    assert names == {ann_id: ann.upn, group.id: "Readers"}


def test_target_suggestions_are_bounded_and_start_with_what_was_typed(paging: World) -> None:
    caller = paging.admin.caller

    def look(text: str, limit: int = 5) -> list[str]:
        return [
            str(n)
            for n in organizations.catalog_lookup(
                paging.ctx, caller=caller, kind=PolicyType.TASK, text=text, limit=limit
            )
        ]

    assert look("paging\\task-1") == [f"Paging\\Task-{i}" for i in range(10, 15)]
    assert look("TASK-2", 10) == ["Paging\\Task-20", "Paging\\Task-21", "Paging\\Task-22"]
    assert look("New-MoveRequest") == ["Exchange\\New-MoveRequest"]
    assert len(look("", 7)) == 7
