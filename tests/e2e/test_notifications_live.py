"""A running server delivers notifications by itself: email to a real SMTP server, signed webhooks
to a real HTTP receiver that checks signatures and refuses replays."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import DEMO_PASSWORD, Server, free_port, start_server, token_for
from tests.smtp import SmtpServer

MOVE = "Exchange\\New-MoveRequest"
TOLERANCE = 300


class Receiver:
    """Verifies each delivery as a Standard Webhooks receiver would, and keeps the good ones."""

    def __init__(self) -> None:
        self.secret = ""
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.seen: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                verdict = receiver.verify(
                    self.headers["webhook-id"],
                    self.headers["webhook-timestamp"],
                    self.headers["webhook-signature"],
                    body,
                )
                self.send_response(204 if verdict is None else 400)
                self.end_headers()
                if verdict is not None:
                    receiver.refused.append(verdict)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.httpd = HTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def verify(self, message_id: str, timestamp: str, signatures: str, body: bytes) -> str | None:
        if abs(time.time() - int(timestamp)) > TOLERANCE:
            return "stale"
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        expected = base64.b64encode(
            hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        ).decode()
        if not any(hmac.compare_digest(s.partition(",")[2], expected) for s in signatures.split()):
            return "bad signature"
        if message_id in self.seen:
            return "replay"
        self.seen.add(message_id)
        self.accepted.append(
            {
                "id": message_id,
                "timestamp": timestamp,
                "signature": signatures,
                "body": json.loads(body),
            }
        )
        return None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("notify"),
        "--demo",
        extra_env={
            "JITPAM_SMTP_HOST": "127.0.0.1",
            "JITPAM_SMTP_PORT": str(smtp.port),
            "JITPAM_SMTP_STARTTLS": "false",
            "JITPAM_SMTP_SENDER": "Contoso PAM <pam@contoso.com>",
            "JITPAM_WORKER_INTERVAL_SECONDS": "1",
            "JITPAM_WEBHOOK_ALLOW_PRIVATE": "true",
            "JITPAM_PUBLIC_URL": "https://pam.contoso.test",
        },
    )
    yield s
    s.stop()


def eventually(check: Any, deadline: float = 30.0) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(0.1)  # polling interval
    raise AssertionError("not delivered in time")


def open_link(server: Server, link: str, upn: str) -> str:
    """Follow an emailed link as its recipient's browser would: to the sign-in page, then, once
    signed in, to the request's page. The public address is HTTPS, so the server marks its
    cookies Secure; this test reaches it over plain HTTP and hands them back itself."""
    path = link.removeprefix("https://pam.contoso.test")
    with httpx.Client(base_url=server.url) as browser:
        first = browser.get(path)
        assert first.status_code == 303
        sign_in = browser.get(first.headers["location"])
        assert sign_in.status_code == 200
        assert "Secure" in sign_in.headers["set-cookie"]
        token = re.search(r'name="csrf" value="([^"]+)"', sign_in.text)
        nxt = re.search(r'name="next" value="([^"]+)"', sign_in.text)
        assert token is not None
        assert nxt is not None
        assert nxt.group(1) == path
        signed_in = browser.post(
            "/login",
            data={
                "user": upn,
                "password": DEMO_PASSWORD,
                "csrf": token.group(1),
                "next": nxt.group(1),
            },
            headers={"cookie": _cookies(sign_in)},
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == path
        page = browser.get(path, headers={"cookie": _cookies(signed_in)})
        assert page.status_code == 200
        return page.text


def _cookies(response: httpx.Response) -> str:
    return "; ".join(
        header.split(";", 1)[0]
        for header in response.headers.get_list("set-cookie")
        if "=" in header.split(";", 1)[0] and not header.split(";", 1)[0].endswith('=""')
    )


def test_the_seeds_emails_arrive_with_a_link(server: Server, smtp: SmtpServer) -> None:
    with httpx.Client(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {token_for(server, 'alice@contoso.com')}"},
    ) as c:
        asked = c.post(
            "/requests", json={"type": "task", "target": MOVE, "reason": "mailbox error"}
        ).json()
    mail = eventually(
        lambda: [
            m
            for m in smtp.mailbox.snapshot()
            if asked["id"] in m.message.get_body(("plain",)).get_content()
        ]
    )
    first = mail[0].message
    assert sorted(first["To"].split(", ")) == ["bob@contoso.com", "carol@contoso.com"]
    assert first["Cc"] == "alice@contoso.com"
    assert first["From"] == "Contoso PAM <pam@contoso.com>"
    link = f"https://pam.contoso.test/requests/{asked['id']}"
    assert link in first.get_body(("plain",)).get_content()
    assert link in first.get_body(("html",)).get_content()
    page = open_link(server, link, "bob@contoso.com")
    assert "Request for Exchange\\New-MoveRequest" in page
    assert "alice@contoso.com" in page
    assert ">Approve</button>" in page  # bob is an approver of this request
    with httpx.Client(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {token_for(server, 'bob@contoso.com')}"},
    ) as c:
        c.post(f"/requests/{asked['id']}/deny", json={"comment": "not now"})
    denied = eventually(
        lambda: [
            m for m in smtp.mailbox.snapshot() if m.message["Subject"].startswith("[jitpam] Denied")
        ]
    )
    assert denied[0].message["To"] == "alice@contoso.com"
    assert sorted(denied[0].message["Cc"].split(", ")) == ["bob@contoso.com", "carol@contoso.com"]


def test_signed_webhooks_verify_and_a_replay_is_refused(
    server: Server, receiver: Receiver, tmp_path: Path
) -> None:
    admin = token_for(server, "admin@contoso.com")
    with httpx.Client(
        base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}
    ) as c:
        added = c.post(
            "/webhooks",
            json={
                "url": f"http://127.0.0.1:{receiver.port}/hook",
                "events": ["request.auto_approved", "request.created"],
            },
        )
        assert added.status_code == 201, added.text
        receiver.secret = added.json()["secret"]
        assert "secret" not in c.get("/webhooks").json()["items"][0]
    with httpx.Client(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {token_for(server, 'alice@contoso.com')}"},
    ) as c:
        granted = c.post(
            "/requests",
            json={"type": "role", "target": "Exchange\\Mailbox Search", "reason": "case 7"},
        )
    request_id = granted.json()["id"]
    got = eventually(
        lambda: [
            a
            for a in receiver.accepted
            if a["body"].get("data", {}).get("request_id") == request_id
        ]
    )
    assert got[0]["body"]["type"] == "request.auto_approved"
    # The same delivery sent again, as an attacker who captured it would: refused as a replay.
    again = got[0]
    replay = httpx.post(
        f"http://127.0.0.1:{receiver.port}/hook",
        content=json.dumps(again["body"], sort_keys=True, separators=(",", ":")).encode(),
        headers={
            "webhook-id": again["id"],
            "webhook-timestamp": again["timestamp"],
            "webhook-signature": again["signature"],
            "content-type": "application/json",
        },
    )
    assert replay.status_code == 400
    assert receiver.refused[-1] == "replay"


def test_outbox_lists_deliveries_for_the_admin_only(server: Server) -> None:
    alice = token_for(server, "alice@contoso.com")
    with httpx.Client(
        base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {alice}"}
    ) as c:
        asked = c.post(
            "/requests", json={"type": "task", "target": MOVE, "reason": "outbox listing"}
        )
        assert asked.status_code == 201, asked.text
        # Withdrawn again, so the other tests on this server may ask for the same task.
        assert c.post(f"/requests/{asked.json()['id']}/cancel").status_code == 200
        assert c.get("/outbox").status_code == 403
    admin = token_for(server, "admin@contoso.com")
    with httpx.Client(
        base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}
    ) as c:
        listed = c.get("/outbox", params={"limit": 500}).json()["items"]
    assert {"id", "channel", "event", "state", "attempts"} <= set(listed[0])
    assert any(m["event"] == "request.created" for m in listed)
