"""The event types ``jitpam webhook add`` accepts are the server's, but for the test event."""

from __future__ import annotations

from jitpam.cli.client import EVENTS
from jitpam.domain.notifications import EventType


def test_the_cli_offers_every_event_an_endpoint_can_subscribe_to() -> None:
    server = [e.value for e in EventType if e is not EventType.WEBHOOK_TEST]
    assert sorted(EVENTS) == sorted(server)
    assert len(set(EVENTS)) == len(EVENTS)
    assert EventType.WEBHOOK_TEST.value not in EVENTS
