"""The requests Microsoft Entra ID and Okta send, replayed against a real ``jitpam serve``.

The bodies are those of the providers' public SCIM documentation: Entra ID's "Tutorial: develop
and plan provisioning for a SCIM endpoint" (the user and group requests, ``"op": "Replace"`` with
``"active": "False"`` as a string, ``addMember``/``removeMember``, enterprise extension schemas
it sends whether or not they are published) and Okta's "SCIM 2.0 protocol reference" (``op`` in
lowercase, a PATCH without a path for deactivation, ``members[value eq "..."]`` removals, the
``password`` and ``groups`` it sends on create). Their effects are read through jitpam's own
API: the user, the group's members, the grants revoked on deprovisioning, the audit records.
The rest of the protocol the checker (test_scim_checker.py) does not try is tried here: filters,
pagination, attribute selection and the SCIM error bodies.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import FAST, JITPAM, Server, start_server, token_for
from tests.e2e.test_scim_checker import sync_token

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MOVE = "Exchange\\New-MoveRequest"
PASSWORD = "an-okta-user-password"


@dataclass
class Scene:
    server: Server
    scim: httpx.Client  # as the sync account, at /scim/v2
    admin: httpx.Client  # as the demo admin, at /api/v1


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    server = start_server(tmp_path_factory.mktemp("scim-idp"), "--demo")
    token = sync_token(server)
    admin_token = token_for(server, "admin@contoso.com")
    with (
        httpx.Client(
            base_url=f"{server.url}/scim/v2",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as scim,
        httpx.Client(
            base_url=f"{server.url}/api/v1",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=30,
        ) as admin,
    ):
        yield Scene(server, scim, admin)
    server.stop()


def scim_ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    if status == 204:
        assert not response.content
        return None
    assert response.headers["content-type"].startswith("application/scim+json")
    return response.json()


def scim_error(response: httpx.Response, status: int, scim_type: str | None = None) -> str:
    """The SCIM Error body of a refusal (RFC 7644 §3.12); its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    return str(body["detail"])


def api(scene: Scene, method: str, path: str, *, as_token: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {as_token}"} if as_token else {}
    response = scene.admin.request(method, path, headers=headers, **kw)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def granted(scene: Scene, upn: str, token: str) -> str:
    """``upn`` requests New-MoveRequest and bob (pamapprovers) approves: an active grant."""
    request = api(
        scene,
        "POST",
        "/requests",
        as_token=token,
        json={"type": "task", "target": MOVE, "reason": f"move a mailbox for {upn}"},
    )
    bob = token_for(scene.server, "bob@contoso.com")
    assert api(scene, "POST", f"/requests/{request['id']}/approve", as_token=bob, json={})
    assert api(scene, "GET", f"/requests/{request['id']}")["status"] == "approved"
    return str(request["id"])


def audit(scene: Scene, operation: str, target: str) -> list[dict[str, Any]]:
    found = api(scene, "GET", "/audit", params={"operation": operation, "target": target})
    return list(found["items"])


def test_entra_id_provisions_a_user_a_membership_change_and_a_deprovisioning(
    scene: Scene,
) -> None:
    s = scene.scim
    # A new user: Entra ID looks for a match, then creates.
    query = s.get("/Users", params={"filter": 'userName eq "ellen@contoso.com"'})
    assert scim_ok(query)["totalResults"] == 0
    made = scim_ok(
        s.post(
            "/Users",
            json={
                "schemas": [USER, ENTERPRISE],
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "userName": "ellen@contoso.com",
                "active": True,
                "emails": [{"primary": True, "type": "work", "value": "ellen@contoso.com"}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "Ellen Adams", "familyName": "Adams", "givenName": "Ellen"},
                "roles": [],
                ENTERPRISE: {"department": "Finance"},
            },
        ),
        201,
    )
    ellen = made["id"]
    assert made["meta"]["location"] == f"{scene.server.url}/scim/v2/Users/{ellen}"
    shown = api(scene, "GET", "/users/ellen@contoso.com")
    assert (shown["display_name"], shown["source"], shown["enabled"]) == (
        "Ellen Adams",
        "scim",
        True,
    )
    # Attribute changes: the work email (a filtered path) and a name part jitpam does not keep.
    changed = scim_ok(
        s.patch(
            f"/Users/{ellen}",
            json=patch_op(
                {
                    "op": "Replace",
                    "path": 'emails[type eq "work"].value',
                    "value": "ellen.adams@contoso.com",
                },
                {"op": "Replace", "path": "name.familyName", "value": "Adams-Smith"},
            ),
        )
    )
    assert changed["emails"] == [{"value": "ellen.adams@contoso.com", "type": "work"}]
    assert api(scene, "GET", "/users/ellen@contoso.com")["email"] == "ellen.adams@contoso.com"

    # A group and a membership change.
    query = s.get(
        "/Groups",
        params={"excludedAttributes": "members", "filter": 'displayName eq "Entra Finance"'},
    )
    assert scim_ok(query)["totalResults"] == 0
    group = scim_ok(
        s.post(
            "/Groups",
            json={
                "schemas": [
                    GROUP,
                    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group",
                ],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "Entra Finance",
                "meta": {"resourceType": "Group"},
            },
        ),
        201,
    )
    member = {"displayName": "Ellen Adams", "value": ellen}
    added = s.patch(
        f"/Groups/{group['id']}",
        json=patch_op({"name": "addMember", "op": "Add", "path": "members", "value": [member]}),
    )
    assert scim_ok(added)["members"][0]["value"] == ellen
    assert api(scene, "GET", "/groups/Entra Finance")["members"] == ["ellen@contoso.com"]
    removed = s.patch(
        f"/Groups/{group['id']}",
        json=patch_op(
            {"name": "removeMember", "op": "Remove", "path": "members", "value": [member]}
        ),
    )
    assert scim_ok(removed)["members"] == []
    assert api(scene, "GET", "/groups/Entra Finance")["members"] == []

    # A user jitpam had before (made by hand) is matched by userName but never taken over:
    # Entra ID's deprovisioning of her is refused, and she keeps her account and grant.
    alice = token_for(scene.server, "alice@contoso.com")
    grant = granted(scene, "alice@contoso.com", alice)
    (found,) = scim_ok(s.get("/Users", params={"filter": 'userName eq "alice@contoso.com"'}))[
        "Resources"
    ]
    refused = scim_error(
        s.patch(
            f"/Users/{found['id']}",
            json=patch_op({"op": "Replace", "path": "active", "value": "False"}),
        ),
        400,
        "mutability",
    )
    assert "made in jitpam" in refused
    shown = api(scene, "GET", "/users/alice@contoso.com")
    assert (shown["enabled"], shown["source"]) == (True, "jitpam")
    assert api(scene, "GET", f"/requests/{grant}")["status"] == "approved"
    scim_error(s.delete(f"/Users/{found['id']}"), 400, "mutability")

    # Deprovisioning a user Entra ID provisioned: disabled with its string "False", then deleted.
    disabled = s.patch(
        f"/Users/{ellen}", json=patch_op({"op": "Replace", "path": "active", "value": "False"})
    )
    assert scim_ok(disabled)["active"] is False
    assert api(scene, "GET", "/users/ellen@contoso.com")["enabled"] is False
    (set_user, *_) = [
        r for r in audit(scene, "Set-User", "ellen@contoso.com") if "enabled" in r["details"]
    ]
    assert set_user["details"]["set_up_by"] == ["admin@contoso.com"]
    assert set_user["actor"] == "scim-sync@contoso.com"
    scim_ok(s.delete(f"/Users/{ellen}"), 204)
    scim_error(s.get(f"/Users/{ellen}"), 404)
    listed = scim_ok(s.get("/Users", params={"filter": 'userName eq "ellen@contoso.com"'}))
    assert listed["totalResults"] == 0
    assert api(scene, "GET", "/users/ellen@contoso.com")["enabled"] is False  # kept


def test_okta_provisions_a_user_a_membership_change_and_a_deactivation(scene: Scene) -> None:
    s = scene.scim
    ids = {}
    for login, given in (("olga", "Olga"), ("oscar", "Oscar")):
        upn = f"{login}@contoso.com"
        query = s.get(
            "/Users",
            params={"filter": f'userName eq "{upn}"', "startIndex": "1", "count": "100"},
        )
        assert scim_ok(query)["totalResults"] == 0
        made = s.post(
            "/Users",
            json={
                "schemas": [USER],
                "userName": upn,
                "name": {"givenName": given, "familyName": "Test"},
                "emails": [{"primary": True, "value": upn, "type": "work"}],
                "displayName": f"{given} Test",
                "locale": "en-US",
                "externalId": f"00u{login}l29u0le5T6Aj10h7",
                "groups": [],
                "password": "1mz050nq",
                "active": True,
            },
        )
        ids[login] = scim_ok(made, 201)["id"]
    assert api(scene, "GET", "/users/olga@contoso.com")["source"] == "scim"

    # Okta pushes a group, then changes its members and its name.
    group = scim_ok(
        s.post("/Groups", json={"schemas": [GROUP], "displayName": "Okta Sales", "members": []}),
        201,
    )
    gid = group["id"]
    scim_ok(
        s.patch(
            f"/Groups/{gid}",
            json=patch_op(
                {
                    "op": "add",
                    "path": "members",
                    "value": [{"value": ids["olga"], "display": "olga@contoso.com"}],
                }
            ),
        )
    )
    assert api(scene, "GET", "/groups/Okta Sales")["members"] == ["olga@contoso.com"]
    swapped = s.patch(
        f"/Groups/{gid}",
        json=patch_op(
            {"op": "remove", "path": f'members[value eq "{ids["olga"]}"]'},
            {
                "op": "add",
                "path": "members",
                "value": [{"value": ids["oscar"], "display": "oscar@contoso.com"}],
            },
        ),
    )
    assert [m["value"] for m in scim_ok(swapped)["members"]] == [ids["oscar"]]
    assert api(scene, "GET", "/groups/Okta Sales")["members"] == ["oscar@contoso.com"]
    renamed = s.patch(
        f"/Groups/{gid}",
        json=patch_op({"op": "replace", "value": {"id": gid, "displayName": "Okta Sales Team"}}),
    )
    assert scim_ok(renamed)["displayName"] == "Okta Sales Team"
    assert api(scene, "GET", "/groups/Okta Sales Team")["members"] == ["oscar@contoso.com"]
    added = audit(scene, "Add-GroupMember", "Okta Sales")
    assert {r["details"]["member"] for r in added} == {"olga@contoso.com", "oscar@contoso.com"}
    assert all(r["details"]["via"] == "scim" for r in added)
    assert {r["actor"] for r in added} == {"scim-sync@contoso.com"}
    (left,) = audit(scene, "Remove-GroupMember", "Okta Sales")
    assert left["details"]["member"] == "olga@contoso.com"

    # Olga works in jitpam (a password from the administrator, a role), holds a grant, and
    # Okta deactivates her.
    api(scene, "PUT", "/users/olga@contoso.com/password", json={"password": PASSWORD})
    api(
        scene,
        "POST",
        "/assignments",
        json={"role": "Exchange\\Move Mailboxes", "user": "olga@contoso.com"},
    )
    login = api(
        scene, "POST", "/auth/login", json={"user": "olga@contoso.com", "password": PASSWORD}
    )
    grant = granted(scene, "olga@contoso.com", login["token"])
    deactivated = s.patch(
        f"/Users/{ids['olga']}", json=patch_op({"op": "replace", "value": {"active": False}})
    )
    assert scim_ok(deactivated)["active"] is False
    assert api(scene, "GET", "/users/olga@contoso.com")["enabled"] is False
    assert api(scene, "GET", f"/requests/{grant}")["status"] == "revoked"
    (record,) = [
        r for r in audit(scene, "Set-User", "olga@contoso.com") if "enabled" in r["details"]
    ]
    assert record["details"]["via"] == "scim"
    assert record["details"]["enabled"] is False
    # Okta reactivates her: the identity provider's call, not a hand edit.
    reactivated = s.patch(
        f"/Users/{ids['olga']}", json=patch_op({"op": "replace", "value": {"active": True}})
    )
    assert scim_ok(reactivated)["active"] is True


def test_filters_pagination_and_attribute_selection(scene: Scene) -> None:
    s = scene.scim
    everyone = scim_ok(s.get("/Users", params={"count": "200"}))
    total = everyone["totalResults"]
    assert total == len(everyone["Resources"]) >= 4
    names = [u["userName"] for u in everyone["Resources"]]
    assert names == sorted(names)
    page = scim_ok(s.get("/Users", params={"startIndex": "2", "count": "2"}))
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (total, 2, 2)
    assert [u["userName"] for u in page["Resources"]] == names[1:3]
    assert scim_ok(s.get("/Users", params={"count": "0"}))["Resources"] == []
    beyond = scim_ok(s.get("/Users", params={"startIndex": str(10**30)}))
    assert (beyond["totalResults"], beyond["Resources"]) == (total, [])
    scim_error(s.get("/Users", params={"count": "many"}), 400, "invalidValue")

    found = scim_ok(s.get("/Users", params={"filter": 'USERNAME EQ "BOB@contoso.com"'}))
    assert [u["userName"] for u in found["Resources"]] == ["bob@contoso.com"]
    bob = found["Resources"][0]
    shown_as = json.dumps(bob["displayName"].upper())
    found = scim_ok(s.get("/Users", params={"filter": f"displayname eq {shown_as}"}))
    assert [u["id"] for u in found["Resources"]] == [bob["id"]]
    detail = scim_error(
        s.get("/Users", params={"filter": 'userName co "bob"'}), 400, "invalidFilter"
    )
    assert "eq" in detail
    scim_error(s.get("/Users", params={"filter": 'title eq "x"'}), 400, "invalidFilter")

    only = scim_ok(s.get(f"/Users/{bob['id']}", params={"attributes": "userName"}))
    assert set(only) == {"schemas", "id", "userName"}
    without = scim_ok(s.get(f"/Users/{bob['id']}", params={"excludedAttributes": "emails,meta"}))
    assert without["id"] == bob["id"]
    assert not {"emails", "meta"} & set(without)
    listed = scim_ok(s.get("/Groups", params={"attributes": "displayName"}))
    assert all(set(g) == {"schemas", "id", "displayName"} for g in listed["Resources"])


def test_every_refusal_is_a_scim_error(scene: Scene) -> None:
    s, url = scene.scim, scene.server.url
    body = {"schemas": [USER], "userName": "bob@contoso.com"}
    assert "already exists" in scim_error(s.post("/Users", json=body), 409, "uniqueness")
    body = {"schemas": [USER], "userName": "mallory@fabrikam.example"}
    assert "not a domain" in scim_error(s.post("/Users", json=body), 400, "invalidValue")
    scim_error(s.post("/Users", content=b"{not json"), 400, "invalidSyntax")
    scim_error(s.post("/Users", content=b"[" * 100_000), 400, "invalidSyntax")
    scim_error(
        s.post("/Users", json={"schemas": [USER], "userName": "x\u0000@contoso.com"}),
        400,
        "invalidValue",
    )
    scim_error(
        s.patch(
            "/Users/nobody", json=patch_op({"op": "replace", "path": "active", "value": False})
        ),
        404,
    )
    scim_error(
        s.patch("/Groups/00000000-0000-0000-0000-000000000000", json={"Operations": []}),
        400,
        "invalidSyntax",
    )
    scim_error(s.get("/Nowhere"), 404)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas"):
            scim_error(s.request(method, path), 405)
    scim_error(httpx.get(f"{url}/scim/v2/Users"), 401)
    admin = {"Authorization": f"Bearer {token_for(scene.server, 'admin@contoso.com')}"}
    assert "Sync-Directory" in scim_error(httpx.get(f"{url}/scim/v2/Users", headers=admin), 403)
    big = b'{"userName": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    scim_error(s.post("/Users", content=big), 413)
    metrics = httpx.get(f"{url}/metrics", headers=admin).text
    assert 'route="/scim/v2/Users",status="403"' in metrics  # counted under its own route
    config = scim_ok(s.get("/ServiceProviderConfig"))
    assert config["patch"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 200}
    assert not any(config[f]["supported"] for f in ("bulk", "sort", "changePassword", "etag"))


def test_hand_edits_and_unsynced_approver_groups_are_refused(scene: Scene, tmp_path: Path) -> None:
    s = scene.scim
    made = scim_ok(s.post("/Users", json={"schemas": [USER], "userName": "hank@contoso.com"}), 201)
    refused = scene.admin.patch("/users/hank@contoso.com", json={"display_name": "By Hand"})
    assert refused.status_code == 409
    assert refused.json()["code"] == "managed_by_identity_provider"
    assert "change it there" in refused.json()["detail"]
    assert (
        api(scene, "PATCH", "/users/hank@contoso.com", json={"enabled": False})["enabled"] is False
    )

    (approvers,) = scim_ok(s.get("/Groups", params={"filter": 'displayName eq "pamapprovers"'}))[
        "Resources"
    ]
    joining = patch_op({"op": "add", "path": "members", "value": [{"value": made["id"]}]})
    detail = scim_error(s.patch(f"/Groups/{approvers['id']}", json=joining), 400, "mutability")
    assert "approver group" in detail
    assert "hank@contoso.com" not in api(scene, "GET", "/groups/pamapprovers")["members"]
    # The organization opts the group in, from the CLI.
    done = subprocess.run(
        [JITPAM, "config", "set", "--scim-approver-group", "pamapprovers", "--json"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            **FAST,
            "JITPAM_URL": scene.server.url,
            "JITPAM_CONFIG_DIR": str(tmp_path),
            "JITPAM_TOKEN": token_for(scene.server, "admin@contoso.com"),
        },
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["scim_approver_groups"] == ["pamapprovers"]
    scim_ok(s.patch(f"/Groups/{approvers['id']}", json=joining))
    assert "hank@contoso.com" in api(scene, "GET", "/groups/pamapprovers")["members"]
    cleared = api(scene, "PATCH", "/control/config", json={"scim_approver_groups": []})
    assert cleared["scim_approver_groups"] == []
