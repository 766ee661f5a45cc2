"""Training detectors from stored traffic: the features recorded at decision time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sqlalchemy import Engine, select

from riskctl.detection import DetectorSpec, row_of
from riskctl.models import Decision


def training_matrix(
    engine: Engine, spec: DetectorSpec, progress: Callable[[int], None] | None = None
) -> tuple[np.ndarray, int]:
    """The newest ``max_training_rows`` complete rows of the spec's kind (degraded checks,
    whose velocity features are missing, are skipped) and how many rows were skipped."""
    query = (
        select(Decision.features)
        .where(Decision.kind == spec.kind, Decision.degraded.is_(False))
        .order_by(Decision.created_at.desc())
        .limit(spec.max_training_rows)
    )
    rows: list[np.ndarray] = []
    skipped = 0
    with engine.connect() as conn:
        for (features,) in conn.execution_options(yield_per=2000).execute(query):
            row = row_of(spec, features)
            if row is None or not np.isfinite(row).all():
                skipped += 1
            else:
                rows.append(row)
            if progress is not None:
                progress(1)
    matrix = np.vstack(rows) if rows else np.empty((0, len(spec.features)))
    return matrix, skipped
