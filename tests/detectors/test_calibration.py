"""Calibration: monotone, within [0, 1], and a threshold that flags ~contamination."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import Detector
from detectors.calibration import fit_calibration, probability, threshold_for
from detectors.registry import build

from .conftest import ALGORITHM_NAMES, PARAMS


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_probability_is_monotone_in_the_raw_score(
    name: str, fitted: dict[str, Detector], query_rows: np.ndarray
) -> None:
    detector = fitted[name]
    far = query_rows * 50.0  # well beyond the training range too
    rows = np.vstack([query_rows, far])
    raw = detector.score_batch(rows)
    p = detector.probability_batch(rows)
    assert np.all((p >= 0.0) & (p <= 1.0))
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(p[order]) >= 0.0)
    assert p[np.argmax(raw)] == 1.0 or raw.max() < detector.calibration_scores_[-1]


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
@pytest.mark.parametrize("contamination", [0.01, 0.05, 0.2])
def test_threshold_flags_contamination_of_training(
    name: str, contamination: float, training_data: tuple[np.ndarray, list[str]]
) -> None:
    X, names = training_data
    detector = build(name, contamination=contamination, **PARAMS[name]).fit(X, names)
    flagged = np.mean(detector.probability_batch(X) >= detector.threshold_)
    # round(contamination * n) rows at the cut, plus any rows tied with the cut score.
    assert contamination <= flagged + 0.5 / len(X)
    assert flagged <= contamination + 0.02


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    scores=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
    contamination=st.floats(0.001, 0.5),
)
def test_threshold_for_any_training_scores(scores: list[float], contamination: float) -> None:
    """Threshold invariant, ties included: flags >= round(c n) rows, and only rows at or above the cut."""
    ordered = fit_calibration(np.asarray(scores))
    threshold = threshold_for(ordered, contamination)
    p = probability(ordered, ordered)
    n = len(ordered)
    wanted = min(n, max(1, round(contamination * n)))
    flagged = p >= threshold
    assert flagged.sum() >= wanted
    cut = ordered[n - wanted]
    assert np.array_equal(flagged, ordered >= cut)
    assert 0.0 < threshold <= 1.0


def test_fit_calibration_rejects_bad_scores() -> None:
    with pytest.raises(ValueError):
        fit_calibration(np.array([]))
    with pytest.raises(ValueError):
        fit_calibration(np.array([0.1, np.nan]))
