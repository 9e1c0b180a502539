"""The background worker: delivers the outbox and runs the sweeps, in a loop until stopped, and,
on a thread of its own, the connectors' passes (services/connectors.py), which must not wait
behind a slow mail server.

Runs as its own process (``jitpam worker``) or as a thread inside ``jitpam serve``. Several
workers may run at once on PostgreSQL: deliveries are claimed with FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from jitpam.domain.notifications import Channel
from jitpam.services.connectors import LEASE, RECONCILE_EVERY, RETRY_CAP, run_connectors
from jitpam.services.context import ServiceContext
from jitpam.services.delivery import DeliveryPolicy, Sender, deliver_due, run_sweeps

log = logging.getLogger("jitpam.worker")


@dataclass
class Worker:
    ctx: ServiceContext
    senders: Mapping[Channel, Sender]
    interval: float = 5.0
    warning: timedelta = timedelta(minutes=30)
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    stopping: threading.Event = field(default_factory=threading.Event)
    connector_interval: float = 1.0
    reconcile_every: timedelta = RECONCILE_EVERY
    retry_cap: timedelta = RETRY_CAP
    connector_lease: timedelta = LEASE

    def run_once(self) -> int:
        """One round: sweeps, then every due delivery; returns how many messages went out."""
        try:
            run_sweeps(self.ctx, warning=self.warning)
        except Exception:
            log.exception("sweep failed; delivering anyway")
        return deliver_due(
            self.ctx, senders=self.senders, policy=self.policy, stopping=self.stopping.is_set
        )

    def run_connectors_once(self) -> int:
        """One round of the connectors: every pass that is due; returns how many ran."""
        return run_connectors(
            self.ctx,
            every=self.reconcile_every,
            retry_cap=self.retry_cap,
            lease=self.connector_lease,
        )

    def _connectors(self) -> None:
        while not self.stopping.is_set():
            try:
                self.run_connectors_once()
            except Exception:
                log.exception("connector round failed; retrying")
            self.stopping.wait(self.connector_interval)

    def run(self) -> None:
        """Loop until ``stop()``; an error in one round is logged and the next round goes on."""
        connectors = None
        if self.ctx.connectors is not None:
            connectors = threading.Thread(
                target=self._connectors, name="jitpam-connectors", daemon=True
            )
            connectors.start()
        while not self.stopping.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("worker round failed; retrying in %.1f s", self.interval)
            self.stopping.wait(self.interval)
        if connectors is not None:
            connectors.join()  # a pass under way finishes and records what it did

    def stop(self) -> None:
        self.stopping.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="jitpam-worker", daemon=True)
        thread.start()
        return thread
