"""Ground truth for backtests and training: what people concluded about past events.

Resolved enforcement cases are the labels (``confirmed_abuse`` = abuse, ``false_positive``
= legitimate). The case queue is where they come from; a database without it has no
stored labels, and backtests then use labels supplied from a file.
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect


def stored_labels(engine: Engine) -> dict[str, bool]:
    """event_id → is abuse, from resolved cases (empty while no case queue exists)."""
    if not inspect(engine).has_table("cases"):
        return {}
    raise RuntimeError("the cases table exists but this riskctl cannot read its labels; upgrade riskctl")
