"""The rule pack in force, and how it changes without a restart.

Every worker process watches the rule folder itself (a ``stat`` of a handful of files at
most once a second), so an edit reaches all gunicorn workers without signals or shared
state. A pack that fails to load is logged with every problem and the previous pack keeps
serving; the bad version is remembered so it is not retried on every request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from riskctl.decisions import Signal, Thresholds
from riskctl.features import FeatureSchema
from riskctl.rulepack import RulePackError, load_pack

log = logging.getLogger(__name__)


class Policy(Protocol):
    """A compiled rule pack: versioned, per-kind thresholds, one Signal per rule."""

    @property
    def version(self) -> str: ...

    def thresholds(self, kind: str) -> Thresholds: ...

    def evaluate(self, kind: str, features: dict[str, Any]) -> list[Signal]: ...


def folder_signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    files = [path] if path.is_file() else sorted(path.glob("*.y*ml"))
    out = []
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:
            continue
        out.append((f.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


class PolicyHolder:
    """The policy in force. Swapped atomically on reload; readers never see a half pack."""

    def __init__(
        self,
        path: Path,
        schema: FeatureSchema,
        *,
        interval_s: float = 1.0,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.path = path
        self.schema = schema
        self.interval_s = interval_s
        self.on_change = on_change
        self._lock = threading.Lock()
        self._signature = folder_signature(path)
        # At start there is nothing to fall back to: a broken pack stops the start.
        self._policy: Policy = load_pack(path, schema)
        self._next_check = time.monotonic() + interval_s
        self.last_error: str | None = None

    @property
    def current(self) -> Policy:
        return self._policy

    def maybe_reload(self) -> bool:
        """Reload when the files changed since the last look (at most once per interval)."""
        now = time.monotonic()
        if now < self._next_check:
            return False
        if not self._lock.acquire(blocking=False):
            return False  # another thread of this worker is already looking
        try:
            self._next_check = now + self.interval_s
            signature = folder_signature(self.path)
            if signature == self._signature:
                return False
            self._signature = signature
            return self.reload()
        finally:
            self._lock.release()

    def reload(self) -> bool:
        old = self._policy.version
        try:
            pack = load_pack(self.path, self.schema)
        except RulePackError as exc:
            self.last_error = str(exc)
            log.error("rule pack rejected; version %s keeps serving: %s", old, exc)
            return False
        except (OSError, ValueError) as exc:
            self.last_error = str(exc)
            log.error("rule pack unreadable; version %s keeps serving: %s", old, exc)
            return False
        self.last_error = None
        if pack.version != old:
            self._policy = pack
            log.info("rule pack %s is live (was %s)", pack.version, old)
            if self.on_change is not None:
                self.on_change(old, pack.version)
        return True
