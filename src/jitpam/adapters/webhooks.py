"""Webhook deliveries, signed the Standard Webhooks way, to checked outbound URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from urllib.parse import urlsplit

import httpx

from jitpam.domain.errors import InvalidInput
from jitpam.domain.notifications import WEBHOOK_SECRET_PREFIX, OutboxMessage, WebhookEndpoint


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body`` with the secret's key bytes."""
    key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# Prefixes that carry an IPv4 address inside IPv6 and would reach it: NAT64 and 6to4.
_TRANSLATED = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("2002::/16"))


class OutboundUrls:
    """Refuses URLs that would make jitpam call inside its own network (SSRF), unless allowed."""

    def __init__(self, *, allow_private: bool = False) -> None:
        self.allow_private = allow_private

    def check(self, url: str) -> None:
        """Raises InvalidInput for a URL jitpam must not call."""
        self.resolve(url)

    def resolve(self, url: str) -> str | None:
        """Check the URL and return the address to connect to (None: connect by name, which only
        the private-allowed mode does). Raises InvalidInput for a URL jitpam must not call."""
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise InvalidInput("a webhook URL must be an http(s) URL with a host")
        if parts.username or parts.password:
            raise InvalidInput("a webhook URL must not carry credentials")
        if self.allow_private:
            return None
        if parts.scheme != "https":
            raise InvalidInput("a webhook URL must use https")
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
        except socket.gaierror:
            raise InvalidInput(f"the webhook host {parts.hostname} does not resolve") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        for address in addresses:
            if not address.is_global or any(address in net for net in _TRANSLATED):
                # Said without the address: a tenant learns nothing about the inside network.
                raise InvalidInput(
                    f"the webhook host {parts.hostname} is not a public internet address "
                    "(private addresses are allowed only with webhook_allow_private)"
                )
        return str(addresses[0])


def pinned(url: str, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL rewritten to connect to the checked ``address``, with the Host header and the TLS
    server name of the original host, so a second DNS answer cannot send the call elsewhere."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    ip = f"[{address}]" if ":" in address else address
    netloc = f"{ip}:{parts.port}" if parts.port else ip
    target = parts._replace(netloc=netloc).geturl()
    host_header = f"{host}:{parts.port}" if parts.port else host
    return target, {"host": host_header}, {"sni_hostname": host}


MAX_ANSWER = 4096  # bytes of an endpoint's answer read before it is dropped


class WebhookSender:
    def __init__(self, *, urls: OutboundUrls, timeout: float = 10.0) -> None:
        self.urls = urls
        self.timeout = timeout

    def send(self, message: OutboxMessage, endpoint: WebhookEndpoint | None) -> None:
        if endpoint is None:
            raise RuntimeError("the webhook endpoint was removed")
        address = self.urls.resolve(endpoint.url)  # again at send time: DNS answers change
        url, extra_headers, extensions = (
            pinned(endpoint.url, address) if address is not None else (endpoint.url, {}, {})
        )
        body = json.dumps(message.payload, sort_keys=True, separators=(",", ":")).encode()
        timestamp = int(time.time())
        message_id = f"msg_{message.id}"  # the same on every retry: receivers drop duplicates
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(endpoint.secret, message_id, timestamp, body),
            "user-agent": "jitpam-webhooks",
            **extra_headers,
        }
        deadline = time.monotonic() + self.timeout
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            request = client.build_request(
                "POST", url, content=body, headers=headers, extensions=extensions
            )
            response = client.send(request, stream=True)
            # Only the status matters: read a little of the answer, never wait on it for long.
            received = 0
            for chunk in response.iter_raw():
                received += len(chunk)
                if received > MAX_ANSWER or time.monotonic() > deadline:
                    break
            response.close()
            if response.status_code >= 300:
                raise RuntimeError(f"the endpoint answered {response.status_code}")
