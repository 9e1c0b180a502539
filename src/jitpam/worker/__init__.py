"""The background worker: delivers the outbox and runs the sweeps, in a loop until stopped.

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

    def run_once(self) -> int:
        """One round: sweeps, then every due delivery; returns how many messages went out."""
        try:
            run_sweeps(self.ctx, warning=self.warning)
        except Exception:
            log.exception("sweep failed; delivering anyway")
        return deliver_due(
            self.ctx, senders=self.senders, policy=self.policy, stopping=self.stopping.is_set
        )

    def run(self) -> None:
        """Loop until ``stop()``; an error in one round is logged and the next round goes on."""
        while not self.stopping.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("worker round failed; retrying in %.1f s", self.interval)
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="jitpam-worker", daemon=True)
        thread.start()
        return thread
