"""Organizations and their catalogs, as an admin would browse them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import pytest

from jitpam.catalogs import shipped_catalog
from jitpam.domain.catalog import parse_catalog
from jitpam.domain.errors import AlreadyExists, InvalidInput, NotFound
from jitpam.domain.names import QualifiedName
from jitpam.domain.policy import PolicyType
from jitpam.services import organizations
from jitpam.services.context import ServiceContext
from tests.integration.world import World


def test_a_new_organization_has_the_builtin_and_the_requested_catalogs(world: World) -> None:
    roles = {
        str(r)
        for r in organizations.catalog_entries(
            world.ctx, caller=world.admin.caller, kind=PolicyType.ROLE
        )
    }
    assert {"jitpam\\Role Management", "jitpam\\Audit Reader", "jitpam\\Access Checker"} <= roles
    assert {"Exchange\\Move Mailboxes", "Exchange\\Mailbox Search"} <= roles
    groups = organizations.catalog_entries(
        world.ctx, caller=world.admin.caller, kind=PolicyType.ROLE_GROUP
    )
    assert "jitpam\\Global Administrator" in {str(g) for g in groups}


def test_a_role_lists_the_tasks_it_holds(world: World) -> None:
    tasks = organizations.role_tasks(world.ctx, caller=world.admin.caller, role="Move Mailboxes")
    assert "Exchange\\New-MoveRequest" in tasks
    assert "Exchange\\Search-Mailbox" not in tasks
    with pytest.raises(NotFound):
        organizations.role_tasks(world.ctx, caller=world.admin.caller, role="No Such Role")


def test_organizations_are_found_by_name_and_names_are_unique(world: World) -> None:
    found = organizations.find_organization(world.ctx, name=world.org.name)
    assert found.id == world.org.id
    with pytest.raises(AlreadyExists):
        organizations.create_organization(
            world.ctx, name=world.org.name, admin_upn=world.upn("other"), admin_display_name="Other"
        )
    with pytest.raises(NotFound):
        organizations.find_organization(world.ctx, name="no-such-org-" + world.org.name)


@pytest.mark.parametrize("name", ["", "Upper", "with space", "-leading", "x" * 64])
def test_organization_names_are_short_lowercase_words(world: World, name: str) -> None:
    with pytest.raises(InvalidInput):
        organizations.create_organization(
            world.ctx, name=name, admin_upn=world.upn("boss"), admin_display_name="Boss"
        )


def test_unknown_shipped_catalog_is_refused_and_nothing_is_created(world: World) -> None:
    name = world.org.name + "-b"
    with pytest.raises(InvalidInput):
        organizations.create_organization(
            world.ctx,
            name=name,
            admin_upn=world.upn("boss2"),
            admin_display_name="Boss",
            catalogs=("sharepoint",),
        )
    with pytest.raises(NotFound):
        organizations.find_organization(world.ctx, name=name)


DOORS = """
scope = "Doors"

[tasks]
"Open-Door" = "Opens a door"
"Lock-Door" = "Locks a door"

[[roles]]
name = "Door Keeper"
tasks = ["Open-Door", "Lock-Door"]

[[roles]]
name = "Visitor"
tasks = ["Open-Door"]

[[role_groups]]
name = "Staff"
roles = ["Door Keeper"]
"""


def _store(ctx: ServiceContext, org_id: UUID, text: str) -> int:
    with ctx.uow() as uow:
        changed = uow.catalog.store(org_id, parse_catalog(text, source="doors.toml"))
        uow.commit()
        return changed


def _shown(ctx: ServiceContext, org_id: UUID) -> dict[str, Any]:
    with ctx.reader() as uow:
        return {
            "roles": {
                str(r): uow.catalog.tasks_of_role(org_id, str(r))
                for r in uow.catalog.entries(org_id, PolicyType.ROLE)
                if r.scope == "Doors"
            },
            "groups": {
                k: sorted(v)
                for k, v in uow.catalog.role_group_roles(org_id).items()
                if k.startswith("Doors")
            },
            "tasks": [str(t) for t in uow.catalog.entries(org_id, PolicyType.TASK)],
        }


def test_storing_a_catalog_counts_what_it_added_or_changed_and_nothing_the_second_time(
    db_ctx: ServiceContext,
) -> None:
    """What ``store`` returns is what an upgrade audits (``refresh_builtin_catalog``): each
    entry that is new or described differently, and each role or role group whose members
    changed."""
    _counts_and_links(db_ctx)


def test_the_fake_counts_a_stored_catalog_as_the_databases_do(memory_ctx: ServiceContext) -> None:
    _counts_and_links(memory_ctx)


def _counts_and_links(ctx: ServiceContext) -> None:
    suffix = uuid4().hex[:12]
    org = organizations.create_organization(
        ctx,
        name=f"doors-{suffix}",
        admin_upn=f"admin@{suffix}.doors.example.com",
        admin_display_name="Admin",
    )[0]
    # 2 tasks, 2 roles, 1 role group, and the 3 of them that hold something
    assert _store(ctx, org.id, DOORS) == 8
    assert _store(ctx, org.id, DOORS) == 0
    first = _shown(ctx, org.id)
    assert first["roles"] == {
        "Doors\\Door Keeper": ["Doors\\Lock-Door", "Doors\\Open-Door"],
        "Doors\\Visitor": ["Doors\\Open-Door"],
    }
    assert first["groups"] == {"Doors\\Staff": ["Doors\\Door Keeper"]}

    changed = (
        DOORS.replace('"Locks a door"', '"Locks a door for the night"')
        .replace('tasks = ["Open-Door"]', 'tasks = ["Open-Door", "Lock-Door"]')
        .replace('roles = ["Door Keeper"]', 'roles = ["Door Keeper", "Visitor"]')
        .replace('"Lock-Door" = ', '"Ring-Bell" = "Rings"\n"Lock-Door" = ')
    )
    # a new task, one description, the visitor's tasks, the staff's roles
    assert _store(ctx, org.id, changed) == 4
    assert _store(ctx, org.id, changed) == 0
    second = _shown(ctx, org.id)
    assert second["roles"] == {
        "Doors\\Door Keeper": ["Doors\\Lock-Door", "Doors\\Open-Door"],
        "Doors\\Visitor": ["Doors\\Lock-Door", "Doors\\Open-Door"],
    }
    assert second["groups"] == {"Doors\\Staff": ["Doors\\Door Keeper", "Doors\\Visitor"]}
    assert [t for t in second["tasks"] if t.startswith("Doors")] == [
        "Doors\\Lock-Door",
        "Doors\\Open-Door",
        "Doors\\Ring-Bell",
    ]
    # the old description and fewer members are changes too; an entry left out stays
    assert _store(ctx, org.id, DOORS) == 3
    assert _shown(ctx, org.id) == {**first, "tasks": second["tasks"]}


def test_an_upgrade_that_ships_the_same_builtin_catalog_changes_no_organization(
    memory_ctx: ServiceContext,
) -> None:
    """On the fake, which holds only this test's organizations (on a shared database the
    upgrade would read every organization every test before it left)."""
    for n in range(2):
        organizations.create_organization(
            memory_ctx,
            name=f"same-{n}",
            admin_upn=f"admin@same{n}.example.com",
            admin_display_name="Admin",
            catalogs=("exchange",),
        )
    assert organizations.refresh_builtin_catalog(memory_ctx) == 0
    assert organizations.refresh_builtin_catalog(memory_ctx) == 0


def _office365(ctx: ServiceContext) -> dict[str, Any]:
    """An organization made with the shipped office365 catalog: what its data scopes read as,
    and what storing the catalog again and changing one description count."""
    suffix = uuid4().hex[:12]
    org = organizations.create_organization(
        ctx,
        name=f"o365-{suffix}",
        admin_upn=f"admin@{suffix}.o365.example.com",
        admin_display_name="Admin",
        catalogs=("office365",),
    )[0]
    shipped = parse_catalog(shipped_catalog("office365"), source="office365.toml")
    kind = PolicyType.DATA_ACCESS
    with ctx.reader() as uow:
        scopes = [str(s) for s in uow.catalog.entries(org.id, kind)]
        first = uow.catalog.page(org.id, kind, cursor=None, limit=5)
        second = uow.catalog.page(org.id, kind, cursor=first.next_cursor, limit=5)
        found = {
            "entries": scopes,
            "pages": [[str(s) for s in first.items], [str(s) for s in second.items]],
            "by name": uow.catalog.names(org.id, kind, "mail.read"),
            "as a task": uow.catalog.names(org.id, PolicyType.TASK, "Mail.Read"),
            "lookup": [str(s) for s in uow.catalog.lookup(org.id, kind, "Office365\\Mail", 3)],
            "lookup by name": [str(s) for s in uow.catalog.lookup(org.id, kind, "cal", 5)],
            "tasks": [str(t) for t in uow.catalog.entries(org.id, PolicyType.TASK)],
        }
    with ctx.uow() as uow:
        found["stored again"] = uow.catalog.store(org.id, shipped)
        reworded = {**shipped.data_scopes}
        mail_read = next(s for s in reworded if s.name == "Mail.Read")
        reworded[mail_read] = "Read mail"
        found["reworded"] = uow.catalog.store(org.id, replace(shipped, data_scopes=reworded))
        uow.commit()
    found["expected"] = sorted((str(s) for s in shipped.data_scopes), key=str.casefold)
    return found


def test_the_shipped_office365_catalog_stores_its_data_scopes(db_ctx: ServiceContext) -> None:
    _data_scopes_stored(db_ctx)


def test_the_fake_stores_data_scopes_as_the_databases_do(memory_ctx: ServiceContext) -> None:
    _data_scopes_stored(memory_ctx)


def _data_scopes_stored(ctx: ServiceContext) -> None:
    found = _office365(ctx)
    assert len(found["expected"]) == 12
    assert found["entries"] == found["expected"]
    assert found["pages"] == [found["expected"][:5], found["expected"][5:10]]
    assert found["by name"] == [QualifiedName("Office365", "Mail.Read")]
    assert found["as a task"] == []  # a data scope is no task
    assert found["lookup"] == [
        "Office365\\Mail.Read",
        "Office365\\Mail.ReadWrite",
        "Office365\\Mail.Send",
    ]
    assert found["lookup by name"] == [
        "Office365\\Calendars.Read",
        "Office365\\Calendars.ReadWrite",
    ]
    assert not [t for t in found["tasks"] if t.startswith("Office365")]
    assert (found["stored again"], found["reworded"]) == (0, 1)
