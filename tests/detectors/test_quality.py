"""Detection quality on synthetic data with planted outliers, and explanations that name them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from detectors.registry import build

from .conftest import ALGORITHM_NAMES, PARAMS
from .datasets import planted_outliers

MIN_AUC = 0.9


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    return planted_outliers()


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_roc_auc_on_planted_outliers(
    name: str, planted: tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]
) -> None:
    train, test, labels, names = planted
    detector = build(name, contamination=0.03, **PARAMS[name]).fit(train, names)
    auc = roc_auc_score(labels, detector.score_batch(test))
    assert auc >= MIN_AUC, f"{name}: ROC AUC {auc:.3f}"
    # The calibrated threshold catches most planted outliers and few inliers.
    flagged = detector.probability_batch(test) >= detector.threshold_
    assert flagged[labels == 1].mean() >= 0.5
    assert flagged[labels == 0].mean() <= 0.1


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_explanation_names_the_deviating_feature(
    name: str, planted: tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]
) -> None:
    train, _, _, names = planted
    detector = build(name, **PARAMS[name]).fit(train, names)
    median, spread = np.median(train, axis=0), train.std(axis=0)
    for j, feature in enumerate(names):
        row = median.copy()
        row[j] += 8.0 * spread[j]
        top = detector.explain(row, top=3)
        assert top[0][0] == feature, f"{name}: expected {feature} first, got {top}"
        assert top[0][1] > 0.0
        assert detector.score_one(row) > detector.score_one(median)
