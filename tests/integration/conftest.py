from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.signing import Ed25519Signer
from jitpam.adapters.sql.uow import SqlUnitOfWork, unit_of_work_factory
from jitpam.services.context import ServiceContext
from jitpam.services.ports import UnitOfWork
from tests.integration.world import World, own_process

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SIGNER = Ed25519Signer.generate()  # key generation once: it is the same server key for every test


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def ctx(engine: Engine, clock: FixedClock) -> ServiceContext:
    sessions = unit_of_work_factory(engine)

    def new_uow() -> UnitOfWork:
        return SqlUnitOfWork(sessions)

    return own_process(ServiceContext(uow=new_uow, clock=clock, signer=SIGNER))


@pytest.fixture
def world(ctx: ServiceContext, clock: FixedClock) -> World:
    return World(ctx, clock)
