"""The one place that wires adapters into the services."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from jitpam.adapters.clock import SystemClock
from jitpam.adapters.signing import Ed25519Signer
from jitpam.adapters.sql.db import make_engine
from jitpam.adapters.sql.migrate import upgrade
from jitpam.adapters.sql.uow import SqlUnitOfWork, unit_of_work_factory
from jitpam.services.context import ServiceContext
from jitpam.services.ports import Clock, Signer, UnitOfWork


def build_context(
    *,
    database_url: str,
    signer: Signer | None = None,
    signing_key_file: Path | None = None,
    clock: Clock | None = None,
    migrate: bool = True,
) -> tuple[ServiceContext, Engine]:
    """Open the database (migrating it to the code's schema unless told not to) and return the
    services' context with the engine, which the caller disposes of."""
    engine = make_engine(database_url)
    if migrate:
        upgrade(engine)
    sessions = unit_of_work_factory(engine)

    def new_uow() -> UnitOfWork:
        return SqlUnitOfWork(sessions)

    if signer is None:
        signer = (
            Ed25519Signer.from_file(signing_key_file)
            if signing_key_file
            else Ed25519Signer.generate()
        )
    return ServiceContext(uow=new_uow, clock=clock or SystemClock(), signer=signer), engine
