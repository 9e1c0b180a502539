"""The command line's safety: where the saved token goes, what reaches a URL path, which option
values are refused before anything is sent, listings, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import FAST, JITPAM, Cli, token_for

MOVE = "Exchange\\New-MoveRequest"
SOME_ID = "00000000-0000-0000-0000-000000000000"

# What the listener answers: (status, content type, body) for a method and a path with query.
Reply = tuple[int, str, str]
EMPTY_PAGE: Reply = (200, "application/json", json.dumps({"items": [], "next_cursor": None}))


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Listener:
    """A tiny HTTP server that records every request it gets and answers with ``reply``."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    reply: Callable[[Seen], Reply] = lambda _: EMPTY_PAGE


@pytest.fixture
def listener() -> Iterator[Listener]:
    state = Listener()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            parts = urlsplit(self.path)
            seen = Seen(
                self.command,
                parts.path,
                parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
            )
            state.seen.append(seen)
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            status, kind, body = state.reply(seen)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 (http.server)

        def log_message(self, *_: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def aimed_at(cli: Cli, url: str) -> Cli:
    """The same user's command line (same saved credentials) with JITPAM_URL set to ``url``."""
    return Cli(replace(cli.server, url=url), cli.config_dir)


def one_line(stderr: str) -> bool:
    return stderr.count("\n") == 1 and stderr.startswith("jitpam: ") and "Traceback" not in stderr


# ---------------------------------------------------------------- 1. where the token goes
def test_the_saved_token_is_never_sent_to_another_server(cli: Cli, listener: Listener) -> None:
    cli.login("alice@contoso.com")
    by_env = aimed_at(cli, listener.url).run("request", "list")
    assert by_env.returncode == 0, by_env.stderr
    by_option = cli.run("request", "list", "--server", listener.url + "/")
    assert by_option.returncode == 0, by_option.stderr
    assert len(listener.seen) == 2
    assert all("authorization" not in s.headers for s in listener.seen)


def test_the_saved_token_goes_to_its_own_server_however_it_is_named(cli: Cli) -> None:
    cli.login("alice@contoso.com")
    with_slash = aimed_at(cli, cli.server.url + "/").run("request", "list")
    assert with_slash.returncode == 0, with_slash.stderr
    option = cli.run("request", "list", "--server", cli.server.url + "//")
    assert option.returncode == 0, option.stderr
    env = {**os.environ, **FAST, "JITPAM_CONFIG_DIR": str(cli.config_dir)}
    env.pop("JITPAM_URL", None)
    env.pop("JITPAM_TOKEN", None)
    saved = subprocess.run(
        [JITPAM, "request", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert saved.returncode == 0, saved.stderr
    assert isinstance(json.loads(saved.stdout), list)


def test_jitpam_token_is_sent_to_whichever_server_is_targeted(cli: Cli, listener: Listener) -> None:
    cli.login("alice@contoso.com")
    done = aimed_at(cli, listener.url).run("request", "list", token="jpt_from-the-environment")
    assert done.returncode == 0, done.stderr
    assert [s.headers.get("authorization") for s in listener.seen] == [
        "Bearer jpt_from-the-environment"
    ]


# ---------------------------------------------------------------- 2. URL paths
def test_an_id_that_is_not_a_uuid_is_refused_before_anything_is_sent(
    cli: Cli, listener: Listener
) -> None:
    cli.sign_in("admin@contoso.com")
    traversal = cli.run("request", "cancel", "../control/disable?")
    assert traversal.returncode == 2
    assert one_line(traversal.stderr)
    assert "UUID" in traversal.stderr
    assert cli.json("control", "show")["enabled"] is True

    elsewhere = aimed_at(cli, listener.url)
    bad = "../control/disable?"
    commands = (
        ["request", "show", bad],
        ["request", "approve", bad, "--comment", "x"],
        ["request", "deny", bad, "--comment", "x"],
        ["request", "verify", bad],
        ["policy", "show", bad],
        ["policy", "set", bad, "--require-ticket"],
        ["policy", "remove", bad],
        ["token", "revoke", bad],
        ["authorization", "revoke", bad, "--comment", "x"],
    )
    for args, done in zip(
        commands, elsewhere.run_all(*commands, token="jpt_anything"), strict=True
    ):
        assert done.returncode == 2, (args, done.stderr)
        assert one_line(done.stderr), (args, done.stderr)
    assert listener.seen == []


def test_names_stay_one_path_segment(cli: Cli, listener: Listener) -> None:
    cli.sign_in("admin@contoso.com")
    (a_b, up, query, fragment, dots, empty, *shown) = cli.run_all(
        ["group", "show", "a/b"],
        ["group", "show", "../users"],
        ["user", "show", "alice@contoso.com?x=1"],
        ["user", "show", "alice@contoso.com#x"],
        ["user", "show", ".."],
        ["group", "show", ""],
        ["role", "show", "Exchange\\Move Mailboxes", "--json"],
        ["role-group", "show", "Exchange\\Organization Management", "--json"],
        ["group", "show", "pamapprovers", "--json"],
    )
    assert a_b.returncode == 1
    assert up.returncode == 1  # not the list of users
    assert query.returncode == 1
    assert fragment.returncode == 1
    assert dots.returncode == 1
    assert empty.returncode == 2

    for done in shown:  # as Cli.json reads them
        assert done.returncode == 0, done.stderr
    role, group, pamapprovers = (json.loads(done.stdout) for done in shown)
    assert role["name"] == "Exchange\\Move Mailboxes"
    assert role["tasks"]
    assert group["type"] == "role_group"
    assert pamapprovers["name"] == "pamapprovers"

    elsewhere = aimed_at(cli, listener.url)
    elsewhere.run("group", "add-member", "x/../y?", "a#b@contoso.com", token="jpt_t")
    elsewhere.run("user", "show", "..", token="jpt_t")
    elsewhere.run("role", "show", "Exchange\\Move Mailboxes", token="jpt_t")
    assert [(s.method, s.path) for s in listener.seen] == [
        ("PUT", "/api/v1/groups/x%2F..%2Fy%3F/members/a%23b%40contoso.com"),
        ("GET", "/api/v1/users/%2E%2E"),
        ("GET", "/api/v1/roles/Exchange%5CMove%20Mailboxes"),
    ]


# ---------------------------------------------------------------- 3. option values
@pytest.mark.parametrize(
    "args",
    [
        ["user", "create", "x@contoso.com", "--kind", "robot"],
        ["policy", "list", "--type", "group"],
        ["policy", "list", "--approval-type", "sometimes"],
        ["policy", "new", "--task", MOVE, "--approval-type", "sometimes"],
        ["policy", "set", SOME_ID, "--approval-type", "sometimes"],
        ["request", "list", "--status", "open"],
        ["audit", "export", "--format", "xml"],
        ["audit", "export", "--format", "csv", "--json"],
        ["audit", "search", "--outcome", "failure"],
        ["audit", "search", "--since", "yesterday"],
        ["audit", "search", "--until", "2026-13-01T00:00:00"],
        ["token", "create", "--expires-in-days", "0"],
        ["token", "create", "--expires-in-days", "367"],
        ["request", "new", "--task", MOVE, "--reason", "r", "--duration-hours", "0"],
        ["request", "new", "--task", MOVE, "--reason", "r", "--duration-hours", "-4"],
        ["policy", "new", "--task", MOVE, "--approval-type", "auto", "--approvals-required", "0"],
        ["policy", "new", "--task", MOVE, "--approval-type", "auto", "--approvals-required", "11"],
        ["policy", "set", SOME_ID, "--approvals-required", "11"],
        ["policy", "set", SOME_ID, "--max-duration-hours", "0"],
        ["user", "list", "--limit", "0"],
        ["audit", "search", "--limit", "0"],
    ],
)
def test_bad_option_values_are_usage_errors(cli: Cli, listener: Listener, args: list[str]) -> None:
    done = aimed_at(cli, listener.url).run(*args, token="jpt_anything")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert listener.seen == []


def test_option_values_are_normalized_before_they_are_sent(cli: Cli, listener: Listener) -> None:
    elsewhere = aimed_at(cli, listener.url)
    done = elsewhere.run(
        "audit",
        "search",
        "--since",
        "2026-03-01T10:00:00+02:00",
        "--until",
        "2026-03-02",
        "--outcome",
        "Refused",
        token="jpt_t",
    )
    assert done.returncode == 0, done.stderr
    assert elsewhere.run("policy", "list", "--type", "role-group", token="jpt_t").returncode == 0
    assert elsewhere.run("request", "list", "--status", "PENDING", token="jpt_t").returncode == 0
    audit, policies, requests = listener.seen
    assert audit.query["since"] == ["2026-03-01T08:00:00Z"]
    assert audit.query["until"] == ["2026-03-02T00:00:00Z"]
    assert audit.query["outcome"] == ["refused"]
    assert policies.query["type"] == ["role_group"]
    assert requests.query["status"] == ["pending"]


def test_valid_option_values_work_against_the_server(cli: Cli) -> None:
    cli.sign_in("admin@contoso.com")
    answers = cli.run_all(
        ["policy", "list", "--type", "role-group", "--json"],
        ["policy", "list", "--approval-type", "Manual", "--json"],
        ["request", "list", "--status", "pending", "--json"],
        ["audit", "search", "--since", "2000-01-01", "--outcome", "success", "--json"],
        ["audit", "search", "--until", "2000-01-01T00:00:00+01:00", "--json"],
    )
    for done in answers:  # as Cli.json reads them
        assert done.returncode == 0, done.stderr
    groups, manual, pending, recent, before_2000 = (json.loads(d.stdout) for d in answers)
    assert all(p["type"] == "role_group" for p in groups)
    assert manual
    assert isinstance(pending, list)
    assert recent
    assert all(r["outcome"] == "success" for r in recent)
    assert before_2000 == []


# ---------------------------------------------------------------- 4. export and listings
def test_audit_export_prints_one_json_list(cli: Cli) -> None:
    cli.sign_in("admin@contoso.com")
    lines = cli.run("audit", "export").stdout.splitlines()
    listed = cli.json("audit", "export")
    assert isinstance(listed, list)
    assert {r["seq"] for r in map(json.loads, lines)} <= {r["seq"] for r in listed}
    assert {"seq", "at", "actor", "operation", "outcome", "hash"} <= set(listed[0])


def test_audit_search_follows_the_cursors_to_the_end(cli: Cli, listener: Listener) -> None:
    pages = {
        None: ([1, 2, 3], "c2"),
        "c2": ([4, 5], "c3"),
        "c3": ([6], None),
    }

    def reply(seen: Seen) -> Reply:
        items, after = pages[seen.query.get("cursor", [None])[0]]
        body = {"items": [{"seq": i, "operation": "Op"} for i in items], "next_cursor": after}
        return 200, "application/json", json.dumps(body)

    listener.reply = reply
    elsewhere = aimed_at(cli, listener.url)
    everything = elsewhere.run("audit", "search", "--json", token="jpt_t")
    assert everything.returncode == 0, everything.stderr
    assert [r["seq"] for r in json.loads(everything.stdout)] == [1, 2, 3, 4, 5, 6]
    listener.seen.clear()
    four = elsewhere.run("audit", "search", "--limit", "4", "--json", token="jpt_t")
    assert [r["seq"] for r in json.loads(four.stdout)] == [1, 2, 3, 4]
    assert len(listener.seen) == 2  # stopped early: the third page was never asked for


def test_audit_search_has_no_default_limit(cli: Cli) -> None:
    token = token_for(cli.server, "alice@contoso.com")
    with httpx.Client(
        base_url=cli.server.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}
    ) as api:
        for _ in range(105):
            api.post("/check", json={"task": MOVE})
    cli.sign_in("admin@contoso.com")
    assert len(cli.json("audit", "search")) > 105
    assert len(cli.json("audit", "search", "--limit", "7")) == 7


@pytest.mark.parametrize(
    "listing",
    [
        ["policy", "list"],
        ["authorization", "list", "--user", "*"],
        ["token", "list", "--all"],
        ["role", "list"],
        ["role-group", "list"],
        ["user", "list"],
        ["group", "list"],
    ],
)
def test_listings_take_a_limit(cli: Cli, listing: list[str]) -> None:
    cli.sign_in("admin@contoso.com")
    if listing[0] == "authorization":  # two grants (a second run may find them already made)
        cli.sign_in("alice@contoso.com")
        cli.run("request", "new", "--role", "Exchange\\Mailbox Search", "--reason", "a")
        asked = cli.run("request", "new", "--task", MOVE, "--reason", "b", "--json")
        if asked.returncode == 0:
            cli.sign_in("bob@contoso.com")
            cli.json("request", "approve", json.loads(asked.stdout)["id"], "--comment", "ok")
        cli.sign_in("admin@contoso.com")
    if listing[0] == "token":
        cli.json("token", "create", "--name", "one")
        cli.json("token", "create", "--name", "two")
    everything = cli.json(*listing)
    assert len(everything) >= 2
    assert cli.json(*listing, "--limit", "1") == everything[:1]


# ---------------------------------------------------------------- 5. one-line errors
def test_a_multi_line_error_detail_is_one_line(cli: Cli, listener: Listener) -> None:
    listener.reply = lambda _: (
        400,
        "application/json",
        json.dumps({"code": "bad", "detail": "first line\nsecond line"}),
    )
    done = aimed_at(cli, listener.url).run("group", "show", "x", token="jpt_t")
    assert done.returncode == 1
    assert done.stderr == "jitpam: first line (400)\n"


def test_an_unexpected_error_is_one_line_and_exits_1(cli: Cli, listener: Listener) -> None:
    listener.reply = lambda _: (200, "text/plain", "not\na\nlisting")
    done = aimed_at(cli, listener.url).run("user", "list", token="jpt_t")
    assert done.returncode == 1
    assert one_line(done.stderr), done.stderr
    assert "unexpected error" in done.stderr


def test_a_database_error_from_a_server_command_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, **FAST, "JITPAM_DATA_DIR": str(tmp_path)}
    missing = tmp_path / uuid.uuid4().hex / "no" / "such" / "dir" / "x.db"
    done = subprocess.run(
        [JITPAM, "db", "upgrade", "--db", f"sqlite:///{missing}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert one_line(done.stderr), done.stderr
