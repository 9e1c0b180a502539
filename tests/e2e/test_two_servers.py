"""Several servers starting at once on one fresh database migrate it once and all come up."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.e2e.conftest import FAST, JITPAM, free_port, wait_until_up


def test_two_servers_started_together_migrate_once_and_both_serve(
    empty_database: str, tmp_path: Path
) -> None:
    env = {**os.environ, **FAST}
    procs = []
    urls = []
    for i in range(2):
        port = free_port()
        with (tmp_path / f"server{i}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        JITPAM,
                        "serve",
                        "--db",
                        empty_database,
                        "--port",
                        str(port),
                        "--data-dir",
                        str(tmp_path / f"d{i}"),
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, proc in zip(urls, procs, strict=True):
            wait_until_up(url, proc)
        for url in urls:
            assert httpx.get(url + "/readyz").status_code == 200
        engine = create_engine(
            make_url(empty_database).set(
                drivername="postgresql+psycopg"
                if empty_database.startswith("postgres")
                else "sqlite"
            )
        )
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        engine.dispose()
        assert len(versions) == 1
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)


def test_a_database_from_a_newer_jitpam_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'newer.db'}"
    env = {**os.environ, **FAST}
    done = subprocess.run(
        [JITPAM, "db", "upgrade", "--db", db],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    engine = create_engine(db)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    refused = subprocess.run(
        [
            JITPAM,
            "serve",
            "--db",
            db,
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "migrated by a newer jitpam" in refused.stderr
    assert "Traceback" not in refused.stderr
