"""What a user sees in the web admin center, in a real browser, on one demo server for the module.

Every test makes the state it looks at (its own policy target, its own requests) and withdraws
what it opened, so the tests hold in any order. Each request target below is a task of
Exchange\\Move Mailboxes, the role alice holds, and belongs to one test only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from playwright.sync_api import Page, Response, expect

from tests.e2e.conftest import DEMO_PASSWORD
from tests.web.conftest import SESSION, Browsing, fill_sign_in

FORM_REFUSED = re.compile(r"^Form refused")
ApiFor = Callable[[str], Any]


def manual_policy(api: ApiFor, task: str) -> str:
    """A manual policy, approved by pamapprovers, for a task; returns its id."""
    made = api("admin@contoso.com").post(
        "/policies",
        {
            "type": "task",
            "target": task,
            "approval_type": "manual",
            "approver_group": "pamapprovers",
        },
        expected=201,
    )
    return str(made["id"])


@contextmanager
def request_of(api: ApiFor, upn: str, task: str) -> Iterator[str]:
    """A pending request of ``upn`` for ``task`` made through the API; withdrawn afterwards if
    it is still open (the same user may not hold two open requests for one target)."""
    client = api(upn)
    made = client.post(
        "/requests", {"type": "task", "target": task, "reason": "a browser test"}, expected=201
    )
    try:
        yield str(made["id"])
    finally:
        withdraw(api, upn, str(made["id"]))


def withdraw(api: ApiFor, upn: str, request_id: str) -> None:
    now = api(upn).get(f"/requests/{request_id}")
    if now["status"] == "pending":
        api(upn).post(f"/requests/{request_id}/cancel")
    elif now["status"] == "approved":
        api(upn).post(f"/authorizations/{now['authorization_id']}/revoke")


def nav(page: Page) -> Any:
    return page.get_by_role("navigation", name="Main")


def posting(page: Page, path_end: str) -> Any:
    """Waits for the answer to the form POST whose URL ends with ``path_end``."""
    return page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith(path_end))


def session_cookies(page: Page) -> list[dict[str, Any]]:
    return [dict(c) for c in page.context.cookies() if c["name"] == SESSION]


def expect_sent_to_sign_in(page: Page, path: str) -> None:
    response = page.goto(path)
    assert response is not None
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_role("heading", name="Sign in to jitpam")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


# -- what a requester may not see ------------------------------------------------------------------


def post_form(page: Page, action: str, fields: dict[str, str]) -> None:
    """Sends a form the page does not offer, built in the page itself (so with its cookies and
    its origin), as someone poking at the pages would."""
    page.evaluate(
        """([action, fields]) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = action;
            for (const [name, value] of Object.entries(fields)) {
                const input = document.createElement("input");
                input.name = name;
                input.value = value;
                form.append(input);
            }
            document.body.append(form);
            form.submit();
        }""",
        [action, fields],
    )


def test_a_requester_has_no_settings_or_audit_log(web: Browsing, api: ApiFor) -> None:
    admin = web.sign_in("admin@contoso.com")
    expect(nav(admin).get_by_role("link", name="Settings")).to_be_visible()
    expect(nav(admin).get_by_role("link", name="Audit log")).to_be_visible()

    alice = web.sign_in("alice@contoso.com")
    expect(nav(alice).get_by_role("link", name="My access")).to_be_visible()
    expect(nav(alice).get_by_role("link", name="Settings")).to_have_count(0)
    expect(nav(alice).get_by_role("link", name="Audit log")).to_have_count(0)
    token = alice.locator("form.who input[name=csrf]").input_value()
    for path in ("/settings", "/audit"):
        response = alice.goto(path)
        assert response is not None
        assert response.status == 403, path
        expect(alice).to_have_title(re.compile("^Not permitted"))
        expect(alice.get_by_role("heading", name="Not permitted")).to_be_visible()
        expect(alice.get_by_role("checkbox")).to_have_count(0)
        expect(alice.locator("#audit")).to_have_count(0)

    # Not even by sending the pages' forms herself, with her own valid token.
    with posting(alice, "/settings") as answer:
        post_form(alice, "/settings", {"csrf": token})
    assert answer.value.status == 303
    expect(alice.get_by_role("heading", name="Not permitted")).to_be_visible()
    expect(alice.locator(".flash.error")).to_be_visible()
    assert api("admin@contoso.com").get("/control")["enabled"] is True
    admin.goto("/settings")
    expect(admin.locator("#control-state")).to_have_text("on")

    with posting(alice, "/audit/verify") as answer:
        post_form(alice, "/audit/verify", {"csrf": token})
    assert answer.value.status == 403
    expect(alice.get_by_role("heading", name="Not permitted")).to_be_visible()
    expect(alice.locator("#integrity")).to_have_count(0)


@contextmanager
def request_of_carol(api: ApiFor, task: str) -> Iterator[str]:
    """A request of carol, an approver who holds no role: she is given Exchange\\Move Mailboxes
    just long enough to ask for one of its tasks."""
    admin = api("admin@contoso.com")
    role = {"role": "Exchange\\Move Mailboxes", "user": "carol@contoso.com"}
    with ExitStack() as stack:
        admin.post("/assignments", role, expected=201)
        try:
            request_id = stack.enter_context(request_of(api, "carol@contoso.com", task))
        finally:
            admin.post("/assignments/remove", role)
        yield request_id


def test_a_requester_sees_only_her_own_requests(web: Browsing, api: ApiFor) -> None:
    task = "Exchange\\New-MoveRequest"  # the demo's manual policy
    with (
        request_of_carol(api, task) as carols,
        request_of(api, "alice@contoso.com", task) as alices,
    ):
        alice = web.sign_in("alice@contoso.com")
        nav(alice).get_by_role("link", name=re.compile("^Requests")).click()
        rows = alice.locator("main table.list tbody tr")
        expect(alice.locator(f"a[href='/requests/{alices}']").first).to_be_visible()
        expect(alice.locator(f"a[href='/requests/{carols}']")).to_have_count(0)
        requesters = alice.locator("main table.list tbody tr td:nth-child(2)")
        assert set(requesters.all_inner_texts()) == {"alice@contoso.com"}
        alice.get_by_label("Search").fill("carol")
        alice.get_by_role("button", name="Apply").click()
        expect(rows).to_have_count(1)
        expect(rows).to_have_text("No requests.")

        response = alice.goto(f"/requests/{carols}")
        assert response is not None
        assert response.status == 404
        expect(alice.get_by_role("heading", name="Not found")).to_be_visible()
        expect(alice.get_by_text("carol@contoso.com")).to_have_count(0)

        # It is there: an approver of its policy sees it.
        bob = web.sign_in("bob@contoso.com", f"/requests/{carols}")
        expect(bob.locator("#request-status")).to_have_text("pending")
        expect(bob.locator("main")).to_contain_text("carol@contoso.com")


def test_a_requester_never_sees_approve_on_her_own_request(web: Browsing, api: ApiFor) -> None:
    task = "Exchange\\Get-MoveRequest"
    manual_policy(api, task)
    admin = api("admin@contoso.com")
    admin.call("PUT", "/groups/pamapprovers/members/alice@contoso.com")
    try:
        with request_of(api, "sys@contoso.com", task) as others:
            alice = web.sign_in("alice@contoso.com")
            # As a member of pamapprovers she may review someone else's request...
            alice.goto(f"/requests/{others}")
            expect(alice.get_by_role("button", name="Approve")).to_be_visible()
            waiting = alice.locator("#pending-count").inner_text()

            # ...but not her own.
            nav(alice).get_by_role("link", name="New request").click()
            alice.get_by_label("Target").select_option(label=f"{task} (Task, manual)")
            alice.get_by_label("Reason").fill("INC-1: check a move")
            alice.get_by_role("button", name="Send request").click()
            expect(alice).to_have_url(re.compile(r"/requests/[0-9a-f-]{36}$"))
            mine = alice.url.rsplit("/", 1)[1]
            try:
                expect(alice.locator("#request-status")).to_have_text("pending")
                expect(alice.get_by_role("button", name="Cancel request")).to_be_visible()
                expect(alice.get_by_role("button", name="Approve")).to_have_count(0)
                expect(alice.get_by_role("button", name="Deny")).to_have_count(0)
                # Her own request does not count as waiting for her review.
                expect(alice.locator("#pending-count")).to_have_text(waiting)
                nav(alice).get_by_role("link", name=re.compile("^Requests")).click()
                alice.get_by_label("View").select_option("pending")
                alice.get_by_role("button", name="Apply").click()
                expect(alice.locator(f"a[href='/requests/{mine}']").first).to_be_visible()
                expect(alice.locator(f"a[href='/requests/{others}']").first).to_be_visible()
                expect(alice.locator("#pending-count")).to_have_text(waiting)

                alice.goto(f"/requests/{mine}")
                alice.get_by_role("button", name="Cancel request").click()
                expect(alice.locator(".flash.ok")).to_have_text("The request is now cancelled")
                expect(alice.locator("#request-status")).to_have_text("cancelled")
                expect(alice.get_by_role("button", name="Cancel request")).to_have_count(0)
            finally:
                withdraw(api, "alice@contoso.com", mine)
    finally:
        admin.call("DELETE", "/groups/pamapprovers/members/alice@contoso.com")


def offered(page: Page) -> list[str]:
    page.goto("/requests/new")
    return page.locator("select[name=target] option").all_inner_texts()


def test_new_request_offers_only_targets_with_a_policy(web: Browsing, api: ApiFor) -> None:
    admin = api("admin@contoso.com")
    held_without_policy = "Exchange\\Suspend-MoveRequest"
    not_held = "Exchange\\New-DistributionGroup"  # of Distribution Groups, which alice lacks
    not_held_policy = manual_policy(api, not_held)
    try:
        alice = web.sign_in("alice@contoso.com")
        before = offered(alice)
        policies = admin.get("/policies")["items"]
        kinds = {
            "task": "Task",
            "role": "Role",
            "role_group": "RoleGroup",
            "data_access": "Data Access Request",
        }
        with_policy = {
            f"{p['target']} ({kinds[p['type']]}, {p['approval_type']})" for p in policies
        }
        assert before, "alice is offered nothing"
        assert set(before) <= with_policy
        assert "Exchange\\New-MoveRequest (Task, manual)" in before
        assert "Exchange\\Mailbox Search (Role, auto)" in before
        assert not any(held_without_policy in o for o in before)
        assert not any(not_held in o for o in before)
        # Alice installs applications, yet a data scope is asked by installing, not here.
        assert not any("Office365" in o for o in before)

        added = manual_policy(api, held_without_policy)
        label = f"{held_without_policy} (Task, manual)"
        try:
            after = offered(alice)
            assert set(after) - set(before) == {label}
            assert set(after) <= with_policy | {label}
            # Once asked for, it is not offered again while that request is open.
            with request_of(api, "alice@contoso.com", held_without_policy):
                assert label not in offered(alice)
            assert label in offered(alice)
        finally:
            admin.call("DELETE", f"/policies/{added}")
        assert not any(held_without_policy in o for o in offered(alice))
    finally:
        admin.call("DELETE", f"/policies/{not_held_policy}")


# -- forms without their CSRF token ----------------------------------------------------------------


def test_approve_without_the_forms_token_is_refused(web: Browsing, api: ApiFor) -> None:
    task = "Exchange\\Resume-MoveRequest"
    manual_policy(api, task)
    with request_of(api, "alice@contoso.com", task) as request_id:
        bob = web.sign_in("bob@contoso.com", f"/requests/{request_id}")
        expect(bob.locator("#request-status")).to_have_text("pending")
        review = bob.locator("form", has=bob.get_by_role("button", name="Approve"))
        review.locator("[name=csrf]").evaluate("input => input.remove()")
        with posting(bob, f"/requests/{request_id}/approve") as answer:
            bob.get_by_role("button", name="Approve").click()
        refused: Response = answer.value
        assert refused.status == 403
        expect(bob).to_have_title(FORM_REFUSED)
        expect(bob.get_by_role("heading", name="Form refused")).to_be_visible()

        bob.goto(f"/requests/{request_id}")
        expect(bob.locator("#request-status")).to_have_text("pending")
        expect(bob.locator("#reviews")).to_contain_text("No reviews yet.")
        expect(bob.get_by_role("button", name="Approve")).to_be_visible()
        approvals = api("admin@contoso.com").get(
            "/audit", params={"operation": "Approve-ElevatedAccessRequest", "target": request_id}
        )
        assert approvals["items"] == []

        # A token from another session (alice's) is no better.
        alice = web.sign_in("alice@contoso.com")
        token = alice.locator("form.who input[name=csrf]").input_value()
        review.locator("[name=csrf]").evaluate("(input, t) => { input.value = t; }", token)
        with posting(bob, f"/requests/{request_id}/approve") as answer:
            bob.get_by_role("button", name="Approve").click()
        assert answer.value.status == 403
        expect(bob).to_have_title(FORM_REFUSED)
        assert api("alice@contoso.com").get(f"/requests/{request_id}")["status"] == "pending"


def test_settings_without_the_forms_token_are_refused(web: Browsing, api: ApiFor) -> None:
    admin = web.sign_in("admin@contoso.com", "/settings")
    expect(admin.locator("#control-state")).to_have_text("on")
    admin.get_by_label("Require approvals for privileged access").uncheck()
    admin.evaluate("document.querySelector('main form [name=csrf]').remove()")
    with posting(admin, "/settings") as answer:
        admin.get_by_role("button", name="Save").click()
    assert answer.value.status == 403
    expect(admin.get_by_role("heading", name="Form refused")).to_be_visible()

    admin.goto("/settings")
    expect(admin.locator("#control-state")).to_have_text("on")
    expect(admin.get_by_label("Require approvals for privileged access")).to_be_checked()
    assert api("admin@contoso.com").get("/control")["enabled"] is True


def test_sign_in_without_the_forms_token_is_refused(web: Browsing) -> None:
    page = web.anonymous()
    page.goto("/login")
    page.evaluate("document.querySelector('form [name=csrf]').remove()")
    with posting(page, "/login") as answer:
        fill_sign_in(page, "alice@contoso.com", DEMO_PASSWORD)
    assert answer.value.status == 403
    expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    assert session_cookies(page) == []
    expect_sent_to_sign_in(page, "/my-access")


# -- signing in and out ----------------------------------------------------------------------------


def test_a_wrong_password_signs_nobody_in(web: Browsing) -> None:
    page = web.anonymous()
    page.goto("/login")
    with posting(page, "/login") as answer:
        fill_sign_in(page, "alice@contoso.com", "not-the-password")
    assert answer.value.status == 401
    expect(page.locator(".flash.error")).to_have_text("wrong user name or password")
    expect(page.get_by_label("User name (UPN)")).to_have_value("alice@contoso.com")
    expect(page.get_by_label("Password")).to_have_value("")
    assert session_cookies(page) == []
    expect_sent_to_sign_in(page, "/my-access")

    # The form it shows again works.
    fill_sign_in(page, "alice@contoso.com", DEMO_PASSWORD)
    expect(page).to_have_url(re.compile(r"/my-access$"))
    expect(page.get_by_role("heading", name="My access")).to_be_visible()


def test_sign_out_ends_the_session(web: Browsing) -> None:
    alice = web.sign_in("alice@contoso.com", fresh=True)
    expect(alice.get_by_text("<alice@contoso.com>")).to_be_visible()
    [cookie] = session_cookies(alice)
    assert cookie["httpOnly"] is True
    alice.get_by_role("button", name="Sign out").click()
    expect(alice).to_have_url(re.compile(r"/login$"))
    assert session_cookies(alice) == []
    alice.go_back()  # the page before is not kept: it asks the server again, which refuses
    expect(alice).to_have_url(re.compile(r"/login\?next=%2Fmy-access$"))
    expect(alice.get_by_role("heading", name="Sign in to jitpam")).to_be_visible()
    expect_sent_to_sign_in(alice, "/requests")

    # The old cookie is dead on the server too, not only forgotten by the browser.
    alice.context.add_cookies([cookie])  # type: ignore[list-item]
    expect_sent_to_sign_in(alice, "/my-access")


def test_sign_in_only_leads_to_this_server(web: Browsing) -> None:
    page = web.anonymous()
    page.goto("/login?next=//example.com/phish")
    fill_sign_in(page, "alice@contoso.com", DEMO_PASSWORD)
    expect(page).to_have_url(re.compile(r"/my-access$"))
    assert page.url.startswith(web.url)


def test_the_emailed_link_leads_through_sign_in_to_the_request(web: Browsing, api: ApiFor) -> None:
    task = "Exchange\\Remove-MoveRequest"
    manual_policy(api, task)
    with request_of(api, "alice@contoso.com", task) as request_id:
        bob = web.anonymous()
        bob.goto(f"/requests/{request_id}")
        expect(bob).to_have_url(re.compile(re.escape(f"/login?next=%2Frequests%2F{request_id}")))
        expect(bob.locator("#request-status")).to_have_count(0)
        expect(bob.get_by_text("alice@contoso.com")).to_have_count(0)
        fill_sign_in(bob, "bob@contoso.com", DEMO_PASSWORD)
        expect(bob).to_have_url(f"{web.url}/requests/{request_id}")
        expect(bob.get_by_role("heading", name=f"Request for {task}")).to_be_visible()
        expect(bob.locator("#request-status")).to_have_text("pending")
        expect(bob.locator("main")).to_contain_text("alice@contoso.com")
        expect(bob.get_by_role("button", name="Approve")).to_be_visible()
