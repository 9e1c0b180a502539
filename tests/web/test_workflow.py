"""The seeds' workflow, all by clicking, on a server of its own: the admin turns access control
off and on again in Settings and adds a manual policy in Access policies; the requester asks for
that task; an approver sees the pending count, approves, and later revokes; the requester sees the
grant come and go under My access; the admin finds every step in the audit log, whose chain is
intact."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.web.conftest import Browsing

# A task of Exchange\Move Mailboxes (which alice holds) that the demo has no policy for.
TASK = "Exchange\\Set-MoveRequest"
STEPS = (
    "Enable-ElevatedAccessControl",
    "New-ElevatedAccessApprovalPolicy",
    "New-ElevatedAccessRequest",
    "Approve-ElevatedAccessRequest",
    "Revoke-ElevatedAccessAuthorization",
)


def flash_says(page: Page, text: str) -> None:
    expect(page.locator(".flash.ok")).to_have_text(text)


def test_the_seeds_workflow_by_clicking(web: Browsing) -> None:
    admin = web.sign_in("admin@contoso.com")
    alice = web.sign_in("alice@contoso.com")

    # Settings: off, then on again with pamapprovers as the default approvers.
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(admin).to_have_title(re.compile("^Privileged access settings"))
    expect(admin.locator("#control-state")).to_have_text("on")
    admin.get_by_label("Require approvals for privileged access").uncheck()
    admin.get_by_role("button", name="Save").click()
    flash_says(admin, "Approvals for privileged access are no longer required")
    expect(admin.locator("#control-state")).to_have_text("off")
    expect(admin.get_by_label("Require approvals for privileged access")).not_to_be_checked()

    alice.get_by_role("link", name="New request").first.click()
    expect(alice.get_by_text("Access control is off in this organization")).to_be_visible()
    expect(alice.get_by_role("button", name="Send request")).to_have_count(0)

    admin.get_by_label("Require approvals for privileged access").check()
    admin.get_by_label("Default approvers group").select_option("pamapprovers")
    admin.get_by_role("button", name="Save").click()
    flash_says(admin, "Approvals for privileged access are required")
    expect(admin.locator("#control-state")).to_have_text("on")
    expect(admin.get_by_label("Default approvers group")).to_have_value("pamapprovers")

    # Access policies: a manual policy for a task alice holds.
    admin.get_by_role("link", name="Access policies").click()
    expect(admin.locator("#policies")).not_to_contain_text(TASK)
    form = admin.locator("#add-policy")
    form.get_by_label("Policy type").select_option(label="Task")
    form.get_by_label("Policy target").fill(TASK)
    form.get_by_label("Approval type").select_option(label="Manual")
    form.get_by_label("Approver group").select_option("pamapprovers")
    form.get_by_role("button", name="Add policy").click()
    expect(admin.locator(".flash.ok")).to_contain_text("Policy added")
    row = admin.locator("#policies tbody tr", has=admin.get_by_role("link", name=TASK))
    expect(row).to_have_count(1)
    expect(row.locator("td")).to_have_text(["Task", TASK, "Manual", "pamapprovers", "1", ""])
    policy_id = policy_link_id(row)

    # The requester asks for it.
    alice.reload()
    alice.get_by_label("Target").select_option(label=f"{TASK} (Task, manual)")
    alice.get_by_label("Reason").fill("INC-4711: a stuck mailbox move")
    alice.get_by_label("Duration (hours)").fill("2")
    alice.get_by_role("button", name="Send request").click()
    expect(alice).to_have_url(re.compile(r"/requests/[0-9a-f-]{36}$"))
    request_url = alice.url
    request_id = request_url.rsplit("/", 1)[1]
    flash_says(alice, f"Request for {TASK}: pending")
    expect(alice.locator("#request-status")).to_have_text("pending")
    expect(alice.locator("#signature")).to_contain_text("valid")
    expect(alice.get_by_role("button", name="Approve")).to_have_count(0)

    # An approver sees it waiting, opens it from the list, and approves.
    bob = web.sign_in("bob@contoso.com")
    expect(bob.locator("#pending-count")).to_have_text("1")
    bob.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile("^Requests")
    ).click()
    expect(bob.get_by_text("1 pending request waits for your review.")).to_be_visible()
    bob.get_by_label("View").select_option("pending")
    bob.get_by_role("button", name="Apply").click()
    listed = bob.locator("main table tbody tr", has_text=TASK)
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("alice@contoso.com")
    listed.get_by_role("link", name=TASK).click()
    expect(bob).to_have_url(request_url)
    review = bob.locator("form", has=bob.get_by_role("button", name="Approve"))
    review.get_by_label("Comment").fill("fine, go ahead")
    bob.get_by_role("button", name="Approve").click()
    flash_says(bob, "The request is now approved")
    expect(bob.locator("#request-status")).to_have_text("approved")
    expect(bob.locator("#reviews tbody tr").first).to_contain_text("approve")
    expect(bob.locator("#reviews tbody tr").first).to_contain_text("fine, go ahead")
    expect(bob.locator("#pending-count")).to_have_count(0)

    # The requester holds it now.
    alice.get_by_role("link", name="My access").click()
    grant = alice.locator("#active-authorizations tbody tr", has_text=TASK)
    expect(grant).to_have_count(1)
    expect(grant.locator("td").first).to_have_text("Task")
    expect(grant.locator("td").nth(3)).to_have_text(re.compile(r"^[12] h \d\d min$"))

    # The approver takes it back.
    revoking = bob.locator("form", has=bob.get_by_role("button", name="Revoke"))
    revoking.get_by_label("Comment").fill("done with it")
    bob.get_by_role("button", name="Revoke").click()
    flash_says(bob, "The request is now revoked")
    expect(bob.locator("#request-status")).to_have_text("revoked")
    expect(bob.get_by_role("button", name="Revoke")).to_have_count(0)

    alice.reload()
    expect(alice.locator("#active-authorizations tbody tr", has_text=TASK)).to_have_count(0)
    expect(alice.locator("#active-authorizations")).to_contain_text("No active authorizations")

    # Every step is in the audit log, each record about what was done here.
    admin.get_by_role("link", name="Audit log").click()
    disabled = audit_rows(admin, "Disable-ElevatedAccessControl")
    expect(disabled).to_have_count(1)
    turned_off = seq(disabled.first)
    enabled = audit_rows(admin, "Enable-ElevatedAccessControl")
    expect(enabled).to_have_count(2)  # the demo's own, and the one of this test
    assert seq(enabled.first) > turned_off  # turned on again after it was off
    mine = {
        "Enable-ElevatedAccessControl": ("admin", "pamapprovers"),
        "New-ElevatedAccessApprovalPolicy": ("admin", policy_id),
        "New-ElevatedAccessRequest": ("alice", request_id),
        "Approve-ElevatedAccessRequest": ("bob", request_id),
        "Revoke-ElevatedAccessAuthorization": ("bob", request_id),
    }
    assert tuple(mine) == STEPS
    for operation, (actor, target) in mine.items():
        row = audit_rows(admin, operation).first
        expect(row.locator("td").nth(2)).to_have_text(f"{actor}@contoso.com")
        expect(row.locator("td").nth(4)).to_have_text(target)
        expect(row.locator(".outcome")).to_have_text("success")
    admin.get_by_role("button", name="Check integrity").click()
    expect(admin.locator("#integrity")).to_have_text(re.compile(r"^\s*Integrity check passed"))
    expect(admin.locator("#integrity")).to_have_class(re.compile(r"\bok\b"))


def policy_link_id(row: Locator) -> str:
    href = row.get_by_role("link").get_attribute("href")
    assert href is not None
    assert re.fullmatch(r"/policies/[0-9a-f-]{36}", href), href
    return href.rsplit("/", 1)[1]


def seq(row: Locator) -> int:
    return int(row.locator("td").first.inner_text())


def audit_rows(admin: Page, operation: str) -> Locator:
    """Searches the audit log page for one operation; returns its rows, newest first."""
    admin.get_by_label("Operation").fill(operation)
    admin.get_by_role("button", name="Search").click()
    expect(admin).to_have_url(re.compile(f"operation={operation}"))
    rows = admin.locator("#audit tbody tr")
    expect(rows.first).to_have_attribute("data-operation", operation)
    expect(admin.locator(f"#audit tbody tr:not([data-operation='{operation}'])")).to_have_count(0)
    return rows
