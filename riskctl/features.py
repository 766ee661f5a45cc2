"""Features: the flat, typed mapping that rules and detectors both read.

Names are dotted (``velocity.buyer_shop.orders_1h``, ``order.amount``,
``account_age_minutes``). :class:`FeatureSchema` declares each name and its type once;
rules are type-checked against it when a pack loads. A value of ``None`` means the
feature is unavailable for this event (for example velocity while Redis is down).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class FeatureType(enum.StrEnum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STR = "str"
    STR_LIST = "list[str]"

    @property
    def numeric(self) -> bool:
        return self in (FeatureType.INT, FeatureType.FLOAT)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    type: FeatureType
    description: str = ""
    kinds: frozenset[str] = frozenset()  # empty = every event kind


class FeatureSchema(Mapping[str, FeatureSpec]):
    """An immutable set of declared features, looked up by name."""

    def __init__(self, specs: Iterable[FeatureSpec]) -> None:
        self._specs: dict[str, FeatureSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"feature {spec.name!r} declared twice")
            self._specs[spec.name] = spec

    def __getitem__(self, name: str) -> FeatureSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def merged(self, other: Iterable[FeatureSpec]) -> FeatureSchema:
        return FeatureSchema([*self._specs.values(), *other])

    def for_kind(self, kind: str) -> list[FeatureSpec]:
        return [s for s in self._specs.values() if not s.kinds or kind in s.kinds]


Features = dict[str, Any]
"""A flat mapping of feature name to value (``None`` = unavailable)."""
