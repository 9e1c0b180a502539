from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.signing import Ed25519Signer
from jitpam.adapters.sql.uow import SqlUnitOfWork, unit_of_work_factory
from jitpam.services.context import ServiceContext
from jitpam.services.ports import UnitOfWork
from tests.fakes.memory import MemoryDatabase, factory
from tests.integration.world import World, own_process

if TYPE_CHECKING:
    from tests.slapd import SlapdServer

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SIGNER = Ed25519Signer.generate()  # key generation once: it is the same server key for every test


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def db_ctx(engine: Engine, clock: FixedClock) -> ServiceContext:
    """The services on the SQL adapter, once per database the suite runs against."""
    sessions = unit_of_work_factory(engine)

    def new_uow() -> UnitOfWork:
        return SqlUnitOfWork(sessions)

    return own_process(ServiceContext(uow=new_uow, clock=clock, signer=SIGNER))


@pytest.fixture
def ctx(db_ctx: ServiceContext) -> ServiceContext:
    """What ``world`` runs on: the databases, unless the module overrides it with
    ``memory_ctx``."""
    return db_ctx


@pytest.fixture
def memory_ctx(clock: FixedClock) -> ServiceContext:
    """The services on the in-memory unit of work (tests/fakes/memory.py): for modules that
    prove a rule rather than an adapter, which then run once, in milliseconds, instead of once
    per database. A module opts in by overriding ``ctx`` with this fixture."""
    return own_process(ServiceContext(uow=factory(MemoryDatabase()), clock=clock, signer=SIGNER))


@pytest.fixture
def world(ctx: ServiceContext, clock: FixedClock) -> World:
    return World(ctx, clock)


@pytest.fixture
def db_world(db_ctx: ServiceContext, clock: FixedClock) -> World:
    """A world on the databases, for a test of a module that runs on the fake otherwise but
    proves an adapter's query (a listing's filters, a count's SQL twin)."""
    return World(db_ctx, clock)


@pytest.fixture(scope="module")
def slapd() -> Iterator[SlapdServer]:
    """A real OpenLDAP server (tests/slapd.py), one per test module: each test makes its own
    groups, with names of its own."""
    from tests.slapd import SlapdServer  # ldap3 is imported only by the modules that use it

    with SlapdServer() as server:
        yield server
