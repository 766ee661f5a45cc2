"""Calibration of raw scores to [0, 1]: the mid-rank empirical CDF of the training scores.

``probability(s) = (#training scores < s + #training scores <= s) / (2 n)``, i.e. the
fraction of training rows scoring below s, ties counted half. Why:

* monotone by construction, no distributional assumption (the five algorithms' raw scores
  live on unrelated scales), exact to store (the sorted training scores) and one pair of
  binary searches (O(log n)) to apply;
* it reads as "this row is more anomalous than p of the training set";
* unlike the plain ECDF (#<= s / n) it tells a score *equal* to a training score from one
  *above* it. That matters when training scores tie (discrete features, HBOS bins, a
  constant feature): with the plain ECDF a threshold at a tied value can only flag the whole
  tie group, so a model trained on constant data would flag every row, normal ones included.

Above the highest training score the probability is 1.0 (it saturates; the raw score still
ranks such rows). Between training scores it equals the plain ECDF.

``threshold_for`` picks, among the flag sets a threshold can express, the one closest to
``contamination`` of the training rows: with m = round(contamination * n) and ``cut`` the
m-th highest training score, either every row scoring >= cut or every row scoring > cut
(whichever flags a fraction closer to ``contamination``; >= cut on a tie). Without ties at
the cut that flags exactly m training rows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._kernels import count_less, count_less_equal


def fit_calibration(training_scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """The calibration state: the training raw scores, sorted ascending."""
    scores = np.asarray(training_scores, dtype=np.float64).ravel()
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("calibration needs a non-empty set of finite training scores")
    return np.sort(scores)


def probability(sorted_scores: NDArray[np.float64], raw: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mid-rank ECDF of the training scores at ``raw`` (vectorised)."""
    below = np.searchsorted(sorted_scores, raw, side="left")
    at_or_below = np.searchsorted(sorted_scores, raw, side="right")
    return (below + at_or_below) / (2.0 * sorted_scores.shape[0])


def probability_scalar(sorted_scores: NDArray[np.float64], raw: float) -> float:
    n = sorted_scores.shape[0]
    below = count_less(sorted_scores, 0, n, raw)
    at_or_below = count_less_equal(sorted_scores, 0, n, raw)
    return (below + at_or_below) / (2.0 * n)


def threshold_for(sorted_scores: NDArray[np.float64], contamination: float) -> float:
    """Calibrated threshold whose training flag rate is closest to ``contamination``."""
    n = int(sorted_scores.shape[0])
    wanted = min(n, max(1, round(contamination * n)))
    cut = float(sorted_scores[n - wanted])
    below = int(np.searchsorted(sorted_scores, cut, side="left"))
    at_or_below = int(np.searchsorted(sorted_scores, cut, side="right"))
    flag_at_or_above = (n - below) / n  # threshold probability(cut)
    flag_above = (n - at_or_below) / n  # threshold #<=cut / n: probability just above cut
    # probability(s) >= (below + at_or_below) / 2n  <=>  s >= cut, and
    # probability(s) >= at_or_below / n           <=>  s > cut (the ties at cut score less).
    if abs(flag_above - contamination) < abs(flag_at_or_above - contamination):
        return at_or_below / n
    return (below + at_or_below) / (2.0 * n)
