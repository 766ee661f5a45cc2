"""Shared fitted detectors for the detector tests (fitting once keeps the suite fast)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from detectors.base import Detector
from detectors.registry import ALGORITHMS, build

# Fixed seeds everywhere: a model's version hash depends on what it learned.
PARAMS: dict[str, dict[str, Any]] = {
    "sklearn_iforest": {"random_state": 0},
    "iforest": {"random_state": 0},
    "ecod": {},
    "copod": {},
    "hbos": {"n_bins": 12},
}
ALGORITHM_NAMES = sorted(ALGORITHMS)


@pytest.fixture(scope="session")
def training_data() -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(99)
    X = rng.standard_normal((800, 6))
    X[:, 2] = rng.integers(0, 5, size=800)  # ties
    X[:, 5] = rng.exponential(size=800)  # skewed
    return X, [f"f{i}" for i in range(6)]


@pytest.fixture(scope="session")
def query_rows() -> np.ndarray:
    rng = np.random.default_rng(100)
    return rng.standard_normal((300, 6)) * 1.5


@pytest.fixture(scope="session")
def fitted(training_data: tuple[np.ndarray, list[str]]) -> dict[str, Detector]:
    """One fitted detector per algorithm; tests must not mutate them."""
    X, names = training_data
    return {name: build(name, **PARAMS[name]).fit(X, names) for name in ALGORITHM_NAMES}
