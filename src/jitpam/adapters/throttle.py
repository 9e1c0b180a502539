"""Failed sign-in counting in memory, per account and per client address.

Per process: with several servers each counts its own, which bounds guessing at N x the limit.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta


class MemoryLoginThrottle:
    def __init__(
        self,
        *,
        max_failures: int,
        window_seconds: float,
        lockout_seconds: float,
        max_client_failures: int | None = None,
    ) -> None:
        self.max_failures = max_failures
        # One address may hold many people (a proxy, an office): it gets a larger allowance.
        self.max_client_failures = max_client_failures or max_failures * 4
        self.window = timedelta(seconds=window_seconds)
        self.lockout = timedelta(seconds=lockout_seconds)
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def _keys(self, account: str, client: str) -> tuple[str, str]:
        return f"account:{account}", f"client:{client}"

    def _wait(self, key: str, at: datetime) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        while times and times[0] <= at - self.window:
            times.popleft()
        limit = self.max_failures if key.startswith("account:") else self.max_client_failures
        if len(times) < limit:
            return 0.0
        remaining = (times[-1] + self.lockout - at).total_seconds()
        return remaining if remaining > 0 else 0.0

    def attempt(self, *, account: str, client: str, at: datetime) -> float:
        with self._lock:
            keys = self._keys(account, client)
            wait = max(self._wait(key, at) for key in keys)
            if wait > 0:
                return wait
            for key in keys:
                self._failures.setdefault(key, deque(maxlen=self.max_client_failures + 1)).append(
                    at
                )
            return 0.0

    def succeeded(self, *, account: str, client: str) -> None:
        with self._lock:
            self._failures.pop(f"account:{account}", None)
            times = self._failures.get(f"client:{client}")
            if times:
                times.pop()
