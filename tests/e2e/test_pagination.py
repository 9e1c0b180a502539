"""Listings come a page at a time with a cursor to the next; nothing is lost or repeated."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Server, token_for


def walk(client: httpx.Client, path: str, limit: int) -> tuple[list[dict[str, object]], int]:
    items: list[dict[str, object]] = []
    params: dict[str, object] = {"limit": limit}
    pages = 0
    while True:
        page = client.get(path, params=params).json()
        pages += 1
        items += page["items"]
        assert len(page["items"]) <= limit
        if not page["next_cursor"]:
            return items, pages
        params["cursor"] = page["next_cursor"]


def test_users_groups_and_policies_page_through_every_item(demo_server: Server) -> None:
    admin = token_for(demo_server, "admin@contoso.com")
    with httpx.Client(
        base_url=demo_server.url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}
    ) as c:
        for i in range(5):
            c.post("/users", json={"upn": f"pager{i}@contoso.com"})
            c.post("/groups", json={"name": f"pager-group-{i}"})
            task = ["Set-Mailbox", "New-Mailbox", "Remove-Mailbox", "Get-Mailbox", "New-MailUser"][
                i
            ]
            body = {"type": "task", "target": f"Exchange\\{task}", "approval_type": "auto"}
            c.post("/policies", json=body)
        for path, key in (("/users", "upn"), ("/groups", "name"), ("/policies", "id")):
            everything = c.get(path, params={"limit": 500}).json()["items"]
            paged, pages = walk(c, path, 2)
            assert [x[key] for x in paged] == [x[key] for x in everything]
            assert pages >= 3
        for path in ("/users", "/groups", "/outbox"):
            bad = c.get(path, params={"cursor": "not-a-cursor"})
            assert bad.status_code == 422, path
            assert bad.json()["code"] == "invalid_input", path
            assert "cursor" in bad.json()["detail"], path


def test_the_catalog_roles_and_a_roles_tasks_page_through_every_item(demo_server: Server) -> None:
    admin = token_for(demo_server, "admin@contoso.com")
    with httpx.Client(
        base_url=demo_server.url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}
    ) as c:
        for path in ("/catalog/tasks", "/roles", "/roles?kind=role_group"):
            everything = c.get(path, params={"limit": 500}).json()["items"]
            paged, pages = walk(c, path, 3)
            assert [x["name"] for x in paged] == [x["name"] for x in everything]
            assert len({x["name"] for x in paged}) == len(paged)
            assert pages >= 2
        role = "Exchange\\Move Mailboxes"
        whole = c.get(f"/roles/{role}", params={"limit": 500}).json()
        first = c.get(f"/roles/{role}", params={"limit": 1}).json()
        assert first["name"] == role
        assert first["tasks"] == whole["tasks"][:1]
        assert first["tasks_next_cursor"]
        assert whole["tasks_next_cursor"] is None
        tasks, cursor = list(first["tasks"]), first["tasks_next_cursor"]
        while cursor:
            page = c.get("/catalog/tasks", params={"role": role, "limit": 1, "cursor": cursor})
            tasks += [t["name"] for t in page.json()["items"]]
            cursor = page.json()["next_cursor"]
        assert tasks == whole["tasks"]
        members, cursor = list(first["members"]), first["members_next_cursor"]
        while cursor:
            page = c.get(f"/roles/{role}", params={"limit": 1, "members_cursor": cursor}).json()
            members += page["members"]
            cursor = page["members_next_cursor"]
        assert members == whole["members"]
        assert c.get("/catalog/tasks", params={"limit": 501}).status_code == 422
