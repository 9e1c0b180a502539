"""What the server review found, kept fixed: across servers, across people, across input."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    DEMO_PASSWORD,
    FAST,
    JITPAM,
    Server,
    free_port,
    token_for,
    wait_until_up,
)

MOVE = "Exchange\\New-MoveRequest"


def api(server: Server | str, token: str) -> httpx.Client:
    url = server if isinstance(server, str) else server.url
    return httpx.Client(
        base_url=url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_a_request_made_on_one_server_is_approved_on_another(
    demo_server: Server, tmp_path: Path
) -> None:
    db = f"sqlite:///{demo_server.data_dir / 'jitpam.db'}"
    port = free_port()
    with (tmp_path / "second.log").open("wb") as log:
        second = subprocess.Popen(
            [
                JITPAM,
                "serve",
                "--db",
                db,
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "own-key"),
            ],
            env={**os.environ, **FAST},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        other = f"http://127.0.0.1:{port}"
        wait_until_up(other, second)
        with api(demo_server, token_for(demo_server, "alice@contoso.com")) as c:
            asked = c.post(
                "/requests", json={"type": "task", "target": MOVE, "reason": "two servers"}
            ).json()
        assert "id" in asked, asked
        bob = httpx.post(
            other + "/api/v1/auth/login",
            json={"user": "bob@contoso.com", "password": DEMO_PASSWORD},
        )
        with api(other, bob.json()["token"]) as c:
            assert c.get(f"/requests/{asked['id']}/verify").json()["signature_valid"] is True
            approved = c.post(
                f"/requests/{asked['id']}/approve", json={"comment": "from server two"}
            )
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        with api(demo_server, token_for(demo_server, "alice@contoso.com")) as c:  # give it back
            assert (
                c.post(
                    f"/authorizations/{asked['id']}/revoke", json={"comment": "done"}
                ).status_code
                == 200
            )
    finally:
        second.terminate()
        second.wait(timeout=20)


def test_a_service_account_in_the_approver_group_cannot_vote(demo_server: Server) -> None:
    admin = token_for(demo_server, "admin@contoso.com")
    with api(demo_server, admin) as c:
        c.put("/groups/pamapprovers/members/sys@contoso.com")
        minted = c.post("/tokens", json={"user": "sys@contoso.com"}).json()["token"]
    with api(demo_server, token_for(demo_server, "alice@contoso.com")) as c:
        asked = c.post("/requests", json={"type": "task", "target": MOVE, "reason": "svc"}).json()
    with api(demo_server, minted) as c:
        vote = c.post(f"/requests/{asked['id']}/approve", json={"comment": "as a robot"})
    assert vote.status_code == 403
    assert vote.json()["code"] == "not_an_approver"
    with api(demo_server, admin) as c:
        c.delete("/groups/pamapprovers/members/sys@contoso.com")
    with api(demo_server, token_for(demo_server, "alice@contoso.com")) as c:  # withdraw it again
        assert c.post(f"/requests/{asked['id']}/cancel").status_code == 200


def test_an_admin_cannot_take_over_an_approver_by_resetting_their_password(
    demo_server: Server,
) -> None:
    with api(demo_server, token_for(demo_server, "admin@contoso.com")) as c:
        reset = c.put("/users/carol@contoso.com/password", json={"password": "taken-over-password"})
    assert reset.status_code == 403
    assert "only carol@contoso.com can change their password" in reset.json()["detail"]
    assert token_for(demo_server, "carol@contoso.com")


def test_a_system_account_resets_a_forgotten_password_and_old_sessions_end(
    demo_server: Server,
) -> None:
    carol_session = token_for(demo_server, "carol@contoso.com")
    with api(demo_server, token_for(demo_server, "sys@contoso.com")) as c:
        # sys holds no Set-Password right in the demo: a reset needs both the right and break-glass.
        assert (
            c.put("/users/carol@contoso.com/password", json={"password": "x" * 16}).status_code
            == 403
        )
    with api(demo_server, carol_session) as c:
        assert c.get("/me").status_code == 200


def test_oversized_bodies_and_odd_tokens_get_problem_json_not_500(demo_server: Server) -> None:
    big = httpx.post(
        demo_server.url + "/api/v1/auth/login",
        content=b"x" * (5 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413
    assert big.headers["content-type"].startswith("application/problem+json")
    fake_jwt = "eyJhbGciOiJFUzI1NiIsImtpZCI6InRlc3Qta2V5In0.eyJzdWIiOiJ4In0.c2ln"
    with api(demo_server, fake_jwt) as c:
        answer = c.get("/me")
    assert answer.status_code == 401


def _chunked_upload(server: Server, path: str, content_type: str) -> tuple[bytes, int]:
    """POST an endless chunked body (no Content-Length) until the server answers; returns the
    answer's first bytes and how many body bytes were sent by then (at most 256 MiB)."""
    chunk = b"x" * (256 * 1024)
    sent = 0
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        deadline = time.monotonic() + 60
        while sent < 256 * 1024 * 1024 and time.monotonic() < deadline:
            if select.select([conn], [], [], 0)[0]:
                break  # the server has answered
            try:
                conn.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            except OSError:  # it answered and closed while we were still sending
                break
            sent += len(chunk)
        conn.settimeout(30)
        return conn.recv(4096), sent


@pytest.mark.parametrize(
    ("path", "content_type", "answer_type"),
    [
        ("/api/v1/auth/login", "application/json", b"application/problem+json"),
        ("/login", "application/x-www-form-urlencoded", b"text/html"),
    ],
)
def test_a_chunked_body_past_the_limit_is_refused_as_it_arrives(
    demo_server: Server, path: str, content_type: str, answer_type: bytes
) -> None:
    answer, sent = _chunked_upload(demo_server, path, content_type)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert answer_type in answer
    assert sent < 64 * 1024 * 1024, f"the server read {sent} bytes before refusing"
    assert httpx.get(demo_server.url + "/healthz").status_code == 200


def test_init_with_a_bad_password_leaves_nothing_behind(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'init.db'}"
    env = {**os.environ, **FAST, "JITPAM_DATA_DIR": str(tmp_path / "data")}
    args = [
        JITPAM,
        "init",
        "--db",
        db,
        "--org",
        "acme",
        "--admin",
        "admin@acme.example",
        "--password-stdin",
        "--json",
    ]
    short = subprocess.run(
        args, input="short\n", capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert short.returncode == 1
    assert "at least 12 characters" in short.stderr
    good = subprocess.run(
        args,
        input="a-good-long-password\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["token"].startswith("jpt_")
    assert oct((tmp_path / "data").stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(
    "url", ["postgresql://jitpam@db/jitpam?password=s3cret", "postgresql://jitpam:s3cret@db/x"]
)
def test_config_show_masks_database_passwords(url: str, tmp_path: Path) -> None:
    env = {**os.environ, "JITPAM_DATABASE_URL": url, "JITPAM_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [JITPAM, "config", "show", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout


def test_partial_oidc_settings_are_refused(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "JITPAM_OIDC_ISSUER": "https://login.example",
        "JITPAM_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [JITPAM, "config", "show"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "OIDC needs oidc_issuer and oidc_audience" in done.stderr


def test_a_second_organization_cannot_probe_or_squat_user_names(demo_server: Server) -> None:
    # The module's demo server: no other test of the module makes an organization or the users
    # asked for here.
    made = subprocess.run(
        [
            JITPAM,
            "org",
            "create",
            "fabrikam",
            "--admin",
            "admin@fabrikam.example",
            "--db",
            f"sqlite:///{demo_server.data_dir / 'jitpam.db'}",
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**demo_server.env},
        timeout=60,
        check=True,
    )
    with api(demo_server, json.loads(made.stdout)["token"]) as c:
        taken = c.post("/users", json={"upn": "alice@contoso.com"})
        free = c.post("/users", json={"upn": "nosuch@contoso.com"})
    assert taken.status_code == free.status_code == 422
    assert taken.json()["detail"] == free.json()["detail"]


def test_pages_carry_the_security_headers_and_the_api_does_not(demo_server: Server) -> None:
    page = httpx.get(demo_server.url + "/login")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    missing = httpx.get(demo_server.url + "/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["x-frame-options"] == "DENY"
    health = httpx.get(demo_server.url + "/healthz")
    assert health.status_code == 200
    assert "content-security-policy" not in health.headers
    refused = httpx.get(demo_server.url + "/api/v1/me")
    assert refused.status_code == 401
    assert "x-frame-options" not in refused.headers


def test_metrics_count_each_decision_by_its_answer(demo_server: Server) -> None:
    def decisions() -> dict[str, float]:
        text = httpx.get(demo_server.url + "/metrics").text
        found = {"true": 0.0, "false": 0.0}
        for line in text.splitlines():
            if line.startswith("jitpam_check_decisions_total{"):
                label = line.split('allowed="', 1)[1].split('"', 1)[0]
                found[label] = float(line.rsplit(" ", 1)[1])
        return found

    before = decisions()
    token = token_for(demo_server, "alice@contoso.com")
    with api(demo_server, token) as c:
        one = c.post("/check", json={"task": MOVE})
        assert one.status_code == 200
        batch = c.post("/check/batch", json={"checks": [{"task": MOVE}, {"task": MOVE}]})
        assert batch.status_code == 200
    allowed = one.json()["allowed"]
    after = decisions()
    counted = {k: after[k] - before[k] for k in after}
    assert counted[str(allowed).lower()] == 3
    assert counted[str(not allowed).lower()] == 0
