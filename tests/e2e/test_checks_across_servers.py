"""Checks answered by real ``jitpam serve`` processes: fresh across servers, and never unaudited.

Each process answers ``POST /api/v1/check`` from an in-memory decision index kept exact by the
audit chain, so a change committed through one server is what a check on another server sees at
once (the product promises within a second; these tests measure it by polling). And every check
commits its ``Test-ElevatedAccess`` record before the answer leaves: a server killed right after
an allowed answer has already recorded it, and one killed amid concurrent writes has lost no
change it acknowledged.

(That each allowed and denied check is audited, with the authorization in the allowed record's
details, is asserted at the service level in tests/integration/test_audit_integrity.py and
test_jitpam_permissions.py; here the cross-server test only looks the allowed check up.)
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from jitpam.adapters.sql.db import make_engine
from jitpam.adapters.sql.models import AuditRow
from tests.conftest import PG_URL
from tests.e2e.conftest import Server, start_server, token_for
from tests.e2e.writes import Acks, Writer, chain_verified, make_write_org, server_url, unfound

MOVE = "Exchange\\New-MoveRequest"
ROLE = "Exchange\\Move Mailboxes"
ALICE, BOB, ADMIN = "alice@contoso.com", "bob@contoso.com", "admin@contoso.com"
CHECK = "Test-ElevatedAccess"
FRESH = 1.0  # seconds: how soon a change on one server shows in a check on another
POLL = 0.02  # polling interval, not a wait for an effect
WRITERS = 4

needs_postgresql = pytest.mark.skipif(
    not (PG_URL or "").startswith(("postgresql:", "postgresql+", "postgres:")),
    reason="two servers share one database only on PostgreSQL (SQLite is single-process by "
    "design): set JITPAM_TEST_DATABASE_URL to a postgresql:// URL to run this test",
)


def _serve(tmp: Path, name: str, db: str, *args: str) -> Server:
    """A server of its own (own data directory and signing key) on the shared database."""
    home = tmp / name
    home.mkdir(exist_ok=True)
    return start_server(home, "--db", db, *args)


@contextmanager
def _api(server: Server, upn: str, token: str | None = None) -> Iterator[httpx.Client]:
    token = token or token_for(server, upn)
    with httpx.Client(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as client:
        yield client


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _check(api: httpx.Client) -> dict[str, Any]:
    return dict(_ok(api.post("/check", json={"task": MOVE})))


def _within_fresh(
    api: httpx.Client, since: float, wanted: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Poll the check until it gives the wanted answer; fail if that answer is not received
    within FRESH seconds of ``since`` (the instant the change's own response came back)."""
    polls = 0
    while True:
        answer = _check(api)
        polls += 1
        elapsed = time.monotonic() - since
        if wanted(answer):
            print(f"{what}: after {elapsed * 1000:.0f} ms, {polls} check(s)")
            assert elapsed <= FRESH, f"{what}: only after {elapsed:.3f} s ({polls} checks)"
            return answer
        assert elapsed <= FRESH, f"{what}: still {answer} after {elapsed:.3f} s ({polls} checks)"
        time.sleep(POLL)


@needs_postgresql
@pytest.mark.parametrize("fresh_database", ["postgresql"], indirect=True)
def test_a_change_on_one_server_shows_in_checks_on_the_other_within_a_second(
    fresh_database: str, tmp_path: Path
) -> None:
    a = _serve(tmp_path, "a", fresh_database, "--demo")
    b: Server | None = None
    try:
        b = _serve(tmp_path, "b", fresh_database)
        with (
            _api(b, ALICE) as alice_b,
            _api(a, ALICE) as alice_a,
            _api(a, BOB) as bob_a,
            _api(a, ADMIN) as admin_a,
            _api(b, ADMIN) as admin_b,
        ):
            # B has decided for alice before the approval: its index holds her, without a grant.
            first = _check(alice_b)
            assert (first["allowed"], first["reason"]) == (False, "authorization_required")
            asked = _ok(
                alice_b.post(
                    "/requests", json={"type": "task", "target": MOVE, "reason": "two servers"}
                ),
                201,
            )
            assert asked["status"] == "pending"

            approved = _ok(bob_a.post(f"/requests/{asked['id']}/approve", json={"comment": "ok"}))
            since = time.monotonic()
            assert approved["status"] == "approved"
            grant = approved["authorization_id"]
            allowed = _within_fresh(alice_b, since, lambda d: d["allowed"], "approval on A")
            assert allowed == {
                "allowed": True,
                "reason": "authorized",
                "authorization_id": grant,
                "exempt": False,
            }

            revoked = _ok(bob_a.post(f"/authorizations/{grant}/revoke", json={"comment": "done"}))
            since = time.monotonic()
            assert revoked["revoked_by"] == BOB
            denied = _within_fresh(alice_b, since, lambda d: not d["allowed"], "revocation on A")
            assert (denied["reason"], denied["authorization_id"]) == (
                "authorization_required",
                None,
            )

            # The policy removed on A: on B the role alone allows again, with no grant named.
            policy = next(p for p in _ok(admin_a.get("/policies"))["items"] if p["target"] == MOVE)
            _ok(admin_a.delete(f"/policies/{policy['id']}"))
            since = time.monotonic()
            by_role = _within_fresh(alice_b, since, lambda d: d["allowed"], "policy removal on A")
            assert (by_role["reason"], by_role["authorization_id"]) == ("not_protected", None)

            # And the other way round: the role taken away on B, A denies.
            _ok(admin_b.post("/assignments/remove", json={"role": ROLE, "user": ALICE}))
            since = time.monotonic()
            gone = _within_fresh(alice_a, since, lambda d: not d["allowed"], "role removal on B")
            assert gone["reason"] == "task_not_held"

            # The allowed check B answered is in the log A reads, naming the authorization.
            records = _ok(
                admin_a.get(
                    "/audit",
                    params={
                        "operation": CHECK,
                        "actor": ALICE,
                        "outcome": "success",
                        "limit": 1000,
                    },
                )
            )["items"]
            (authorized,) = [
                r for r in records if r["target"] == MOVE and r["details"]["reason"] == "authorized"
            ]
            assert authorized["details"]["authorization_id"] == grant
            assert authorized["details"]["user"] == ALICE
    finally:
        a.stop()
        if b is not None:
            b.stop()


# --- killed right after an allowed answer ---------------------------------------------------------


def _allowed_records(db: str) -> int:
    """How many allowed checks of alice's on MOVE the database holds (read directly)."""
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            details = conn.execute(
                select(AuditRow.details).where(
                    AuditRow.operation == CHECK,
                    AuditRow.outcome == "success",
                    AuditRow.target == MOVE,
                )
            ).scalars()
            return sum(1 for d in details if json.loads(d)["user"] == ALICE)
    finally:
        engine.dispose()


def _grant_alice(server: Server) -> str:
    """Alice's approved request for MOVE; returns her token."""
    token = token_for(server, ALICE)
    with _api(server, ALICE, token) as alice, _api(server, BOB) as bob:
        asked = _ok(
            alice.post("/requests", json={"type": "task", "target": MOVE, "reason": "kill"}), 201
        )
        _ok(bob.post(f"/requests/{asked['id']}/approve", json={"comment": "ok"}))
        assert _check(alice)["allowed"]
    return token


class Hammer(threading.Thread):
    """Sends alice's check as fast as it can over one kept-alive connection and keeps every
    allowed answer it receives; with ``kill_at``, SIGKILLs the server the instant its
    ``kill_at``-th allowed answer arrives. Stops at the first connection error (the server is
    gone) or once ``stop`` is set.

    http.client, not httpx: it sends a small request in one write, where httpx's separate
    header and body writes meet delayed ACKs and cost ~40 ms a request."""

    def __init__(
        self, server: Server, token: str, stop: threading.Event, kill_at: int | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.server, self.token, self.stop, self.kill_at = server, token, stop, kill_at
        self.answers: list[dict[str, Any]] = []
        self.unexpected: list[str] = []

    def run(self) -> None:
        host, port = self.server.url.removeprefix("http://").split(":")
        body = json.dumps({"task": MOVE}).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            while not self.stop.is_set():
                try:
                    conn.request("POST", "/api/v1/check", body=body, headers=headers)
                    response = conn.getresponse()
                    text = response.read()
                except (OSError, http.client.HTTPException):
                    return
                answer = json.loads(text) if response.status == 200 else {}
                if not answer.get("allowed"):
                    self.unexpected.append(f"{response.status} {text!r}")
                    self.stop.set()
                    return
                self.answers.append(answer)
                if len(self.answers) == self.kill_at:
                    os.kill(self.server.proc.pid, signal.SIGKILL)
                    self.stop.set()
                    return
        finally:
            conn.close()


def _killed(server: Server) -> None:
    assert server.proc.wait(timeout=20) == -signal.SIGKILL, "the server died of something else"


def test_a_server_killed_right_after_an_allowed_answer_has_audited_it(
    fresh_database: str, tmp_path: Path
) -> None:
    token = ""
    for round_, n in enumerate((1, 25, 100)):
        started = time.monotonic()
        server = _serve(tmp_path, f"round{round_}", fresh_database, "--demo")
        up = time.monotonic() - started
        try:
            if round_ == 0:
                token = _grant_alice(server)
            else:
                # The previous server died mid-stream: its chain is whole, and this server,
                # starting cold, still allows.
                with _api(server, ADMIN) as admin:
                    assert _ok(admin.post("/audit/verify", json={}))["ok"] is True
            before = _allowed_records(fresh_database)
            stop = threading.Event()
            hammer = Hammer(server, token, stop, kill_at=n)
            started = time.monotonic()
            hammer.start()
            hammer.join(timeout=120)
            took = time.monotonic() - started
            print(f"round {round_}: server up in {up:.1f} s, {n} checks in {took:.2f} s")
            assert not hammer.is_alive()
            assert hammer.unexpected == []
            _killed(server)
        finally:
            server.stop()
        assert len(hammer.answers) == n
        assert all(a["reason"] == "authorized" and a["authorization_id"] for a in hammer.answers)
        # One client, one request at a time, nothing sent after the n-th answer: exactly n.
        assert _allowed_records(fresh_database) - before == n, f"round {round_}, n={n}"


def test_a_server_killed_amid_concurrent_checks_and_writes_lost_nothing_it_acknowledged(
    fresh_database: str, tmp_path: Path
) -> None:
    """Checks from eight threads and, in an organization of their own, requests, approvals and
    revocations from four more; the server is killed (SIGKILL) at the first thread's 20th
    allowed answer, with checks and writes in flight. Every answer given was recorded, every
    change acknowledged is in the database, and the writers' audit chain verifies."""
    threads = 8
    org = make_write_org(fresh_database, WRITERS)
    server = _serve(tmp_path, "concurrent", fresh_database, "--demo")
    acks = Acks()
    stop = threading.Event()
    writers = [
        Writer(server_url(server), org, i, acks, stop, give_up_when_gone=True)
        for i in range(WRITERS)
    ]
    try:
        token = _grant_alice(server)
        before = _allowed_records(fresh_database)
        for writer in writers:
            writer.start()
        end = time.monotonic() + 30
        while acks.count < 20:  # the writes are under way before the checks start
            assert time.monotonic() < end, f"the writes stalled: {dict(acks.answers)}"
            time.sleep(POLL)
        hammers = [
            Hammer(server, token, stop, kill_at=20 if i == 0 else None) for i in range(threads)
        ]
        started = time.monotonic()
        for h in hammers:
            h.start()
        for h in hammers:
            h.join(timeout=120)
        for writer in writers:
            writer.join(timeout=120)
        print(
            f"{sum(len(h.answers) for h in hammers)} answers in "
            f"{time.monotonic() - started:.2f} s; "
            f"{acks.count} changes acknowledged, requests by furthest stage: {acks.by_stage()}; "
            f"write answers: {dict(acks.answers)}"
        )
        assert not any(h.is_alive() for h in hammers + writers)
        assert [h.unexpected for h in hammers] == [[]] * threads
        _killed(server)
    finally:
        stop.set()
        server.stop()
    received = sum(len(h.answers) for h in hammers)
    assert len(hammers[0].answers) == 20
    recorded = _allowed_records(fresh_database) - before
    # Every answer received was recorded; besides, at most one check per other thread was in
    # flight when the server died, recorded perhaps, its answer lost.
    assert received <= recorded <= received + threads - 1, (received, recorded)
    # The database opened again (SQLite replays its write-ahead log, torn frames and all): every
    # acknowledged change is there, and the chain that records them is whole.
    assert acks.unexpected == []
    assert unfound(fresh_database, org.org_id, acks) == []
    assert chain_verified(fresh_database, org) is None
