"""A small circuit breaker: after a dependency fails, skip it for a cool-down.

Without it every check would pay the full Redis timeout while Redis is down; with it
only one probe per cool-down does, and service resumes by itself when a probe succeeds.
"""

from __future__ import annotations

import threading
import time


class CircuitBreaker:
    def __init__(self, cooldown_s: float = 1.0) -> None:
        self.cooldown_s = cooldown_s
        self._open_until = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        return time.monotonic() >= self._open_until

    def failure(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + self.cooldown_s

    def success(self) -> None:
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until
