"""What the check path needs from a policy, and the holder that lets it be swapped live."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from riskctl.decisions import Signal, Thresholds
from riskctl.features import FeatureSchema


class Policy(Protocol):
    """A compiled rule pack: versioned, per-kind thresholds, one Signal per rule."""

    @property
    def version(self) -> str: ...

    def thresholds(self, kind: str) -> Thresholds: ...

    def evaluate(self, kind: str, features: dict[str, Any]) -> list[Signal]: ...


class PolicyHolder:
    """The policy in force. Swapped atomically on reload; readers never see a half pack."""

    def __init__(self, policy: Policy, schema: FeatureSchema) -> None:
        self._policy = policy
        self.schema = schema
        self._lock = threading.Lock()

    @property
    def current(self) -> Policy:
        return self._policy

    def replace(self, policy: Policy) -> None:
        with self._lock:
            self._policy = policy
