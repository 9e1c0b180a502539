"""A full disk under SQLite: the server refuses writes cleanly, answers reads, and takes writes
again once there is room, with nothing half-written.

The disk fills through ``RLIMIT_FSIZE``, set on the running server with ``prlimit``: from then on
no file of that process may be written past ROOM bytes beyond the end its write-ahead log had
reached, so the next transaction's pages are written in part, as on a disk that fills in the
middle of a write. (CI runs as root, so file modes cannot make the database read-only, and a
size-limited mount needs privileges a container may not have; a resource limit needs neither.)
The interpreter ignores ``SIGXFSZ`` from start-up, so a write past the limit fails with ``EFBIG``
instead of killing the server; the test checks that it lives on. Room returns when the limit is
raised again, on the same process: no restart.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import Server, start_server
from tests.e2e.writes import (
    MOVE,
    Acks,
    Connection,
    Stage,
    chain_verified,
    make_write_org,
    requests_of,
    server_url,
    unfound,
)

ROOM = 6000  # bytes: one page of the write-ahead log fits, the next does not


def _set_file_size_limit(server: Server, limit: int) -> None:
    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_a_full_disk_refuses_writes_cleanly_and_writes_resume_once_there_is_room(
    tmp_path: Path,
) -> None:
    db_file = tmp_path / "jitpam.db"
    db = f"sqlite:///{db_file}"
    org = make_write_org(db, 2)
    server = start_server(tmp_path, "--db", db)
    asker, other, approver = (
        Connection(server_url(server), token)
        for token in (*org.requester_tokens, org.approver_token)
    )
    new_request = {"type": "task", "target": MOVE, "reason": "before the disk filled"}
    try:
        asked = asker.call("POST", "/requests", new_request)
        assert asked.status == 201, asked.text
        request_id = asked.body["id"]

        wal = db_file.with_name(db_file.name + "-wal")
        limit = wal.stat().st_size + ROOM
        _set_file_size_limit(server, limit)
        started = time.monotonic()
        refused = {
            "new request": other.call("POST", "/requests", new_request),
            "approval": approver.call("POST", f"/requests/{request_id}/approve", {}),
            "check": asker.call("POST", "/check", {"task": MOVE}),
        }
        took = time.monotonic() - started
        print(f"refused in {took * 1000:.0f} ms: { ({k: v.label() for k, v in refused.items()}) }")
        for what, answer in refused.items():
            assert answer.unavailable, f"{what}: {answer.status} {answer.text}"
        assert wal.stat().st_size == limit, "the refused writes did not reach the full disk"
        assert server.proc.poll() is None, "the server died of the full disk"

        # Reads go on: the request as it was, the caller, the health probes.
        shown = asker.call("GET", f"/requests/{request_id}")
        assert (shown.status, shown.body["status"]) == (200, "pending"), shown.text
        assert asker.call("GET", "/me").status == 200
        for probe in ("/healthz", "/readyz"):
            assert httpx.get(server.url + probe, timeout=10).status_code == 200, probe

        _set_file_size_limit(server, resource.RLIM_INFINITY)
        approved = approver.call("POST", f"/requests/{request_id}/approve", {})
        assert approved.status == 200, approved.text
        asked_again = other.call("POST", "/requests", new_request)
        assert asked_again.status == 201, asked_again.text
        check = asker.call("POST", "/check", {"task": MOVE})
        assert (check.status, check.body["allowed"]) == (200, True), check.text
    finally:
        for connection in (asker, other, approver):
            connection.close()
        server.stop()

    # Nothing the refused writes began is left: the chain is whole, and it and the requests hold
    # exactly the changes acknowledged.
    assert chain_verified(db, org) is None
    again_id = asked_again.body["id"]
    acks = Acks()
    acks.acknowledged(request_id, Stage.APPROVED)
    acks.acknowledged(again_id, Stage.REQUESTED)
    assert unfound(db, org.org_id, acks) == []
    assert requests_of(db, org.org_id) == {
        request_id: "approved",
        again_id: "pending",
    }
