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

    def blocked_for(self, *, account: str, client: str, at: datetime) -> float:
        with self._lock:
            wait = 0.0
            for key in self._keys(account, client):
                times = self._failures.get(key)
                if not times:
                    continue
                while times and times[0] <= at - self.window:
                    times.popleft()
                limit = (
                    self.max_failures if key.startswith("account:") else self.max_client_failures
                )
                if len(times) >= limit:
                    wait = max(wait, (times[-1] + self.lockout - at).total_seconds())
            return max(wait, 0.0)

    def failed(self, *, account: str, client: str, at: datetime) -> None:
        with self._lock:
            for key in self._keys(account, client):
                times = self._failures.setdefault(key, deque(maxlen=self.max_client_failures + 1))
                times.append(at)

    def succeeded(self, *, account: str, client: str) -> None:
        with self._lock:
            self._failures.pop(f"account:{account}", None)
