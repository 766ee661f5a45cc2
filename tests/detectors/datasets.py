"""Fixed-seed datasets for the detector tests, chosen to hit the awkward cases.

Each dataset comes with query rows: training rows (ties with training values), fresh rows,
rows outside the training range on every side, and every distinct training value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FloatArray = np.ndarray


@dataclass(frozen=True)
class Dataset:
    name: str
    X: FloatArray
    queries: FloatArray

    @property
    def names(self) -> list[str]:
        return [f"f{i}" for i in range(self.X.shape[1])]


def _queries(X: FloatArray, rng: np.random.Generator, fresh: int = 25) -> FloatArray:
    d = X.shape[1]
    lo, hi = X.min(axis=0), X.max(axis=0)
    width = np.maximum(hi - lo, 1.0)
    centre, spread = X.mean(axis=0), X.std(axis=0) + 1.0
    parts = [
        X[rng.choice(X.shape[0], size=min(20, X.shape[0]), replace=False)],  # exact training rows
        centre + spread * rng.standard_normal((fresh, d)) * 2.0,  # fresh rows
        np.vstack([lo, hi, lo - width * 0.01, hi + width * 0.01]),  # at and just past the range
        np.vstack([lo - width * 0.3, hi + width * 0.3, lo - 1e6, hi + 1e6]),  # well outside
    ]
    # Every distinct training value of each column, the rest of the row at the median.
    median = np.median(X, axis=0)
    for j in range(d):
        values = np.unique(X[:, j])[:12]
        block = np.tile(median, (len(values), 1))
        block[:, j] = values
        parts.append(block)
    return np.vstack(parts)


def make_datasets() -> list[Dataset]:
    rng = np.random.default_rng(20240611)
    out: list[Dataset] = []

    X = rng.standard_normal((400, 5))
    out.append(Dataset("gaussian", X, _queries(X, rng)))

    # Heavy ties: small integers, plus one skewed continuous column.
    X = rng.integers(0, 4, size=(300, 4)).astype(np.float64)
    X[:, 3] = rng.exponential(size=300)
    out.append(Dataset("ties", X, _queries(X, rng)))

    # Constant columns (one at zero, one not), and a rounded column.
    X = rng.standard_normal((250, 4))
    X[:, 1] = 0.0
    X[:, 2] = 7.25
    X[:, 3] = np.round(X[:, 3], 1)
    out.append(Dataset("constant_columns", X, _queries(X, rng)))

    # Large offset, small spread: the case where naive moment updates lose precision.
    X = 1.7e9 + rng.standard_normal((300, 3)) * 1e-2
    out.append(Dataset("large_offset", X, _queries(X, rng)))

    # 0/1 flags, one at 150/149: scoring a 1 makes it exactly 150/150, skewness exactly 0.
    X = rng.integers(0, 2, size=(299, 3)).astype(np.float64)
    X[:, 0] = 0.0
    X[:150, 0] = 1.0
    out.append(Dataset("balanced_flag", X, _queries(X, rng)))

    X = rng.exponential(size=(300, 1))
    out.append(Dataset("one_feature", X, _queries(X, rng)))
    return out


DATASETS = make_datasets()
DATASET_IDS = [d.name for d in DATASETS]


def planted_outliers(
    n_inliers: int = 1500, n_outliers: int = 40, d: int = 8, seed: int = 7
) -> tuple[FloatArray, FloatArray, np.ndarray, list[str]]:
    """Correlated Gaussian inliers + outliers that deviate strongly in two or three features.

    Two or three, not one: ECOD/COPOD/HBOS sum per-feature terms that saturate just past the
    training range, so a single deviating feature lifts the score only modestly above the
    noise of the other features (their ROC AUC is ~0.9 there; the forests' ~0.95).

    Returns (train, test, test_labels, feature_names); both sets hold outliers (1 in labels).
    """
    rng = np.random.default_rng(seed)
    mixing = np.eye(d) + 0.3 * rng.standard_normal((d, d))

    def inliers(n: int) -> FloatArray:
        return rng.standard_normal((n, d)) @ mixing.T

    def outliers(n: int) -> FloatArray:
        rows = inliers(n)
        for row in rows:
            k = rng.integers(2, 4)
            cols = rng.choice(d, size=k, replace=False)
            row[cols] += rng.choice([-1.0, 1.0], size=k) * rng.uniform(5.0, 9.0, size=k)
        return rows

    train = np.vstack([inliers(n_inliers), outliers(n_outliers)])
    test = np.vstack([inliers(n_inliers // 2), outliers(n_outliers)])
    labels = np.r_[np.zeros(n_inliers // 2, dtype=int), np.ones(n_outliers, dtype=int)]
    return train, test, labels, [f"f{i}" for i in range(d)]
