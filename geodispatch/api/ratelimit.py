"""Failed-login rate limiting per (username, client address), in memory.

A sliding window of one minute: after ``limit`` failures for the same user from the same address,
further attempts are refused with 429 and ``Retry-After`` until the oldest failure leaves the
window, *before* the password is even checked (so guessing stops, and argon2 work is not spent on
an attacker). A success clears the key. One process keeps its own window, which is enough for a
console that runs one API process per centre; behind several processes the limit multiplies.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class LoginLimiter:
    """Counts failures per key in the last ``window_s`` seconds."""

    def __init__(
        self, limit: int, *, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def retry_after(self, username: str, address: str) -> int:
        """Seconds the key must still wait, or 0 when an attempt is allowed now."""
        if self.limit <= 0:
            return 0
        key = (username.lower(), address)
        now = self._clock()
        with self._lock:
            q = self._failures.get(key)
            if q is None:
                return 0
            self._trim(q, now)
            if not q:
                del self._failures[key]
                return 0
            if len(q) < self.limit:
                return 0
            return max(1, math.ceil(q[0] + self.window_s - now))

    def failed(self, username: str, address: str) -> None:
        key = (username.lower(), address)
        now = self._clock()
        with self._lock:
            q = self._failures.setdefault(key, deque())
            self._trim(q, now)
            q.append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of usernames
                self._failures = {k: v for k, v in self._failures.items() if v}

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop((username.lower(), address), None)
