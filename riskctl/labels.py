"""Ground truth for backtests and training: what people concluded about past events.

Resolved enforcement cases are the labels (``confirmed_abuse`` = abuse, ``false_positive``
= legitimate, an upheld appeal overturns abuse).
"""

from __future__ import annotations

from sqlalchemy import Engine

from riskctl.cases import case_labels


def stored_labels(engine: Engine) -> dict[str, bool]:
    """event_id → is abuse, from resolved cases."""
    with engine.connect() as conn:
        return case_labels(conn)
