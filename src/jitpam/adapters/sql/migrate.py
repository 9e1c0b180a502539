"""Schema migrations with Alembic, run from code (``jitpam db upgrade`` and server start).

On PostgreSQL the upgrade holds an advisory lock, so several processes starting at once migrate
once. A database whose schema is newer than this code is refused.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
ADVISORY_LOCK = 0x6A697470616D  # "jitpam"


class SchemaTooNewError(RuntimeError):
    pass


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine: Engine) -> str | None:
    """Bring the schema to the code's head; returns the revision. Raises SchemaTooNewError."""
    with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK})
            conn.commit()
        try:
            script = ScriptDirectory.from_config(alembic_config())
            current = current_revision(conn)
            conn.commit()
            try:
                known = current is None or script.get_revision(current) is not None
            except CommandError:
                known = False
            if not known:
                raise SchemaTooNewError(
                    f"the database schema is at revision {current}, which this version of jitpam "
                    "does not know: it was migrated by a newer jitpam; upgrade jitpam"
                )
            command.upgrade(alembic_config(conn), "head")
            conn.commit()
            return current_revision(conn)
        finally:
            if postgres:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK})
                conn.commit()
