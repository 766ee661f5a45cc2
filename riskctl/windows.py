"""Window names such as ``10m``, ``1h``, ``24h``, ``30d`` and their length in seconds."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^(\d{1,6})([smhd])$")


def parse_window(name: str) -> int:
    match = _PATTERN.match(name)
    if not match:
        raise ValueError(f"window {name!r} must look like 10m, 1h, 24h or 30d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= 366 * 86400:
        raise ValueError(f"window {name!r} must be between 1s and 366d")
    return seconds
