"""Organizations and their catalogs, as an admin would browse them."""

from __future__ import annotations

import pytest

from jitpam.domain.errors import AlreadyExists, InvalidInput, NotFound
from jitpam.domain.policy import PolicyType
from jitpam.services import organizations
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
