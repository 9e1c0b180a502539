"""What schemathesis does not generate, in every string field and page cursor, on each database:
text no database can store (a NUL, a lone UTF-16 surrogate), unknown body fields, bodies over the
size limit. Each is refused as invalid input naming the field (the pages: their 422 page), never a
server error.

A lone surrogate can only arrive inside JSON (``"\\ud800"``): in a URL or a form its bytes are not
UTF-8 and decode to U+FFFD, which is storable; there the case is the NUL.
"""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.e2e.conftest import DEMO_PASSWORD, Server, token_for

MOVE = "Exchange\\New-MoveRequest"
ROLE = "Exchange\\Move Mailboxes"
NUL, SURROGATE = "\u0000", "\ud800"
V = object()  # where a case's value goes
ADMIN, ALICE = "admin@contoso.com", "alice@contoso.com"
LIMIT = 4 * 1024 * 1024


def cursor_of(value: str) -> str:
    """A one-part page cursor holding ``value``, as base64 JSON (``["\\ud800"]`` ->
    ``WyJcdWQ4MDAiXQ==``)."""
    return base64.urlsafe_b64encode(json.dumps([value]).encode()).decode()


def put(template: Any, value: str) -> Any:
    if template is V:
        return value
    if isinstance(template, dict):
        return {k: put(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [put(v, value) for v in template]
    return template


@dataclass(frozen=True)
class Where:
    """One place a string comes in: ``body`` or ``query`` holds ``V`` where the value goes;
    ``named`` is what the refusal's detail must name."""

    method: str
    path: str
    named: str
    body: Any = None
    query: Any = None
    cursor: bool = False  # V is wrapped in a page cursor
    caller: str | None = ADMIN

    def values(self, *, json_body: bool) -> list[str]:
        return [NUL, SURROGATE] if (json_body and self.body is not None) or self.cursor else [NUL]


API = [
    Where("POST", "/auth/login", "user", body={"user": V, "password": "x"}, caller=None),
    Where("POST", "/check", "user", body={"user": V, "task": MOVE}, caller=ALICE),
    Where("POST", "/check", "task", body={"task": V}, caller=ALICE),
    Where(
        "POST",
        "/check/batch",
        "checks.1.user",
        body={"checks": [{"task": MOVE}, {"user": V, "task": MOVE}]},
        caller=ALICE,
    ),
    Where("POST", "/check/batch", "checks.0.task", body={"checks": [{"task": V}]}, caller=ALICE),
    Where("GET", "/requests", "target", query={"target": V}),
    Where("GET", "/requests", "requester", query={"requester": V}),
    Where("GET", "/audit", "actor", query={"actor": V}),
    Where("GET", "/audit", "operation", query={"operation": V}),
    Where("GET", "/audit", "target", query={"target": V}),
    Where("GET", "/audit/export", "actor", query={"actor": V}),
    Where("GET", "/audit/export", "operation", query={"operation": V}),
    Where("PATCH", "/control/config", "ticket_pattern", body={"ticket_pattern": V}),
    Where("POST", "/control/enable", "admin_group", body={"admin_group": V}),
    *(
        Where("GET", path, "cursor", query={"cursor": V}, cursor=True)
        for path in (
            "/users",
            "/groups",
            "/catalog/tasks",
            "/roles",
            "/policies",
            "/requests",
            "/authorizations",
            "/audit",
            "/outbox",
        )
    ),
    Where("GET", f"/roles/{ROLE}", "cursor", query={"members_cursor": V}, cursor=True),
]

PAGES = [
    Where("GET", "/requests", "q", query={"q": V}),
    Where("GET", "/requests", "cursor", query={"cursor": V}, cursor=True),
    Where("GET", "/policies", "q", query={"q": V}),
    Where("GET", "/policies", "cursor", query={"cursor": V}, cursor=True),
    Where("GET", "/policies/targets", "q", query={"q": V}),
    Where("GET", "/audit", "actor", query={"actor": V}),
    Where("GET", "/audit", "operation", query={"operation": V}),
    Where("GET", "/audit", "cursor", query={"cursor": V}, cursor=True),
    *(
        Where("GET", "/directory", "cursor", query={key: V}, cursor=True)
        for key in ("groups_cursor", "roles_cursor", "role_groups_cursor")
    ),
    Where("GET", "/directory/role", "name", query={"name": V}),
    *(
        Where("GET", "/directory/role", "cursor", query={"name": ROLE, key: V}, cursor=True)
        for key in ("tasks_cursor", "members_cursor")
    ),
    Where("POST", "/login", "user", body={"user": V, "password": "x"}, caller=None),
    Where("POST", "/requests", "reason", body={"target": f"task|{MOVE}", "reason": V}),
    Where("POST", "/settings", "admin_group", body={"enabled": "on", "admin_group": V}),
]


def label(where: Where) -> str:
    key = next((k for k, v in (where.query or {}).items() if v is V), where.named)
    return f"{where.method} {where.path} {key}"


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, demo_server_on: Callable[[str], Server]) -> Server:
    return demo_server_on(str(request.param))


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


# Sign-ins, kept for the session: a hundred cases need not sign in a hundred times (each is a
# password hash and an audit record).
_tokens: dict[tuple[str, str], str] = {}
_sessions: dict[str, httpx.Cookies] = {}


def token(server: Server, upn: str) -> str:
    if (server.url, upn) not in _tokens:
        _tokens[server.url, upn] = token_for(server, upn)
    return _tokens[server.url, upn]


@pytest.fixture
def browser(server: Server) -> Iterator[httpx.Client]:
    """The admin, signed in to the pages."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        if server.url not in _sessions:
            form = client.get("/login")
            answer = client.post(
                "/login",
                data={"user": ADMIN, "password": DEMO_PASSWORD, "csrf": csrf_of(form), "next": "/"},
            )
            assert answer.status_code == 303, answer.text
            _sessions[server.url] = httpx.Cookies(client.cookies)
        client.cookies = httpx.Cookies(_sessions[server.url])
        yield client


@pytest.mark.parametrize("where", API, ids=label)
def test_the_api_refuses_what_cannot_be_stored_naming_the_field(
    server: Server, where: Where
) -> None:
    headers = {"Authorization": f"Bearer {token(server, where.caller)}"} if where.caller else {}
    with httpx.Client(base_url=server.url + "/api/v1", headers=headers, timeout=30) as api:
        for value in where.values(json_body=True):
            sent = cursor_of(value) if where.cursor else value
            query = put(where.query, sent) if where.query is not None else None
            # json.dumps writes a lone surrogate as the escape "\ud800", as any JSON client would.
            content = json.dumps(put(where.body, sent)) if where.body is not None else None
            answer = api.request(
                where.method,
                where.path,
                params=query,
                content=content,
                headers={"content-type": "application/json"} if content else {},
            )
            assert answer.status_code == 422, f"{value!r}: {answer.status_code} {answer.text}"
            assert answer.headers["content-type"] == "application/problem+json"
            assert where.named in answer.json()["detail"], answer.json()


@pytest.mark.parametrize("where", PAGES, ids=label)
def test_the_pages_refuse_what_cannot_be_stored_naming_the_field(
    server: Server, browser: httpx.Client, where: Where
) -> None:
    if where.caller is None:
        browser.cookies.clear()
    for value in where.values(json_body=False):
        sent = cursor_of(value) if where.cursor else value
        if where.method == "GET":
            answer = browser.get(where.path, params=put(where.query, sent))
        else:
            form = browser.get("/login" if where.caller is None else "/my-access")
            answer = browser.post(where.path, data={**put(where.body, sent), "csrf": csrf_of(form)})
        assert answer.status_code == 422, f"{value!r}: {answer.status_code} {answer.text}"
        assert answer.headers["content-type"].startswith("text/html")
        assert re.search(rf"{re.escape(where.named)}\b", answer.text), answer.text


def test_an_unknown_body_field_is_refused_not_ignored(server: Server) -> None:
    """The tester's PATCH: it answered 200 and changed nothing."""
    with httpx.Client(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {token(server, ADMIN)}"},
    ) as api:
        before = api.get("/control").json()
        answer = api.patch("/control/config", json={"system_accounts": ["x@contoso.com"]})
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"].startswith("system_accounts: ")
        assert api.get("/control").json() == before


def test_every_body_the_document_describes_refuses_unknown_fields(server: Server) -> None:
    document = httpx.get(server.url + "/openapi.json").json()
    schemas = document["components"]["schemas"]
    bodies = {
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for ops in document["paths"].values()
        for op in ops.values()
        if "requestBody" in op
    }
    assert len(bodies) > 15
    objects = {n for n, s in schemas.items() if s.get("type") == "object" and n != "Problem"}
    assert bodies <= objects
    assert {n for n in objects if schemas[n].get("additionalProperties") is not False} == set()


def form_or_json(path: str) -> str:
    """The content type the route reads its body as (a page's form parser reads only a form)."""
    return "application/json" if path.startswith("/api/") else "application/x-www-form-urlencoded"


def piece_for(path: str) -> bytes:
    """64 KB of a body the route reads: JSON's white space, or a form field (a page's form
    parser refuses, with a 400 of its own, a field over 1 MB or more than 1,000 fields)."""
    if path.startswith("/api/"):
        return b" " * 65536
    return b"f=" + b"x" * 65533 + b"&"


def chunks(path: str, total: int, sent: list[int]) -> Iterator[bytes]:
    """``total`` bytes of a body for ``path``, 64 KB at a time, counting what was taken."""
    piece = piece_for(path)
    while sent[0] < total:
        sent[0] += len(piece)
        yield piece


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/login"])
def test_a_chunked_body_over_the_limit_is_refused_before_it_ends(server: Server, path: str) -> None:
    sent = [0]
    total = 64 * LIMIT  # far more than the server may read: it must answer long before the end
    try:
        answer = httpx.post(
            server.url + path,
            content=chunks(path, total, sent),
            headers={"content-type": form_or_json(path)},
            timeout=30,
        )
    except httpx.TransportError:
        # The server answered and closed while the client was still sending: see what it said.
        answer = None
    assert sent[0] < total
    if answer is not None:
        assert answer.status_code == 413
    assert raw_post_refused(server, path, chunked=True)


def raw_post_refused(server: Server, path: str, *, chunked: bool) -> bool:
    """Send a body's headers (a chunked one: a little over the limit, never its last chunk;
    otherwise a declared length over the limit and no body at all) and read the answer."""
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {LIMIT + 1}"
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {form_or_json(path)}\r\n"
            f"{framing}\r\n\r\n".encode()
        )
        if chunked:
            piece = piece_for(path)
            for _ in range(LIMIT // len(piece) + 1):
                conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        head = conn.recv(65536).decode("latin-1")
    status = head.split(" ", 2)[1]
    assert status == "413", head
    # The API's answer is a problem; a page's is its error page, unless refused before any
    # route (a declared length), where there is no page yet to answer with.
    kind = "application/problem+json" if path.startswith("/api/") or not chunked else "text/html"
    assert f"content-type: {kind}" in head.lower(), head
    assert "connection: close" in head.lower(), head
    return True


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/login"])
def test_a_declared_length_over_the_limit_is_refused_before_any_body(
    server: Server, path: str
) -> None:
    assert raw_post_refused(server, path, chunked=False)
