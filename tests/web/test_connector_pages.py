"""The connectors' pages in a real browser, on a server with one connector against real
PostgreSQL roles (tests/e2e/connector_server.py): the list and the detail page for those who
may see them, a dry run and "Reconcile now" through the page's form, and a grant whose access a
connector could not take away shown as "still present" on its request page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server
from tests.e2e.connector_server import CONNECTOR, SEARCH_ROLE, ConnectorScene, connector_server
from tests.web.conftest import Browsing

ALICE = "alice@contoso.com"
ADMIN = "admin@contoso.com"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectorScene]:
    with connector_server(tmp_path_factory.mktemp("web-connectors")) as made:
        yield made


@pytest.fixture(scope="module")
def server(scene: ConnectorScene) -> Server:
    """The web fixtures' server: the one with the connector."""
    return scene.server


def nav(page: Page) -> Any:
    return page.get_by_role("navigation", name="Main")


def test_an_administrator_reconciles_and_sees_access_still_present(
    web: Browsing, api: Any, scene: ConnectorScene
) -> None:
    login = scene.login(ALICE)
    alice = web.sign_in(ALICE)
    expect(nav(alice).get_by_role("link", name="Connectors")).to_have_count(0)
    denied = alice.goto("/connectors")
    assert denied is not None
    assert denied.status == 403
    expect(alice.get_by_role("heading", name="Not permitted")).to_be_visible()

    granted = api(ALICE).post(
        "/requests", {"type": "role", "target": SEARCH_ROLE, "reason": "web"}, expected=201
    )
    admin = web.sign_in(ADMIN)
    nav(admin).get_by_role("link", name="Connectors").click()
    expect(admin).to_have_url(re.compile("/connectors$"))
    row = admin.locator("#connectors tbody tr", has_text=CONNECTOR)
    expect(row).to_contain_text("ok")
    row.get_by_role("link", name=CONNECTOR).click()
    expect(admin).to_have_url(re.compile(f"/connectors/{CONNECTOR}$"))
    expect(admin.locator("#connector-health")).to_have_text("ok")
    expect(admin.locator("#bindings")).to_contain_text(scene.search)

    # A dry run shows the plan and changes nothing.
    admin.get_by_label("Dry run: show the plan, change nothing").check()
    admin.get_by_role("button", name="Reconcile now").click()
    expect(admin.get_by_role("heading", name="Dry run: nothing was changed")).to_be_visible()
    expect(admin.locator("#plan")).to_contain_text(login)
    assert scene.members() == []
    expect(admin.locator("#records")).to_contain_text("Nothing recorded.")

    admin.get_by_role("button", name="Reconcile now").click()
    expect(admin.locator(".flash.ok")).to_have_text("Pass done: 1 added, 0 removed")
    expect(admin.locator("#records")).to_contain_text(login)
    expect(admin.locator("#records")).to_contain_text("added by jitpam")
    assert scene.members() == [login]

    # The grant ends while the target cannot be reached: the access stays, and says so.
    scene.target_down(True)
    try:
        api(ADMIN).post(f"/authorizations/{granted['id']}/revoke", {"comment": "web"})
        admin.get_by_role("button", name="Reconcile now").click()
        expect(admin.locator(".flash.error")).to_contain_text("The pass failed")
        expect(admin.locator("#connector-health")).to_have_text("removal failing")
        alarm = admin.locator("#still-present")
        expect(alarm).to_contain_text(f"Still present in {CONNECTOR}: {login} in {scene.search}")
        expect(alarm).to_contain_text(f"(for {ALICE})")
        admin.goto("/connectors")
        expect(admin.locator("#still-present")).to_contain_text(login)

        alice.goto(f"/requests/{granted['id']}")
        expect(alice.locator("#request-status")).to_have_text("revoked")
        expect(alice.locator("#still-present")).to_contain_text(
            f"Still present in {CONNECTOR} ({scene.search})"
        )
    finally:
        scene.target_down(False)

    admin.goto(f"/connectors/{CONNECTOR}")
    admin.get_by_role("button", name="Reconcile now").click()
    expect(admin.locator(".flash.ok")).to_have_text("Pass done: 0 added, 1 removed")
    expect(admin.locator("#connector-health")).to_have_text("ok")
    expect(admin.locator("#still-present")).to_have_count(0)
    assert scene.members() == []
    alice.goto(f"/requests/{granted['id']}")
    expect(alice.locator("#still-present")).to_have_count(0)


def test_the_page_of_a_connector_that_does_not_exist_says_so(web: Browsing) -> None:
    admin = web.sign_in(ADMIN, "/connectors")
    answer = admin.goto("/connectors/nope")
    assert answer is not None
    assert answer.status == 404
    expect(admin.get_by_text("no connector 'nope' in this organization")).to_be_visible()
