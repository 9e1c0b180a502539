"""Webhook endpoints: checked URLs, known event types, management by admins only."""

from __future__ import annotations

import pytest

from jitpam.adapters.webhooks import OutboundUrls, sign
from jitpam.domain.errors import InvalidInput, NotPermitted
from jitpam.domain.notifications import DeliveryState, new_webhook_secret
from jitpam.services import webhooks
from jitpam.services.context import ServiceContext
from jitpam.services.delivery import list_outbox
from tests.integration.world import World

STRICT = OutboundUrls(allow_private=False)
OPEN = OutboundUrls(allow_private=True)


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    """The rules run on the in-memory unit of work."""
    return memory_ctx


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "http://example.com/hook",
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
        "not a url",
    ],
)
def test_webhook_urls_inside_the_network_or_without_tls_are_refused(world: World, url: str) -> None:
    with pytest.raises(InvalidInput):
        webhooks.add_webhook(
            world.ctx,
            caller=world.admin.caller,
            url=url,
            events=["request.created"],
            urls=STRICT,
            secret=new_webhook_secret(),
        )
    assert webhooks.list_webhooks(world.ctx, caller=world.admin.caller) == []


def test_private_addresses_are_allowed_only_when_configured(world: World) -> None:
    added = webhooks.add_webhook(
        world.ctx,
        caller=world.admin.caller,
        url="http://127.0.0.1:9/hook",
        events=["request.created"],
        urls=OPEN,
        secret=new_webhook_secret(),
    )
    assert [w.id for w in webhooks.list_webhooks(world.ctx, caller=world.admin.caller)] == [
        added.id
    ]


def test_unknown_event_types_and_formats_are_refused(world: World) -> None:
    for events, fmt in ((["request.exploded"], "json"), (["request.created"], "xml"), ([], "json")):
        with pytest.raises(InvalidInput):
            webhooks.add_webhook(
                world.ctx,
                caller=world.admin.caller,
                url="http://127.0.0.1:9/h",
                events=events,
                format=fmt,
                urls=OPEN,
                secret=new_webhook_secret(),
            )


def test_only_admins_manage_webhooks(world: World) -> None:
    someone = world.user("someone")
    with pytest.raises(NotPermitted):
        webhooks.add_webhook(
            world.ctx,
            caller=someone.caller,
            url="http://127.0.0.1:9/h",
            events=["request.created"],
            urls=OPEN,
            secret=new_webhook_secret(),
        )
    with pytest.raises(NotPermitted):
        webhooks.list_webhooks(world.ctx, caller=someone.caller)


def test_a_test_delivery_is_queued_for_the_endpoint(world: World) -> None:
    added = webhooks.add_webhook(
        world.ctx,
        caller=world.admin.caller,
        url="http://127.0.0.1:9/hook",
        events=["request.created"],
        urls=OPEN,
        secret=new_webhook_secret(),
    )
    queued = webhooks.test_webhook(world.ctx, caller=world.admin.caller, endpoint_id=added.id)
    pending = list_outbox(world.ctx, caller=world.admin.caller, state=DeliveryState.PENDING).items
    assert [m.id for m in pending] == [queued.id]
    assert pending[0].destination == added.id


def test_signatures_follow_the_standard_webhooks_scheme() -> None:
    # The Standard Webhooks reference example: secret, id, timestamp, body and signature.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_checked_address_is_the_one_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebinding DNS server answers a public address to the check and loopback to the connect;
    jitpam connects to the address it checked, with the original name for Host and TLS."""
    import socket

    from jitpam.adapters.webhooks import pinned

    answers = iter(["203.0.114.7", "127.0.0.1"])

    def rebinding(host: str, port: object, *args: object, **kwargs: object) -> list[tuple]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), 443))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    address = STRICT.resolve("https://hooks.example.com:8443/x?y=1")
    assert address == "203.0.114.7"
    url, headers, extensions = pinned("https://hooks.example.com:8443/x?y=1", address)
    assert url == "https://203.0.114.7:8443/x?y=1"
    assert headers == {"host": "hooks.example.com:8443"}
    assert extensions == {"sni_hostname": "hooks.example.com"}
    assert pinned("https://h.example/p", "2001:db8::1")[0] == "https://[2001:db8::1]/p"
