"""Real-browser tests of the web admin center: Debian's Chromium driven by Playwright against a
real ``jitpam serve --demo`` process.

One browser for the whole session, one server per module, and a new browser context (its own
cookies) per signed-in user. Every test that browses leaves a screenshot of its last page in
``artifacts/screenshots/<test name>.png``, whether it passed or not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)

from tests.e2e.conftest import DEMO_PASSWORD, Server, start_server, token_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SESSION = "jitpam_session"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
# Generous: a loaded CI machine may be slow, and every wait ends as soon as its condition holds.
TIMEOUT_MS = 20_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail("no Chromium at /usr/bin/chromium: run make system-packages (or make test)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(tmp_path_factory.mktemp("web"), "--demo")
    yield started
    started.stop()


class Api:
    """The REST API as one demo user, for setting up and checking what the pages should show."""

    def __init__(self, server: Server, upn: str) -> None:
        self.base = f"{server.url}/api/v1"
        self.headers = {"Authorization": f"Bearer {token_for(server, upn)}"}

    def call(self, method: str, path: str, expected: int = 200, **kwargs: Any) -> Any:
        response = httpx.request(
            method, self.base + path, headers=self.headers, timeout=30, **kwargs
        )
        assert response.status_code == expected, response.text
        return response.json() if response.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: dict[str, Any] | None = None, expected: int = 200) -> Any:
        return self.call("POST", path, expected, json=body or {})


@pytest.fixture(scope="module")
def api(server: Server) -> Any:
    """``api("admin@contoso.com")``: an API client signed in as that demo user."""
    made: dict[str, Api] = {}

    def client(upn: str) -> Api:
        if upn not in made:
            made[upn] = Api(server, upn)
        return made[upn]

    return client


class Browsing:
    """The browser contexts of one test: one per user, each with its own cookies."""

    def __init__(self, browser: Browser, server: Server, sessions: dict[str, Any]) -> None:
        self.browser = browser
        self.url = server.url
        self.sessions = sessions
        self.contexts: list[BrowserContext] = []
        self.last: Page | None = None

    def anonymous(self) -> Page:
        """A page in a new context with no session: a browser nobody has signed in with."""
        context = self.browser.new_context(base_url=self.url)
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        self.last = page
        # The screenshot shows the page that went to a new address last (a navigation's request
        # comes before its answer, so by the time a test has seen the answer, this has run).
        page.on("request", lambda sent: self._navigated(page, sent))
        return page

    def _navigated(self, page: Page, sent: Request) -> None:
        if sent.is_navigation_request() and sent.frame == page.main_frame:
            self.last = page

    def sign_in(self, upn: str, path: str = "/my-access", *, fresh: bool = False) -> Page:
        """A new browser signed in as ``upn``, on ``path``.

        The first time in a module (or with ``fresh``) it opens ``path``, is sent to the sign-in
        form and signs in with the demo password; later browsers of the same user in the module
        start with the session cookie that sign-in gave, as a second tab of that user would."""
        page = self.anonymous()
        if upn in self.sessions and not fresh:
            page.context.add_cookies(self.sessions[upn])
            page.goto(path)
        else:
            page.goto(path)
            expect(page).to_have_url(re.compile(r"/login\?next="))
            fill_sign_in(page, upn, DEMO_PASSWORD)
        expect(page).to_have_url(re.compile(re.escape(path) + "$"))
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(page.locator("form.who")).to_contain_text(f"<{upn}>")
        if not fresh:
            self.sessions[upn] = [c for c in page.context.cookies() if c["name"] == SESSION]
        return page

    def screenshot(self, name: str) -> None:
        if self.last is not None and not self.last.is_closed():
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.last.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def fill_sign_in(page: Page, upn: str, password: str) -> None:
    page.get_by_label("User name (UPN)").fill(upn)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture(scope="module")
def sessions(server: Server) -> dict[str, Any]:
    """The session cookies of the users signed in so far on the module's server."""
    del server
    return {}


@pytest.fixture
def web(
    browser: Browser, server: Server, sessions: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[Browsing]:
    browsing = Browsing(browser, server, sessions)
    try:
        yield browsing
    finally:
        try:
            browsing.screenshot(re.sub(r"[^\w.-]+", "_", request.node.name))
        finally:
            browsing.close()
