"""Calibration: monotone, within [0, 1], and a threshold that flags ~contamination."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import Detector
from detectors.calibration import fit_calibration, probability, probability_scalar, threshold_for
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
    assert abs(flagged - contamination) <= 0.01


def closest_flag_rate(scores: np.ndarray, contamination: float) -> float:
    """The training flag rate nearest to contamination among 'score >= t' / 'score > t' sets."""
    rates = {np.mean(scores >= t) for t in scores} | {np.mean(scores > t) for t in scores}
    return min(rates, key=lambda r: (abs(r - contamination), -r))


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(
    scores=st.lists(st.one_of(st.integers(-3, 3).map(float), st.floats(-1e6, 1e6)), min_size=1, max_size=60),
    contamination=st.floats(0.001, 0.5),
)
def test_threshold_for_any_training_scores(scores: list[float], contamination: float) -> None:
    """Ties included: the flag set is >= or > the m-th highest score, whichever is closer."""
    ordered = fit_calibration(np.asarray(scores))
    threshold = threshold_for(ordered, contamination)
    p = probability(ordered, ordered)
    n = len(ordered)
    cut = ordered[n - min(n, max(1, round(contamination * n)))]
    flagged = p >= threshold
    assert np.array_equal(flagged, ordered >= cut) or np.array_equal(flagged, ordered > cut)
    rate = flagged.mean()
    assert abs(rate - contamination) <= abs(np.mean(ordered >= cut) - contamination)
    assert abs(rate - contamination) <= abs(np.mean(ordered > cut) - contamination)
    assert 0.0 < threshold <= 1.0
    # Whatever scores above every training score is flagged.
    assert probability(ordered, np.array([ordered[-1] + 1.0]))[0] >= threshold
    # Scalar and vectorised forms agree.
    assert [probability_scalar(ordered, s) for s in ordered] == list(p)


def test_ties_do_not_flag_normal_rows() -> None:
    """A model trained on constant data flags only what scores above it, not its twins."""
    detector = build("ecod").fit(np.full((100, 2), 3.0), ["a", "b"])
    assert detector.probability_one([3.0, 3.0]) < detector.threshold_
    assert detector.probability_one([3.0, 50.0]) >= detector.threshold_
    # Isolation trees cannot split constant data: every row ties, none is flagged.
    forest = build("sklearn_iforest", random_state=0).fit(np.full((100, 2), 3.0), ["a", "b"])
    assert forest.probability_one([3.0, 3.0]) < forest.threshold_


def test_fit_calibration_rejects_bad_scores() -> None:
    with pytest.raises(ValueError):
        fit_calibration(np.array([]))
    with pytest.raises(ValueError):
        fit_calibration(np.array([0.1, np.nan]))
