"""A small HTTP/1.1 load generator, run as a process of its own beside the servers it measures.

    python bench/loadgen.py PLAN.json

The plan (JSON) names the servers (``ports`` on 127.0.0.1), the number of kept-alive
``connections`` (spread over the ports), ``warmup`` and ``duration`` in seconds, and the
``requests``: each a method, path, headers and body. With ``"once": true`` each request is sent
at most once (a request that changes something, e.g. an approval), and the run ends early when
they are used up; otherwise they are sent round-robin. It prints one JSON document: requests
answered in the measured window, per second, latency p50 / p99 / max in milliseconds, and the
statuses seen. Only responses with Content-Length are read (what the servers here send).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any


def encode(req: dict[str, Any]) -> bytes:
    body = req.get("body", "").encode()
    head = [f"{req['method']} {req['path']} HTTP/1.1", "Host: 127.0.0.1"]
    head += [f"{k}: {v}" for k, v in req.get("headers", {}).items()]
    if body or req["method"] in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    wire = [encode(r) for r in plan["requests"]]
    once = bool(plan.get("once"))
    ports: list[int] = plan["ports"]
    start = time.perf_counter()
    measure_from = start + float(plan.get("warmup", 1.0))
    stop_at = measure_from + float(plan["duration"])
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    first_done: list[float] = []
    last_done = [measure_from]
    next_request = [0]
    first_error: dict[int, str] = {}

    async def connection(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                i = next_request[0]
                if once and i >= len(wire):
                    return
                next_request[0] = i + 1
                writer.write(wire[i % len(wire)])
                status, body = await read_response(reader)
                if status >= 400 and status not in first_error:
                    first_error[status] = body.decode(errors="replace")[:300]
                done = time.perf_counter()
                if done >= measure_from or once:
                    if not first_done:
                        first_done.append(now)
                    latencies.append(done - now)
                    statuses[status] += 1
                    last_done[0] = max(last_done[0], done)
        finally:
            writer.close()

    await asyncio.gather(*(connection(ports[c % len(ports)]) for c in range(plan["connections"])))
    began = first_done[0] if once and first_done else measure_from
    elapsed = max(min(last_done[0], stop_at) - began, 1e-9)
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(n * p))] * 1e3 if n else float("nan")

    return {
        "answered": n,
        "seconds": round(elapsed, 3),
        "per_second": round(n / elapsed, 1),
        "p50_ms": round(pct(0.50), 3),
        "p99_ms": round(pct(0.99), 3),
        "max_ms": round(latencies[-1] * 1e3, 3) if n else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "first_error": {str(k): v for k, v in first_error.items()},
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    print(json.dumps(asyncio.run(run(plan))))


if __name__ == "__main__":
    main()
