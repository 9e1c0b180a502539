"""Users, groups, roles and role groups, assignments, and the catalog."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from jitpam.api import views
from jitpam.api.deps import AsCaller
from jitpam.api.inputs import Body
from jitpam.domain.directory import UserKind
from jitpam.domain.policy import PolicyType
from jitpam.services import directory, organizations
from jitpam.services.context import Caller, ServiceContext

router = APIRouter(tags=["directory"])


class NewUser(Body):
    upn: str = Field(max_length=256)
    display_name: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=256)
    kind: UserKind = UserKind.PERSON


class UserChange(Body):
    display_name: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=256)
    enabled: bool | None = None


class NewGroup(Body):
    name: str = Field(max_length=256)
    email: str | None = Field(default=None, max_length=256)
    description: str = Field(default="", max_length=1024)
    members: list[str] = Field(default_factory=list, max_length=1000)


class AssignmentBody(Body):
    role: str | None = Field(default=None, max_length=260)
    role_group: str | None = Field(default=None, max_length=260)
    user: str | None = Field(default=None, max_length=256)
    group: str | None = Field(default=None, max_length=256)


class CatalogImport(Body):
    source: str = Field(default="catalog.toml", max_length=256)
    text: str = Field(max_length=2_000_000)


Cursor = Annotated[str | None, Query(max_length=2000)]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/users", summary="List users, by user name")
async def list_users(calls: AsCaller, cursor: Cursor = None, limit: Limit = 100) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        found = directory.list_users(ctx, caller=caller, cursor=cursor, limit=limit)
        return views.page([views.user(u) for u in found.items], found.next_cursor)

    return await calls.run(work)


@router.post("/users", status_code=201, summary="New-User")
async def create_user(body: NewUser, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        u = directory.add_user(
            ctx,
            caller=caller,
            upn=body.upn,
            display_name=body.display_name or body.upn.split("@")[0],
            email=body.email,
            kind=body.kind,
        )
        return views.user(u)

    return await calls.run(work, writes=True)


@router.get("/users/{upn}", summary="Show a user")
async def show_user(upn: str, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.user(directory.get_user(ctx, caller=caller, upn=upn))
    )


@router.patch(
    "/users/{upn}", summary="Set-User (disabling revokes grants and tokens, cancels requests)"
)
async def change_user(upn: str, body: UserChange, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        u = directory.set_user(
            ctx,
            caller=caller,
            upn=upn,
            display_name=body.display_name,
            email=body.email,
            enabled=body.enabled,
        )
        return views.user(u)

    return await calls.run(work, writes=True)


@router.get("/groups", summary="List groups with their members, by name")
async def list_groups(calls: AsCaller, cursor: Cursor = None, limit: Limit = 100) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        found = directory.list_groups(ctx, caller=caller, cursor=cursor, limit=limit)
        return views.page([views.group(g) for g in found.items], found.next_cursor)

    return await calls.run(work)


@router.post("/groups", status_code=201, summary="New-Group (approver groups are groups)")
async def create_group(body: NewGroup, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        g = directory.add_group(
            ctx,
            caller=caller,
            name=body.name,
            email=body.email,
            description=body.description,
            members=body.members,
        )
        return views.group(g)

    return await calls.run(work, writes=True)


@router.get("/groups/{name}", summary="Show a group")
async def show_group(name: str, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.group(directory.get_group(ctx, caller=caller, name=name))
    )


@router.delete("/groups/{name}", status_code=204, summary="Remove-Group")
async def remove_group(name: str, calls: AsCaller) -> None:
    await calls.run(
        lambda ctx, caller: directory.remove_group(ctx, caller=caller, name=name), writes=True
    )


def _membership(name: str, upn: str, *, add: bool) -> Callable[[ServiceContext, Caller], Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        change = directory.change_membership(ctx, caller=caller, group=name, upn=upn, add=add)
        return views.group(change.group)

    return work


@router.put("/groups/{name}/members/{upn}", summary="Add-GroupMember")
async def add_member(name: str, upn: str, calls: AsCaller) -> dict[str, Any]:
    result: dict[str, Any] = await calls.run(_membership(name, upn, add=True), writes=True)
    return result


@router.delete("/groups/{name}/members/{upn}", summary="Remove-GroupMember")
async def remove_member(name: str, upn: str, calls: AsCaller) -> dict[str, Any]:
    result: dict[str, Any] = await calls.run(_membership(name, upn, add=False), writes=True)
    return result


KindParam = Literal["role", "role_group"]


PageLimit = Annotated[int, Query(ge=1, le=500)]


@router.get("/roles", summary="List roles (or role groups), by name")
async def list_roles(
    calls: AsCaller,
    kind: KindParam = "role",
    cursor: Cursor = None,
    limit: PageLimit = 50,
) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        _, found = organizations.catalog_page(
            ctx, caller=caller, kind=PolicyType(kind), cursor=cursor, limit=limit
        )
        return views.page([{"name": str(e), "type": kind} for e in found.items], found.next_cursor)

    return await calls.run(work)


@router.get(
    "/roles/{name:path}",
    summary="Show a role or role group: a page of its tasks and of its standing and "
    "just-in-time members",
)
async def show_role(
    name: str,
    calls: AsCaller,
    kind: KindParam = "role",
    members_cursor: Cursor = None,
    limit: PageLimit = 50,
) -> dict[str, Any]:
    """The role with its first ``limit`` tasks (``tasks_next_cursor`` goes on with
    ``GET /catalog/tasks?role=NAME&cursor=...``) and one page of its members
    (``members_next_cursor`` goes on with ``GET /roles/NAME?members_cursor=...``)."""

    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        resolved, members = directory.role_members_page(
            ctx,
            caller=caller,
            role=name,
            role_group=kind == "role_group",
            cursor=members_cursor,
            limit=limit,
        )
        tasks: list[str] = []
        tasks_next = None
        if kind == "role":
            _, page = organizations.catalog_page(
                ctx, caller=caller, kind=PolicyType.TASK, role=resolved, limit=limit
            )
            tasks, tasks_next = [str(t) for t in page.items], page.next_cursor
        return {
            "name": resolved,
            "type": kind,
            "tasks": tasks,
            "tasks_next_cursor": tasks_next,
            "members": [views.role_member(m) for m in members.items],
            "members_next_cursor": members.next_cursor,
        }

    return await calls.run(work)


def _assignment(
    body: AssignmentBody, ctx: ServiceContext, caller: Caller, *, add: bool
) -> dict[str, Any]:
    a = directory.change_assignment(
        ctx,
        caller=caller,
        role=body.role,
        role_group=body.role_group,
        user=body.user,
        group=body.group,
        add=add,
    )
    return {
        "type": a.target_kind,
        "target": a.target,
        "principal_kind": a.principal_kind.value,
        "principal": body.user or body.group,
        "removed": not add,
    }


@router.post("/assignments", status_code=201, summary="New-ManagementRoleAssignment")
async def assign(body: AssignmentBody, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: _assignment(body, ctx, caller, add=True), writes=True
    )


@router.post("/assignments/remove", summary="Remove-ManagementRoleAssignment")
async def unassign(body: AssignmentBody, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: _assignment(body, ctx, caller, add=False), writes=True
    )


@router.get("/catalog/tasks", summary="The organization's tasks (or a role's), by name")
async def list_tasks(
    calls: AsCaller,
    role: Annotated[str | None, Query(max_length=260)] = None,
    cursor: Cursor = None,
    limit: PageLimit = 50,
) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        _, found = organizations.catalog_page(
            ctx, caller=caller, kind=PolicyType.TASK, role=role, cursor=cursor, limit=limit
        )
        return views.page([{"name": str(e)} for e in found.items], found.next_cursor)

    return await calls.run(work)


@router.post("/catalog/import", summary="Import-TaskCatalog from TOML text")
async def import_catalog(body: CatalogImport, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        c = organizations.import_catalog(ctx, caller=caller, text=body.text, source=body.source)
        return {"scope": c.scope, **organizations.catalog_summary(c)}

    return await calls.run(work, writes=True)
