"""Customer Lockbox in the web admin center: the Requests page's "Customer Lockbox" view, the
lockbox request page with its buttons, the filing form, and the customer's two settings.

The server runs in this process (uvicorn on a thread) on a database of its own, so the test
designates the operator through the services as whoever runs the server would; designating it
writes to every organization's chain. The workflow posts the forms over plain HTTP; one test
clicks Approve in a real browser.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import Engine

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.webhooks import OutboundUrls
from jitpam.bootstrap import Runtime, build_context
from jitpam.domain.check import Reason
from jitpam.services import auth, lockbox, organizations
from jitpam.services.context import ServiceContext
from jitpam.settings import Settings
from jitpam.web.app import create_server
from tests.conftest import database_of_its_own
from tests.integration.conftest import START
from tests.integration.test_committed_changes_answer_success import _serving
from tests.integration.world import Person, World
from tests.web.conftest import SESSION, Browsing

APPROVER_ROLE = "jitpam\\Customer Lockbox Access Approver"
REQUESTER_ROLE = "jitpam\\Lockbox Requester"
REASON = "Mailbox database repair for the customer's support case"


@dataclass
class Scene:
    url: str
    ctx: ServiceContext
    operator: World
    customer: World
    engineer: Person  # the operator's Lockbox Requester
    approver: Person  # the customer's Customer Lockbox Access Approver
    bystander: Person  # the customer's user with no lockbox role
    clients: list[httpx.Client] = field(default_factory=list)

    def secret(self, who: Person) -> str:
        return auth.create_token(self.ctx, caller=who.caller).secret

    def browser(self, who: Person) -> httpx.Client:
        client = httpx.Client(base_url=self.url)
        client.cookies.set(SESSION, self.secret(who))
        self.clients.append(client)
        return client

    def file(self, hours: int = 2) -> str:
        view = lockbox.file_request(
            self.ctx,
            caller=self.engineer.caller,
            customer=self.customer.org.name,
            service="Exchange",
            reason=REASON,
            case_reference="EXSR-7",
            duration_hours=hours,
        )
        return str(view.request.id)


@contextmanager
def lockbox_scene(database_url: str, tmp: Path) -> Iterator[Scene]:
    """An operator and a customer on a database of their own, the operator designated, and the
    web admin center served on it."""
    with database_of_its_own(database_url, tmp) as engine:
        settings = Settings(argon2_time_cost=1, argon2_memory_kib=8)
        ctx, own_engine = build_context(
            database_url=_url_of(engine),
            migrate=False,
            clock=FixedClock(START),
            settings=settings,
        )
        runtime = Runtime(
            settings=settings,
            ctx=ctx,
            engine=own_engine,
            oidc=None,
            urls=OutboundUrls(allow_private=False),
        )
        clock = ctx.clock
        assert isinstance(clock, FixedClock)
        operator, customer = World(ctx, clock), World(ctx, clock)
        lockbox.designate_operator(ctx, org_name=operator.org.name)
        try:
            with _serving(create_server(runtime)) as url:
                made = Scene(
                    url,
                    ctx,
                    operator,
                    customer,
                    engineer=operator.user("engineer", roles=(REQUESTER_ROLE,)),
                    approver=customer.user("approver", roles=(APPROVER_ROLE,)),
                    bystander=customer.user("bystander"),
                )
                try:
                    yield made
                finally:
                    for client in made.clients:
                        client.close()
        finally:
            own_engine.dispose()


def _url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def scene(database_url: str, tmp_path: Path) -> Iterator[Scene]:
    with lockbox_scene(database_url, tmp_path) as made:
        yield made


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def flash_of(client: httpx.Client, answer: httpx.Response) -> tuple[str, str]:
    """Where a form's answer went, and what the page there says happened."""
    assert answer.status_code == 303, answer.text
    where = answer.headers["location"]
    page = client.get(where)
    found = re.search(r'<p class="flash (?:ok|error)"[^>]*>([^<]*)</p>', page.text)
    assert found is not None, page.text
    return where, html.unescape(found.group(1))


def post(client: httpx.Client, path: str, page: str, **data: str) -> tuple[str, str]:
    """Post the form of ``page`` (its CSRF token) to ``path``; where it went and what it said."""
    token = csrf_of(client.get(page))
    return flash_of(client, client.post(path, data={"csrf": token, **data}))


def status_on(client: httpx.Client, request_id: str) -> str:
    page = client.get(f"/lockbox/{request_id}")
    assert page.status_code == 200, page.text
    found = re.search(r'id="lockbox-status">([a-z]+)<', page.text)
    assert found is not None, page.text
    return found.group(1)


def buttons_on(client: httpx.Client, request_id: str) -> set[str]:
    page = client.get(f"/lockbox/{request_id}").text
    return set(re.findall(r">(Approve|Deny|Cancel request|Revoke)</button>", page))


def test_lockbox_from_the_settings_to_revocation_through_the_forms(scene: Scene) -> None:
    customer_admin = scene.browser(scene.customer.admin)
    engineer = scene.browser(scene.engineer)
    approver = scene.browser(scene.approver)
    bystander = scene.browser(scene.bystander)

    # The customer requires approval and lowers the cap; the settings page says so.
    where, said = post(
        customer_admin,
        "/settings/lockbox",
        "/settings",
        lockbox_approval_required="on",
        lockbox_max_hours="3",
    )
    assert (where, said) == ("/settings", "Customer Lockbox: approval required, access at most 3 h")
    shown = customer_admin.get("/settings").text
    assert 'id="lockbox-approval">required<' in shown
    assert 'id="lockbox-max-hours">3 h<' in shown
    assert re.search(r'name="lockbox_approval_required" checked', shown)
    _, said = post(customer_admin, "/settings/lockbox", "/settings", lockbox_max_hours="5")
    assert "from 1 to 4 hours" in said  # refused by the use case, in its words
    assert 'id="lockbox-approval">required<' in customer_admin.get("/settings").text

    # Only the operator's Lockbox Requester is offered the filing form.
    assert 'href="/lockbox/new"' in engineer.get("/requests?status=customer_lockbox").text
    assert 'href="/lockbox/new"' not in approver.get("/requests?status=customer_lockbox").text
    assert approver.get("/lockbox/new").status_code == 403

    # The engineer files through the form; a duration over the customer's cap is refused.
    lockbox_form = {
        "customer": scene.customer.org.name,
        "service": "exchange",
        "reason": REASON,
        "case": "EXSR-1001",
    }
    where, said = post(engineer, "/lockbox", "/lockbox/new", **lockbox_form, hours="4")
    assert where == "/lockbox/new"
    assert "from 1 to 3 hours" in said
    where, said = post(engineer, "/lockbox", "/lockbox/new", **lockbox_form, hours="2")
    assert said == f"Lockbox request to {scene.customer.org.name} for Exchange: pending"
    first = where.removeprefix("/lockbox/")

    # The View list's "Customer Lockbox": the approver sees the request addressed to the
    # customer, the engineer their own; a customer's user without the role sees none.
    listed = approver.get("/requests?status=customer_lockbox").text
    assert '<option value="customer_lockbox" selected>Customer Lockbox</option>' in listed
    assert f'href="/lockbox/{first}"' in listed
    assert scene.engineer.upn in listed
    assert "EXSR-1001" in listed
    assert scene.operator.org.name in listed  # the other side: the operator
    assert scene.customer.org.name in engineer.get("/requests?status=customer_lockbox").text
    assert "No lockbox requests." in bystander.get("/requests?status=customer_lockbox").text
    assert bystander.get(f"/lockbox/{first}").status_code == 404
    assert f"/lockbox/{first}" not in approver.get("/requests?status=pending").text

    # Each sees the buttons the use cases would allow; a refused post says the service's words.
    assert buttons_on(approver, first) == {"Approve", "Deny"}
    assert buttons_on(engineer, first) == {"Cancel request"}
    where, said = post(engineer, f"/lockbox/{first}/approve", f"/lockbox/{first}")
    assert where == f"/lockbox/{first}"
    assert said == "only the customer's approvers approve or deny its requests"
    assert status_on(engineer, first) == "pending"

    # The approver approves with a comment; both may now revoke.
    where, said = post(
        approver, f"/lockbox/{first}/approve", f"/lockbox/{first}", comment="go ahead"
    )
    assert (where, said) == (f"/lockbox/{first}", "The lockbox request is now approved")
    page = approver.get(f"/lockbox/{first}").text
    assert f"by {scene.approver.upn}: go ahead" in page
    assert buttons_on(approver, first) == {"Revoke"}
    assert buttons_on(engineer, first) == {"Revoke"}
    assert "by customer: go ahead" in engineer.get(f"/lockbox/{first}").text
    assert check(scene) is Reason.LOCKBOX_APPROVED

    # The engineer cancels a second, pending request.
    second = scene.file()
    _, said = post(engineer, f"/lockbox/{second}/cancel", f"/lockbox/{second}")
    assert said == "The lockbox request is now cancelled"
    assert buttons_on(engineer, second) == set()
    assert buttons_on(approver, second) == set()

    # The customer revokes the first: the engineer is refused at once.
    _, said = post(customer_admin, f"/lockbox/{first}/revoke", f"/lockbox/{first}", comment="done")
    assert said == "The lockbox request is now revoked"
    assert status_on(engineer, first) == "revoked"
    assert buttons_on(customer_admin, first) == set()
    assert check(scene) is Reason.LOCKBOX_REQUEST_REQUIRED


def check(scene: Scene) -> Reason:
    return lockbox.check_customer_data_access(
        scene.ctx,
        caller=scene.engineer.caller,
        organization=scene.customer.org.name,
        service="Exchange",
    ).reason


# --- in a real browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("lockbox-web")
    with lockbox_scene(f"sqlite:///{tmp / 'unused.db'}", tmp) as made:
        yield made


@pytest.fixture(scope="module")
def server(browser_scene: Scene) -> Any:
    """The ``web`` fixture's server: this module's, in this process (Browsing needs its url)."""
    return SimpleNamespace(url=browser_scene.url)


def test_an_approver_approves_on_the_lockbox_page(browser_scene: Scene, web: Browsing) -> None:
    scene = browser_scene
    organizations_require_approval(scene)
    request_id = scene.file()
    page = web.anonymous()
    page.context.add_cookies(
        [{"name": SESSION, "value": scene.secret(scene.approver), "url": scene.url}]
    )
    page.goto("/requests?status=customer_lockbox")
    page.get_by_role("link", name="Exchange").click()
    expect(page).to_have_url(re.compile(f"/lockbox/{request_id}$"))
    expect(page.locator("#lockbox-status")).to_have_text("pending")
    page.get_by_label("Comment").fill("approved from the page")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_have_text("The lockbox request is now approved")
    expect(page.locator("#lockbox-status")).to_have_text("approved")
    expect(page.get_by_role("button", name="Revoke")).to_be_visible()


def organizations_require_approval(scene: Scene) -> None:
    organizations.set_organization_config(
        scene.ctx, caller=scene.customer.admin.caller, lockbox_approval_required=True
    )
