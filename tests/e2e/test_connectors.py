"""Connectors through their entry points, against a real ``jitpam serve`` and real PostgreSQL
roles: the API (status, records, a pass asked for now, a dry run), the command line as an
administrator types it, the metrics, and a grant whose removal failed showing "still present in"
wherever the grant is shown, until a pass takes the access away."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Cli, Server, call, ok, problem, token_for
from tests.e2e.connector_server import ADMIN, CONNECTOR, SEARCH_ROLE, ConnectorScene
from tests.e2e.connector_server import connector_server as serve_with_connector

ALICE = "alice@contoso.com"
BOB = "bob@contoso.com"  # an approver of the demo's task policy
MOVE = "Exchange\\New-MoveRequest"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectorScene]:
    with serve_with_connector(tmp_path_factory.mktemp("connectors")) as made:
        yield made


def _as(server: Server, upn: str) -> Callable[..., httpx.Response]:
    token = token_for(server, upn)
    return lambda method, path, **kwargs: call(server, token, method, path, **kwargs)


def _metric(server: Server, name: str) -> float | None:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert "contoso" not in text  # organizations are named by id
    found = re.search(
        rf'^{name}\{{connector="{CONNECTOR}",organization="[0-9a-f-]{{36}}"\}} (\S+)$',
        text,
        re.M,
    )
    return float(found.group(1)) if found else None


def test_a_grant_reaches_the_target_and_a_failed_removal_shows_everywhere_until_repaired(
    scene: ConnectorScene, tmp_path: Path
) -> None:
    server = scene.server
    admin, alice = _as(server, ADMIN), _as(server, ALICE)
    login = scene.login(ALICE)

    (listed,) = ok(admin("GET", "/connectors"))["items"]
    assert (listed["name"], listed["kind"], listed["health"]) == (CONNECTOR, "postgresql", "ok")
    assert listed["bindings"] == [{"kind": "role", "name": SEARCH_ROLE, "target": scene.search}]
    assert "PG_DSN" not in str(listed)
    assert "pw-" not in str(listed)
    assert problem(alice("GET", "/connectors"), 403)["code"] == "not_permitted"

    granted = ok(
        alice("POST", "/requests", json={"type": "role", "target": SEARCH_ROLE, "reason": "x"}),
        201,
    )
    assert granted["status"] == "approved"
    planned = ok(admin("POST", f"/connectors/{CONNECTOR}/reconcile", json={"dry_run": True}))
    assert planned["plan"]["adds"] == [{"target": scene.search, "member": login}]
    assert planned["outcomes"] == []
    assert scene.members() == []
    made = ok(admin("POST", f"/connectors/{CONNECTOR}/reconcile", json={"dry_run": False}))
    assert made["outcomes"] == [
        {"change": "add", "target": scene.search, "member": login, "done": True, "error": None}
    ]
    assert scene.members() == [login]
    shown = ok(admin("GET", f"/connectors/{CONNECTOR}"))
    assert [(r["member"], r["origin"], r["user"]) for r in shown["records"]] == [
        (login, "added", ALICE)
    ]

    # A task grant of hers, which no connector makes real.
    task = ok(alice("POST", "/requests", json={"type": "task", "target": MOVE, "reason": "x"}), 201)
    ok(_as(server, BOB)("POST", f"/requests/{task['id']}/approve", json={"comment": "ok"}))

    # The target cannot be reached when the grant ends: the access stays, and says so.
    scene.target_down(True)
    try:
        ok(admin("POST", f"/authorizations/{granted['id']}/revoke", json={"comment": "done"}))
        ok(admin("POST", f"/authorizations/{task['id']}/revoke", json={"comment": "done"}))
        failed = ok(admin("POST", f"/connectors/{CONNECTOR}/reconcile", json={"dry_run": False}))
        assert failed["plan"] is None
        assert failed["error"]
        status = ok(admin("GET", f"/connectors/{CONNECTOR}"))
        assert (status["health"], status["failures"]) == ("removal failing", 1)
        assert [(f["member"], f["user"]) for f in status["still_present"]] == [(login, ALICE)]
        where = f"{CONNECTOR} ({scene.search})"
        assert ok(alice("GET", f"/requests/{granted['id']}"))["still_present_in"] == [where]
        grants = {g["request_id"]: g for g in ok(alice("GET", "/authorizations"))["items"]}
        assert grants[granted["id"]]["still_present_in"] == [where]
        assert grants[task["id"]]["still_present_in"] == []  # a task's grant: nothing left
        assert _metric(server, "jitpam_connector_still_present") == 1
        assert _metric(server, "jitpam_connector_failures") == 1
        assert scene.members() == [login]

        cli = Cli(server, tmp_path / "config", token_for(server, ADMIN))
        listing = cli.run("connector", "list")
        assert listing.returncode == 0, listing.stderr
        assert listing.stdout.splitlines()[0].split()[:2] == ["HEALTH", "NAME"]
        assert "removal failing" in listing.stdout
        assert re.search(
            rf"^! still present in {CONNECTOR}: {login} in {scene.search} \(for {ALICE}\) "
            r"since \d{4}-",
            listing.stdout,
            re.M,
        )
        alices = token_for(server, ALICE)
        request_shown, grants_listed = cli.run_all(
            ["request", "show", granted["id"]], ["authorization", "list"], token=alices
        )
        assert f"! still present in {where}" in request_shown.stdout
        assert (
            f"! still present in {where}: {ALICE}'s grant {grants[granted['id']]['id']} "
            f"({SEARCH_ROLE})"
        ) in grants_listed.stdout.splitlines()
        again = cli.run("connector", "reconcile", CONNECTOR)
        assert again.returncode == 1  # the pass failed
        assert "! the pass failed:" in again.stdout
    finally:
        scene.target_down(False)

    # Reachable again: a pass asked for now takes the access away, and every view clears.
    repaired = cli.json("connector", "reconcile", CONNECTOR)
    assert [(o["change"], o["member"], o["done"]) for o in repaired["outcomes"]] == [
        ("remove", login, True)
    ]
    assert scene.members() == []
    status = cli.json("connector", "status", CONNECTOR)
    assert (status["health"], status["still_present"], status["records"]) == ("ok", [], [])
    assert ok(alice("GET", f"/requests/{granted['id']}"))["still_present_in"] == []
    assert _metric(server, "jitpam_connector_still_present") == 0
    seconds = _metric(server, "jitpam_connector_seconds_since_success")
    assert seconds is not None
    assert 0 <= seconds < 60


def test_the_command_line_shows_connectors_as_an_administrator_reads_them(
    scene: ConnectorScene, tmp_path: Path
) -> None:
    cli = Cli(scene.server, tmp_path / "config", token_for(scene.server, ADMIN))
    listing, status, dry, missing = cli.run_all(
        ["connector", "list"],
        ["connector", "status"],
        ["connector", "reconcile", CONNECTOR, "--dry-run"],
        ["connector", "status", "nope"],
    )
    assert listing.returncode == 0, listing.stderr
    row = listing.stdout.splitlines()[1].split()
    assert row[:3] == ["ok", CONNECTOR, "postgresql"]
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"{CONNECTOR} (postgresql): ok\n")
    assert f"role {SEARCH_ROLE} -> {scene.search}" in status.stdout
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == "nothing to change"
    assert missing.returncode == 1
    assert missing.stderr.strip() == ("jitpam: no connector 'nope' in this organization (404)")
    denied = cli.run("connector", "list", token=token_for(scene.server, ALICE))
    assert denied.returncode == 4
    assert len(denied.stderr.strip().splitlines()) == 1
    helped = cli.run("connector", "reconcile", "--help")
    assert "--dry-run" in helped.stdout
    assert "Show what a pass would change" in helped.stdout


def test_a_server_without_connectors_says_so(
    demo_server_on: Callable[[str], Server],
) -> None:
    server = demo_server_on("sqlite")
    admin = _as(server, ADMIN)
    doc: dict[str, Any] = problem(admin("GET", "/connectors"), 404)
    assert "connectors_dir" in doc["detail"]
    problem(admin("POST", f"/connectors/{CONNECTOR}/reconcile", json={"dry_run": True}), 404)
    assert "jitpam_connector_" not in httpx.get(f"{server.url}/metrics", timeout=10).text
