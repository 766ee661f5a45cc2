"""One fitted detector scored from 8 threads at once gives the sequential answers."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from detectors.base import Detector
from detectors.ecod import ECODDetector

from .conftest import ALGORITHM_NAMES

THREADS = 8


def answers(detector: Detector, rows: np.ndarray, order: np.ndarray, some: int) -> dict[str, Any]:
    return {
        "one": {int(i): detector.score_one(rows[i]) for i in order},
        "probability": {int(i): detector.probability_one(rows[i]) for i in order[:some]},
        "explain": {int(i): detector.explain(rows[i]) for i in order[:some]},
        "batch": detector.score_batch(rows),
    }


def run_concurrently(detector: Detector, rows: np.ndarray) -> None:
    expected = answers(detector, rows, np.arange(len(rows)), len(rows))
    barrier = threading.Barrier(THREADS)
    results: list[dict[str, Any] | BaseException] = [RuntimeError("no result")] * THREADS

    def work(k: int) -> None:
        try:
            barrier.wait()
            order = np.roll(np.arange(len(rows)), 37 * k)  # each thread in a different order
            results[k] = answers(detector, rows, order, 40)
        except BaseException as exc:  # re-raised in the main thread
            results[k] = exc

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
        assert result["one"] == expected["one"]
        assert result["probability"] == {i: expected["probability"][i] for i in result["probability"]}
        assert result["explain"] == {i: expected["explain"][i] for i in result["explain"]}
        assert np.array_equal(result["batch"], expected["batch"])


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_concurrent_scoring(name: str, fitted: dict[str, Detector], query_rows: np.ndarray) -> None:
    run_concurrently(fitted[name], query_rows[:120])


def test_concurrent_scoring_through_the_exact_skewness_path() -> None:
    """Rows that need the O(n d) exact skewness computation, from 8 threads."""
    rng = np.random.default_rng(21)
    X = np.c_[np.repeat([0.0, 2.0], 150), rng.standard_normal(300)]
    detector = ECODDetector().fit(X, ["sym", "noise"])
    rows = np.c_[np.ones(40), rng.standard_normal(40)]  # x = 1.0 makes "sym" exactly symmetric
    run_concurrently(detector, rows)
