"""jitpam's server as ``jitpam serve`` runs it, plus the benchmark's ceilings in the same app.

    python bench/http_server.py --db URL --port PORT --data-dir DIR

``GET /bench/bare`` answers a constant from an ``async`` route and ``GET /bench/bare-sync`` from
a plain one (run in the thread pool, as jitpam's own routes are); both pass through the same
middleware as every other route. The background worker (notification delivery) is not started.
"""

from __future__ import annotations

import argparse

import uvicorn

from jitpam.bootstrap import build_runtime
from jitpam.cli.server import settle_memory
from jitpam.services import organizations
from jitpam.settings import load_settings
from jitpam.web.app import create_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    settings = load_settings(
        None, database_url=args.db, port=args.port, data_dir=args.data_dir, host="127.0.0.1"
    )
    runtime = build_runtime(settings)
    organizations.refresh_builtin_catalog(runtime.ctx)
    app = create_server(runtime)

    @app.get("/bench/bare", include_in_schema=False)
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/bench/bare-sync", include_in_schema=False)
    def bare_sync() -> dict[str, bool]:
        return {"ok": True}

    settle_memory()  # as `jitpam serve` does before it serves
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
