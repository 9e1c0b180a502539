"""Checks on a server whose database connections were killed: fail closed, then recover alone.

There is no LISTEN/NOTIFY change feed to lose: each check, in its own transaction, locks the
organization's audit-chain head and applies the change records committed since (by any process)
before it decides. What a server can lose is its database connections. Here PostgreSQL kills them
(``pg_terminate_backend``) while another server revokes a grant, and the server that lost them
must never allow the revoked grant: each check either fails closed (a problem+json error, or a
denial) or answers correctly, and within a few seconds it answers correctly again by itself, no
restart. The same the other way round (an approval shows), and with the connections killed amid a
burst of concurrent checks, where every allowed answer given must also have its audit record.
Killed amid concurrent writes (requests, approvals, revocations through both servers), every
answer is a success or a clean 503, and every change acknowledged is in the database.

The servers' connections cannot be told apart in ``pg_stat_activity`` (they set no
``application_name``), so every backend of the database but the test's own is killed: both
servers lose theirs, and the revocation on A is retried until it goes through.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.conftest import PG_URL
from tests.e2e.conftest import Server, token_for
from tests.e2e.test_checks_across_servers import (
    ADMIN,
    ALICE,
    BOB,
    MOVE,
    _allowed_records,
    _api,
    _ok,
    _serve,
    needs_postgresql,
)
from tests.e2e.writes import Acks, Writer, chain_verified, make_write_org, server_url, unfound

pytestmark = needs_postgresql

RECOVER = 5.0  # seconds: how soon after the change a server that lost its connections is right
POLL = 0.02  # polling interval, not a wait for an effect
BURST_THREADS = 6
PROBLEM = "application/problem+json"


# --- two servers on a database of their own --------------------------------------------------


@dataclass
class Pair:
    a: Server
    b: Server
    db: str  # the servers' database URL
    admin: Engine  # the test's own connections to it (never pooled, so never killed mid-use)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    assert PG_URL is not None
    name = f"jitpam_lost_{uuid.uuid4().hex[:10]}"
    base = make_url(PG_URL).set(drivername="postgresql+psycopg")
    maker = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with maker.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(base.set(database=name), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    tmp = tmp_path_factory.mktemp("lost")
    servers: list[Server] = []
    try:
        servers.append(_serve(tmp, "a", db, "--demo"))
        servers.append(_serve(tmp, "b", db))
        yield Pair(servers[0], servers[1], db, admin)
    finally:
        for server in servers:
            server.stop()
        admin.dispose()
        with maker.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        maker.dispose()


def _kill_connections(admin: Engine) -> Counter[str]:
    """Terminate every backend of the database but this one and wait until they are gone;
    returns how many were in each state (active, idle, idle in transaction)."""
    with admin.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pid, coalesce(state, '?') FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            )
        ).all()
        pids = [pid for pid, _ in rows]
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        end = time.monotonic() + 10
        while conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": pids}
        ).scalar_one():
            assert time.monotonic() < end, "killed backends did not exit within 10 s"
            time.sleep(POLL)
    states = Counter(state for _, state in rows)
    assert pids, "the servers held no database connection to kill"
    return states


# --- answers ----------------------------------------------------------------------------------


@dataclass
class Answer:
    sent: float
    received: float
    status: int  # 0: no HTTP answer at all (the connection failed)
    content_type: str
    text: str

    @property
    def body(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    @property
    def allowed(self) -> bool:
        return self.status == 200 and self.body.get("allowed") is True

    def label(self) -> str:
        body = self.body if isinstance(self.body, dict) else {}
        if self.status == 200:
            return f"200 allowed={body.get('allowed')} {body.get('reason')}"
        if self.status == 0:
            return f"no answer ({self.text})"
        return f"{self.status} {body.get('code', 'not problem+json')}"


def _fail_closed(answer: Answer, previous: Answer | None = None) -> None:
    """An answer is either a decision or a problem+json error that says nothing of the inside:
    never a server error, never a dropped connection (``previous`` names what came before, for
    the message)."""
    after = previous.label() if previous is not None else "nothing"
    assert answer.status != 0, f"no answer (after {after}): {answer.text}"
    assert answer.status != 500, f"a server error (after {after}): {answer.text}"
    if answer.status == 200:
        assert isinstance(answer.body, dict), answer.text
        assert isinstance(answer.body.get("allowed"), bool), answer.text
        return
    assert answer.content_type.startswith(PROBLEM), f"{answer.status} {answer.text!r}"
    assert isinstance(answer.body, dict), answer.text
    assert answer.body.get("status") == answer.status, answer.text
    assert answer.body.get("code") in {"database_unavailable", "audit_unavailable"}, answer.text
    assert "Traceback" not in answer.text, answer.text


def _all_fail_closed(answers: list[Answer]) -> None:
    """``answers``: one connection's, in order."""
    for previous, answer in zip([None, *answers], answers, strict=False):
        _fail_closed(answer, previous)


def _check(api: httpx.Client) -> Answer:
    sent = time.monotonic()
    try:
        r = api.post("/check", json={"task": MOVE})
    except httpx.TransportError as exc:
        return Answer(sent, time.monotonic(), 0, "", repr(exc))
    return Answer(sent, time.monotonic(), r.status_code, r.headers.get("content-type", ""), r.text)


def _poll_until(
    api: httpx.Client, since: float, wanted: Callable[[Answer], bool], what: str, *, safe: bool
) -> list[Answer]:
    """Check until the wanted answer comes, at most RECOVER seconds after ``since``; every
    answer must fail closed, and with ``safe`` none may allow. Returns every answer."""
    answers: list[Answer] = []
    while True:
        answer = _check(api)
        _fail_closed(answer, answers[-1] if answers else None)
        answers.append(answer)
        if safe:
            assert not answer.allowed, f"{what}: allowed after the revocation: {answer.text}"
        elapsed = answer.received - since
        if wanted(answer):
            print(f"{what}: after {elapsed * 1000:.0f} ms; answers: {_tally(answers)}")
            assert elapsed <= RECOVER, f"{what}: only after {elapsed:.3f} s"
            return answers
        assert elapsed <= RECOVER, f"{what}: still {answer.label()} after {elapsed:.3f} s"
        time.sleep(POLL)


def _tally(answers: list[Answer]) -> dict[str, int]:
    return dict(Counter(a.label() for a in answers))


def _errors(answers: list[Answer]) -> dict[str, str]:
    """One body of each kind of error answer (or dropped connection), for the log."""
    return {a.label(): a.text for a in answers if a.status != 200}


def _retried(send: Callable[[], httpx.Response], done_before: str, what: str) -> tuple[Any, int]:
    """Send a change until it goes through (a server that just lost its connection may fail
    it once). ``done_before`` is the error code saying an earlier, failed-looking try did
    commit. Returns the answer (None in that case) and the number of tries."""
    end = time.monotonic() + RECOVER
    failures: list[str] = []
    while True:
        try:
            r = send()
        except httpx.TransportError as exc:  # the server dropped the connection: try again
            failures.append(repr(exc))
            assert time.monotonic() < end, f"{what}: still failing after {RECOVER} s: {failures}"
            continue
        if r.status_code == 200:
            body = r.json()
            if failures:
                print(f"{what}: {len(failures) + 1} tries, failed first with {failures}")
            return body, len(failures) + 1
        answer = Answer(0, 0, r.status_code, r.headers.get("content-type", ""), r.text)
        _fail_closed(answer)
        if failures and answer.body["code"] == done_before:
            print(f"{what}: {len(failures) + 1} tries, done by an earlier one; {failures}")
            return None, len(failures) + 1
        failures.append(answer.label())
        assert time.monotonic() < end, f"{what}: still failing after {RECOVER} s: {failures}"
        time.sleep(POLL)


def _fresh_grant(alice: httpx.Client, bob: httpx.Client) -> str:
    """End whatever grant alice holds for MOVE, then give her a new one; its id."""
    for held in _ok(alice.get("/authorizations", params={"active": True}))["items"]:
        if held["target"] == MOVE:
            _ok(bob.post(f"/authorizations/{held['id']}/revoke", json={"comment": "reset"}))
    asked = _ok(alice.post("/requests", json={"type": "task", "target": MOVE, "reason": "x"}), 201)
    return str(_ok(bob.post(f"/requests/{asked['id']}/approve", json={}))["authorization_id"])


def _verify_chain(server: Server) -> None:
    with _api(server, ADMIN) as admin:
        assert _ok(admin.post("/audit/verify", json={}))["ok"] is True


# --- one server's view after its connections were killed -------------------------------------


def test_a_server_that_lost_its_connections_never_allows_a_grant_revoked_meanwhile(
    pair: Pair,
) -> None:
    a, b = pair.a, pair.b
    with _api(a, ALICE) as alice_a, _api(a, BOB) as bob_a, _api(b, ALICE) as alice_b:
        grant = _fresh_grant(alice_a, bob_a)
        # B allows: its decision index holds alice and her grant.
        warm = _poll_until(alice_b, time.monotonic(), lambda x: x.allowed, "grant on B", safe=False)
        assert warm[-1].body["authorization_id"] == grant

        killed = _kill_connections(pair.admin)
        print(f"killed backends by state: {dict(killed)}")
        revoked, tries = _retried(
            lambda: bob_a.post(f"/authorizations/{grant}/revoke", json={"comment": "lost"}),
            "authorization_not_active",
            "revocation on A",
        )
        since = time.monotonic()
        print(f"revocation on A: {tries} try(ies)")
        assert revoked is None or revoked["revoked_by"] == BOB
        denied = _poll_until(
            alice_b,
            since,
            lambda x: x.status == 200 and not x.allowed,
            "B after the kill and the revocation",
            safe=True,
        )
        assert (denied[-1].body["reason"], denied[-1].body["authorization_id"]) == (
            "authorization_required",
            None,
        )

        # And the other way round: connections killed again, an approval on A; B allows again.
        asked = _ok(
            alice_a.post("/requests", json={"type": "task", "target": MOVE, "reason": "back"}),
            201,
        )
        killed = _kill_connections(pair.admin)
        print(f"killed backends by state: {dict(killed)}")
        approved, tries = _retried(
            lambda: bob_a.post(f"/requests/{asked['id']}/approve", json={}),
            "request_not_pending",
            "approval on A",
        )
        since = time.monotonic()
        print(f"approval on A: {tries} try(ies)")
        allowed = _poll_until(
            alice_b, since, lambda x: x.allowed, "B after the kill and the approval", safe=False
        )
        if approved is not None:
            assert allowed[-1].body["authorization_id"] == approved["authorization_id"]
    _verify_chain(a)


# --- connections killed amid a burst of checks ------------------------------------------------


class Burst(threading.Thread):
    """Sends alice's check to one server as fast as it can over one kept-alive connection and
    keeps every answer, until ``stop`` is set. http.client: one write a request (see Hammer in
    test_checks_across_servers.py)."""

    def __init__(self, server: Server, token: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.server, self.token, self.stop = server, token, stop
        self.answers: list[Answer] = []

    def run(self) -> None:
        host, port = self.server.url.removeprefix("http://").split(":")
        body = json.dumps({"task": MOVE}).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    conn.request("POST", "/api/v1/check", body=body, headers=headers)
                    response = conn.getresponse()
                    text_ = response.read().decode(errors="replace")
                except (OSError, http.client.HTTPException) as exc:
                    self.answers.append(Answer(sent, time.monotonic(), 0, "", repr(exc)))
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=60)
                    continue
                kind = response.getheader("content-type", "")
                self.answers.append(Answer(sent, time.monotonic(), response.status, kind, text_))
        finally:
            conn.close()


def _answers(bursts: list[Burst]) -> list[Answer]:
    return [a for burst in bursts for a in list(burst.answers)]


def _wait_for_answers(bursts: list[Burst], more: int) -> None:
    """Until ``more`` further answers have come in (the burst is running, checks in flight)."""
    target = len(_answers(bursts)) + more
    end = time.monotonic() + 30
    while len(_answers(bursts)) < target:
        assert time.monotonic() < end, f"the burst stalled at {len(_answers(bursts))} answers"
        time.sleep(POLL)


def test_connections_killed_amid_a_burst_of_checks_give_no_unaudited_or_stale_allow(
    pair: Pair,
) -> None:
    a, b = pair.a, pair.b
    token = token_for(b, ALICE)
    with _api(a, ALICE) as alice_a, _api(a, BOB) as bob_a, _api(b, ALICE, token) as alice_b:
        grant = _fresh_grant(alice_a, bob_a)
        _poll_until(alice_b, time.monotonic(), lambda x: x.allowed, "grant on B", safe=False)
        before = _allowed_records(pair.db)

        stop = threading.Event()
        bursts = [Burst(b, token, stop) for _ in range(BURST_THREADS)]
        started = time.monotonic()
        try:
            for burst in bursts:
                burst.start()
            kills: list[dict[str, int]] = []
            for _ in range(2):  # killed twice before the revocation, mid-burst
                _wait_for_answers(bursts, 30)
                kills.append(dict(_kill_connections(pair.admin)))
            _wait_for_answers(bursts, 10)
            revoked, tries = _retried(
                lambda: bob_a.post(f"/authorizations/{grant}/revoke", json={"comment": "burst"}),
                "authorization_not_active",
                "revocation on A",
            )
            since = time.monotonic()
            assert revoked is None or revoked["revoked_by"] == BOB
            kills.append(dict(_kill_connections(pair.admin)))  # and once right after it
            # Each thread keeps going until it has a denial for a check sent after the change.
            end = since + RECOVER
            while not all(
                any(x.sent > since and x.status == 200 and not x.allowed for x in list(t.answers))
                for t in bursts
            ):
                assert time.monotonic() < end, f"B still not denying {RECOVER} s after revoking"
                time.sleep(POLL)
        finally:
            stop.set()
            for burst in bursts:
                burst.join(timeout=60)
        assert not any(burst.is_alive() for burst in bursts)
        answers = _answers(bursts)
        after_change = [x for x in answers if x.sent > since]
        before_change = [x for x in answers if x.sent <= since]
        print(
            f"{len(answers)} answers in {time.monotonic() - started:.1f} s; "
            f"killed backends by state, per kill: {kills}; revocation: {tries} try(ies)\n"
            f"  sent before the revocation's answer: {_tally(before_change)}\n"
            f"  sent after it: {_tally(after_change)}\n"
            f"  error bodies: {_errors(answers)}"
        )
        for burst in bursts:
            _all_fail_closed(burst.answers)
        assert b.proc.poll() is None, "B died"
        stale = [x.text for x in after_change if x.allowed]
        assert stale == [], f"{len(stale)} allowed answers after the revocation"
        assert all(
            x.body["reason"] == "authorization_required" for x in after_change if x.status == 200
        ), _tally(after_change)
        # B still answers, and rightly, on a connection of its own.
        last = _check(alice_b)
        assert (last.status, last.body["allowed"]) == (200, False), last.text

    allowed = sum(1 for x in answers if x.allowed)
    recorded = _allowed_records(pair.db) - before
    print(f"allowed answers received: {allowed}; allowed checks recorded: {recorded}")
    # Every allowed answer given has its record; a check whose commit went through as its
    # connection died may have a record and no answer.
    assert recorded >= allowed, (allowed, recorded)
    _verify_chain(a)


# --- one caller's input fails no other caller's check -----------------------------------------


def test_a_check_the_database_could_not_store_fails_only_its_own_caller(pair: Pair) -> None:
    """The tester's reproduction: 2 threads send a NUL in ``user`` (PostgreSQL refuses NUL in
    text) while 6 threads of another user check; every one of theirs is answered, and each
    poisoned call alone gets a 422 naming the field."""
    a = pair.a
    poison = {"user": "alice\u0000@contoso.com", "task": MOVE}
    answers: dict[str, Counter[int]] = {"poison": Counter(), "plain": Counter()}
    details: set[str] = set()
    lock = threading.Lock()
    calls = 40

    def send(kind: str, token: str, body: dict[str, str]) -> None:
        with httpx.Client(
            base_url=a.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as api:
            for _ in range(calls):
                answer = api.post("/check", json=body)
                with lock:
                    answers[kind][answer.status_code] += 1
                    if answer.status_code != 200:
                        details.add(answer.json()["detail"])

    bob, alice = token_for(a, BOB), token_for(a, ALICE)
    threads = [threading.Thread(target=send, args=("poison", bob, poison)) for _ in range(2)]
    threads += [
        threading.Thread(target=send, args=("plain", alice, {"task": MOVE})) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert answers["plain"] == Counter({200: 6 * calls}), (answers, details)
    assert answers["poison"] == Counter({422: 2 * calls}), (answers, details)
    assert details == {"user: contains a NUL character, which jitpam does not accept"}
    assert a.proc.poll() is None


# --- connections killed amid concurrent writes ------------------------------------------------

WRITERS = 4


def _wait_for_acks(acks: Acks, more: int) -> None:
    """Until ``more`` further changes have been acknowledged (the writers are running)."""
    target = acks.count + more
    end = time.monotonic() + 30
    while acks.count < target:
        assert time.monotonic() < end, f"the writes stalled at {acks.count}: {dict(acks.answers)}"
        time.sleep(POLL)


def test_connections_killed_amid_concurrent_writes_give_no_server_error_and_lose_nothing(
    pair: Pair,
) -> None:
    """Requests, approvals and revocations through both servers while their connections are
    killed three times: every answer is a success or a clean 503 (then the writer tries again),
    writes resume by themselves, and every change acknowledged is in the database."""
    org = make_write_org(pair.db, WRITERS)
    acks, stop = Acks(), threading.Event()
    writers = [
        Writer(server_url(pair.a if i % 2 else pair.b), org, i, acks, stop, pause=POLL)
        for i in range(WRITERS)
    ]
    kills: list[dict[str, int]] = []
    started = time.monotonic()
    try:
        for writer in writers:
            writer.start()
        for _ in range(3):
            _wait_for_acks(acks, 15)
            kills.append(dict(_kill_connections(pair.admin)))
        _wait_for_acks(acks, 15)  # and the writes go on after the last kill
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=60)
    print(
        f"{acks.count} changes acknowledged in {time.monotonic() - started:.1f} s; killed "
        f"backends by state, per kill: {kills}; answers: {dict(acks.answers)}; requests by "
        f"furthest stage: {acks.by_stage()}"
    )
    assert not any(writer.is_alive() for writer in writers)
    assert acks.unexpected == []
    failed = {k: n for k, n in acks.answers.items() if k == "no answer" or k.startswith("5")}
    assert set(failed) <= {"503 database_unavailable", "503 audit_unavailable"}, failed
    assert pair.a.proc.poll() is None, "A died"
    assert pair.b.proc.poll() is None, "B died"
    assert chain_verified(pair.db, org) is None
    assert unfound(pair.db, org.org_id, acks) == []
