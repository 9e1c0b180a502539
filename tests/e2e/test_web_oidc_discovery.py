"""OIDC with only the issuer configured: the server reads the endpoints from the issuer's
discovery document when it starts, and group claims keep the mapped groups' memberships in line
at each web sign-in. Against a real server and the localhost identity provider of
test_web_oidc."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import FAST, JITPAM, Server, free_port, start_server, token_for
from tests.e2e.test_web_oidc import CLIENT, IdentityProvider, leave_for_issuer

GROUP_MAP = {"contoso:helpdesk": "sg-helpdesk", "contoso:pamapprovers": "sg-pam-approvers"}


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider(own_issuer=True)
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, idp: IdentityProvider) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("web-oidc-discovery"),
        "--demo",
        extra_env={
            "JITPAM_OIDC_ISSUER": idp.issuer,
            "JITPAM_OIDC_AUDIENCE": CLIENT,
            "JITPAM_OIDC_GROUPS_CLAIM": "groups",
            "JITPAM_OIDC_GROUP_MAP": json.dumps(GROUP_MAP),
        },
    )
    yield s
    s.stop()


def sign_in(server: Server, idp: IdentityProvider, groups: list[str]) -> None:
    idp.account = {"email": "alice@contoso.com", "email_verified": True, "groups": groups}
    with httpx.Client(base_url=server.url) as browser:
        back = leave_for_issuer(browser)
        done = browser.get(back.headers["location"])
        assert done.status_code == 303, done.text
        assert browser.get("/my-access").status_code == 200


def admin_get(server: Server, path: str, **params: Any) -> Any:
    with httpx.Client(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {token_for(server, 'admin@contoso.com')}"},
    ) as admin:
        answer = admin.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()


def members(server: Server, group: str) -> list[str]:
    return list(admin_get(server, f"/groups/{group}")["members"])


def records(server: Server, operation: str, target: str | None = None) -> list[dict[str, Any]]:
    params = {"operation": operation, **({"target": target} if target else {})}
    return list(admin_get(server, "/audit", **params)["items"])


def test_the_endpoints_come_from_the_discovery_document_fetched_once(
    server: Server, idp: IdentityProvider
) -> None:
    assert idp.discoveries == 1
    sign_in(server, idp, ["sg-helpdesk"])
    # The browser went to the document's authorization endpoint, and the code was exchanged at
    # its token endpoint; the document was not fetched again.
    assert idp.token_requests[-1]["client_id"] == CLIENT
    assert idp.discoveries == 1


def test_group_claims_add_and_remove_only_mapped_non_approver_groups(
    server: Server, idp: IdentityProvider
) -> None:
    assert "alice@contoso.com" in members(server, "helpdesk")  # the demo put her there
    # The claim no longer lists the helpdesk group, and lists the approvers' group.
    sign_in(server, idp, ["sg-pam-approvers", "sg-unmapped"])
    assert "alice@contoso.com" not in members(server, "helpdesk")
    # pamapprovers is the demo's approver group, not opted in: a claim makes nobody an approver.
    assert "alice@contoso.com" not in members(server, "pamapprovers")
    removed = records(server, "Remove-GroupMember", "helpdesk")
    assert removed[0]["actor"] == "jitpam"
    assert removed[0]["details"]["member"] == "alice@contoso.com"
    assert removed[0]["details"]["via"] == "oidc"
    assert removed[0]["details"]["claim"] == {"groups": "sg-helpdesk"}
    signed = [r for r in records(server, "Sign-In") if r["target"] == "alice@contoso.com"]
    assert signed[0]["details"]["method"] == "oidc"
    assert "pamapprovers" in signed[0]["details"]["groups_skipped"]
    assert records(server, "Add-GroupMember", "pamapprovers")[0]["actor"] != "jitpam"

    sign_in(server, idp, ["sg-helpdesk"])
    assert "alice@contoso.com" in members(server, "helpdesk")
    added = records(server, "Add-GroupMember", "helpdesk")[0]
    assert (added["actor"], added["details"]["via"]) == ("jitpam", "oidc")
    assert added["details"]["claim"] == {"groups": "sg-helpdesk"}
    # Bob, an approver by hand, is untouched by Alice's sign-ins.
    assert "bob@contoso.com" in members(server, "pamapprovers")


def serve_fails(tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JITPAM, "serve", "--port", str(free_port()), "--data-dir", str(tmp / "data")],
        env={**os.environ, **FAST, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_document_for_another_issuer_stops_the_server_at_start(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    other = IdentityProvider(own_issuer=True, document_issuer="https://evil.example")
    try:
        done = serve_fails(
            tmp_path, {"JITPAM_OIDC_ISSUER": other.issuer, "JITPAM_OIDC_AUDIENCE": CLIENT}
        )
    finally:
        other.stop()
    assert done.returncode == 2, done.stderr
    assert "is for the issuer 'https://evil.example'" in done.stderr
    assert "not the configured oidc_issuer" in done.stderr


def test_an_unreachable_discovery_document_stops_the_server_at_start(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    done = serve_fails(tmp_path, {"JITPAM_OIDC_ISSUER": nobody, "JITPAM_OIDC_AUDIENCE": CLIENT})
    assert done.returncode == 2, done.stderr
    assert f"cannot fetch the OIDC discovery document {nobody}/.well-known" in done.stderr
