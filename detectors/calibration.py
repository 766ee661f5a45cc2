"""Calibration of raw scores to [0, 1]: the empirical CDF of the training scores.

Why the ECDF: it is monotone by construction, needs no distributional assumption (raw
scores of the five algorithms live on unrelated scales), is exact to store (the sorted
training scores) and costs one ``searchsorted`` (O(log n)) to apply. ``probability(s)`` is the
fraction of training rows whose raw score is <= s, so it reads as "this row is more anomalous
than p of the training set". It saturates at 1.0 above the highest training score; the raw
score still ranks such rows.

``threshold`` is chosen so that ``probability >= threshold`` flags the ``contamination``
fraction of the training set (exactly round(contamination * n) rows when the training scores
have no ties at the cut, more when they do).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def fit_calibration(training_scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """The calibration state: the training raw scores, sorted ascending."""
    scores = np.asarray(training_scores, dtype=np.float64).ravel()
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("calibration needs a non-empty set of finite training scores")
    return np.sort(scores)


def probability(sorted_scores: NDArray[np.float64], raw: NDArray[np.float64]) -> NDArray[np.float64]:
    """ECDF of the training scores at ``raw`` (vectorised)."""
    counts = np.searchsorted(sorted_scores, raw, side="right")
    return counts / float(sorted_scores.shape[0])


def probability_scalar(sorted_scores: NDArray[np.float64], raw: float) -> float:
    return float(np.searchsorted(sorted_scores, raw, side="right")) / float(sorted_scores.shape[0])


def threshold_for(sorted_scores: NDArray[np.float64], contamination: float) -> float:
    """Calibrated threshold flagging ~``contamination`` of the training rows."""
    n = int(sorted_scores.shape[0])
    flagged = min(n, max(1, round(contamination * n)))
    cut = sorted_scores[n - flagged]
    # probability(cut): every training row scoring >= cut has probability >= this value and
    # every row scoring below it has a strictly smaller one (cut is itself a training score).
    return probability_scalar(sorted_scores, float(cut))
