"""Detector scoring benchmark: frozen scorers vs the libraries, single row and batch.

    python bench/bench_detectors.py [--quick]

For each algorithm and training-set size (1k, 10k, 100k rows; 8 features; ``--quick`` stops
at 10k) it prints the median cost of one ``score_one`` / ``probability_one`` call, the
library's own single-row ``decision_function`` cost measured in the same run on the same
rows, and the per-row cost of scoring a 10k-row batch both ways. The last column is the
largest difference between our single-row scores and the library's on the timed rows.

Single-row timings cycle through 1,000 distinct rows: repeating one row lets the CPU's
branch predictor learn its path through the trees and flatters tree walks ~2x. ECOD/COPOD
in PyOD re-rank the whole training set on every call, so their library column grows with n;
their library batch call ranks the batch together with the training set, a different
semantics from scoring rows one by one (ours scores every row as if alone).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors.base import Detector  # noqa: E402
from detectors.registry import build  # noqa: E402

D = 8
BATCH_ROWS = 10_000
DISTINCT_ROWS = 1_000


@dataclass(frozen=True)
class Case:
    algorithm: str
    params: dict[str, Any]
    library: Callable[[], Any]
    # The library's single-row decision_function, mapped to our score (same direction).
    to_ours: Callable[[Any, np.ndarray], np.ndarray]


def _sklearn_iforest() -> Any:
    from sklearn.ensemble import IsolationForest

    return IsolationForest(random_state=0)


def _pyod(name: str, **params: Any) -> Callable[[], Any]:
    def make() -> Any:
        if name == "IForest":
            from pyod.models.iforest import IForest

            return IForest(random_state=0, **params)
        if name == "ECOD":
            from pyod.models.ecod import ECOD

            return ECOD(**params)
        if name == "COPOD":
            from pyod.models.copod import COPOD

            return COPOD(**params)
        from pyod.models.hbos import HBOS

        return HBOS(**params)

    return make


def _same(_model: Any, decision: np.ndarray) -> np.ndarray:
    return decision


def _sklearn_to_ours(model: Any, decision: np.ndarray) -> np.ndarray:
    return -(decision + model.offset_)  # ours = -score_samples = -(decision_function + offset_)


CASES = [
    Case("sklearn_iforest", {"random_state": 0}, _sklearn_iforest, _sklearn_to_ours),
    Case("iforest", {"random_state": 0}, _pyod("IForest"), _same),
    Case("ecod", {}, _pyod("ECOD"), _same),
    Case("copod", {}, _pyod("COPOD"), _same),
    Case("hbos", {}, _pyod("HBOS"), _same),
]


def make_data(n: int, seed: int) -> np.ndarray:
    """Correlated Gaussian features, one small-integer column (ties), one skewed column."""
    rng = np.random.default_rng(seed)
    mixing = np.eye(D) + 0.3 * rng.standard_normal((D, D))
    X = rng.standard_normal((n, D)) @ mixing.T
    X[:, 2] = rng.poisson(3.0, size=n)
    X[:, 5] = rng.lognormal(size=n)
    return X


def fast_call_us(
    fn: Callable[[np.ndarray], Any], rows: np.ndarray, blocks: int, per_block: int = 200
) -> float:
    """Median over blocks of the mean per-call time, cycling through distinct rows."""
    row_list = list(rows)
    count = len(row_list)
    for row in row_list[:50]:  # warm-up (and any first-call compilation)
        fn(row)
    samples = []
    position = 0
    for _ in range(blocks):
        chunk = [row_list[(position + k) % count] for k in range(per_block)]
        position += per_block
        start = time.perf_counter_ns()
        for row in chunk:
            fn(row)
        samples.append((time.perf_counter_ns() - start) / per_block / 1e3)
    return median(samples)


def library_call_us(
    model: Any, rows: np.ndarray, budget_s: float, max_calls: int
) -> tuple[float, np.ndarray, int]:
    """Median single-row decision_function time (at least 3 calls), and the values returned."""
    model.decision_function(rows[:1])  # warm-up (PyOD's numba kernels compile on first use)
    times, values = [], []
    deadline = time.perf_counter() + budget_s
    for i, row in enumerate(rows[:max_calls]):
        start = time.perf_counter_ns()
        values.append(model.decision_function(row.reshape(1, -1))[0])
        times.append((time.perf_counter_ns() - start) / 1e3)
        if i >= 2 and time.perf_counter() > deadline:
            break
    return median(times), np.asarray(values), len(times)


def best_batch_us(fn: Callable[[np.ndarray], Any], batch: np.ndarray, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn(batch)
        best = min(best, (time.perf_counter_ns() - start) / 1e3)
    return best / len(batch)


def run(sizes: list[int], quick: bool) -> list[dict[str, Any]]:
    names = [f"f{i}" for i in range(D)]
    queries = make_data(DISTINCT_ROWS, seed=2) * 1.3
    batch = make_data(BATCH_ROWS, seed=3) * 1.3
    blocks = 30 if quick else 100
    results = []
    for n in sizes:
        X = make_data(n, seed=1)
        for case in CASES:
            start = time.perf_counter()
            detector: Detector = build(case.algorithm, **case.params).fit(X, names)
            fit_s = time.perf_counter() - start
            library = case.library().fit(X)
            one = fast_call_us(detector.score_one, queries, blocks)
            prob = fast_call_us(detector.probability_one, queries, blocks)
            lib_one, lib_values, lib_calls = library_call_us(
                library, queries, budget_s=0.4 if quick else 1.0, max_calls=200 if quick else 500
            )
            ours = np.array([detector.score_one(row) for row in queries[:lib_calls]])
            max_diff = float(np.max(np.abs(ours - case.to_ours(library, lib_values))))
            batch_us = best_batch_us(detector.score_batch, batch, repeats=3)
            lib_batch_us = best_batch_us(library.decision_function, batch, repeats=1)
            results.append(
                {
                    "algorithm": case.algorithm,
                    "n": n,
                    "fit_s": fit_s,
                    "one_us": one,
                    "prob_us": prob,
                    "lib_one_us": lib_one,
                    "lib_calls": lib_calls,
                    "batch_us": batch_us,
                    "lib_batch_us": lib_batch_us,
                    "max_diff": max_diff,
                }
            )
            print(
                f"  {case.algorithm:16s} n={n:>7,}  score_one {one:6.2f} us  library {lib_one:10.1f} us",
                file=sys.stderr,
                flush=True,
            )
    return results


def render(results: list[dict[str, Any]], elapsed: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Detector scoring, d={D} features (median us; batch = {BATCH_ROWS:,} rows)")
    for header, justify in [
        ("detector", "left"),
        ("train rows", "right"),
        ("fit s", "right"),
        ("score_one", "right"),
        ("probability_one", "right"),
        ("library 1 row", "right"),
        ("speed-up", "right"),
        ("batch /row", "right"),
        ("library batch /row", "right"),
        ("max |diff|", "right"),
    ]:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    previous = None
    for r in results:
        if previous is not None and r["n"] != previous:
            table.add_section()
        previous = r["n"]
        table.add_row(
            r["algorithm"],
            f"{r['n']:,}",
            f"{r['fit_s']:.2f}",
            f"{r['one_us']:.2f}",
            f"{r['prob_us']:.2f}",
            f"{r['lib_one_us']:,.1f} ({r['lib_calls']})",
            f"{r['lib_one_us'] / r['one_us']:,.0f}x",
            f"{r['batch_us']:.2f}",
            f"{r['lib_batch_us']:.2f}",
            f"{r['max_diff']:.1e}",
        )
    console = Console(width=160)
    console.print(table)
    import numba
    import pyod
    import sklearn

    console.print(
        f"python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
        f"pyod {pyod.__version__}, numba {numba.__version__}, {os.cpu_count()} CPUs; "
        f"library 1 row: (n calls timed); total {elapsed:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k training rows, fewer repetitions")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    started = time.perf_counter()
    results = run(sizes, args.quick)
    render(results, time.perf_counter() - started)


if __name__ == "__main__":
    main()
