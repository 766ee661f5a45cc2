"""Frozen empirical-CDF tail scores: the machinery ECOD and COPOD share.

What PyOD does for one new row x (``decision_function``, ``n_jobs=1``): it concatenates the
training matrix and x, recomputes per-column ECDFs of the (n + 1) rows and the sign of each
column's skewness, and keeps x's row. Re-deriving all that per call is O(n log n); the same
numbers come from frozen state in O(d log n):

* ECDF. PyOD's ``column_ecdf`` gives a value the probability ``linspace(1/N, 1, N)[k]`` with
  N = n + 1 and k the index of the last element of its tie group in the sorted column. x is
  part of the column, so for the left tail k = #(train <= x) and for the right tail (PyOD
  negates X) k = #(train >= x) = n - #(train < x). Both counts are binary searches in the
  sorted training column; ``-log`` of the N probabilities is a precomputed table, built with
  the same numpy calls PyOD makes, so table entries are bit-identical to PyOD's.
* Skewness sign of train + x, for every column. ECOD only distinguishes "exactly zero" (or
  NaN, zeroed by ``nan_to_num``) from "non-zero"; COPOD needs the sign. The centred moments
  of train + x follow in O(1) from frozen training moments. For d >= 2 numpy's ``mean(axis=0)``
  over a C-ordered matrix is a sequential sum, so scipy's mean of train + x is exactly
  ``fl(fl(sum_train + x) / N)``: the estimate is centred on scipy's own mean and its error
  relative to scipy's result is bounded by ~N eps times the scale of the moments. When the
  estimate is outside that bound (always, except for columns whose skewness with x is zero to
  ~1e-10) its sign is certain. Otherwise the sign is looked up in a table computed at fit time
  for the training values in that zone (exactly symmetric discrete columns: a 0/1 flag at
  50/50 with x, a constant column with x equal to it, ...), and only a value outside the table
  is recomputed exactly, replicating scipy's arithmetic on train + x: O(n d), and in practice
  never hit on real data. For d = 1 numpy sums pairwise, so the bound also covers the error of
  scipy's mean (wider zone, same exactness).

``score_batch`` scores each row as if it came alone (train + that row), i.e. as
``decision_function(X[i:i+1])``. PyOD's batch call instead builds one ECDF over train + the
whole batch, so a row's score there depends on which other rows share the call; we keep the
single-row semantics everywhere so that serving one row or many gives the same answer.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ._kernels import sequential_column_sums, skew_signs_for_values, tail_scores
from .base import Detector, FloatArray, array_of, non_finite_error, require

Int8Array = NDArray[np.int8]

EPS = float(np.finfo(np.float64).eps)
UNKNOWN = 2  # skewness sign too close to call in O(1)
# At most this many ambiguous training values per column get a precomputed exact sign
# (the most frequent ones); each costs one O(n d) computation at fit time.
MAX_CACHED_PER_COLUMN = 32

# Columns of the per-feature statistics matrix.
_TSUM, _MU, _S1, _S2, _S3, _A1, _A3, _MAXD, _SUMABS = range(9)
_N_STATS = 9


def exact_skew_signs(train: FloatArray, row: FloatArray) -> Int8Array:
    """``np.sign(pyod.models.ecod.skew(concat(train, row)))``, replicating scipy's arithmetic.

    Same numpy operations in the same order as ``scipy.stats.skew`` (bias=True), without its
    precision-loss warning (warnings filters are process-global, so toggling them here would
    not be thread-safe; ``np.errstate`` is). O(n d): only for the rare undecided rows.
    """
    a = np.concatenate((train, row.reshape(1, -1)), axis=0)
    with np.errstate(all="ignore"):
        mean = np.mean(a, axis=0, keepdims=True)
        dev = a - mean
        m2 = np.mean(dev**2, axis=0)
        cube = dev.copy()
        cube = cube**2
        cube *= dev
        m3 = np.mean(cube, axis=0)
        zero = m2 <= (EPS * mean[0]) ** 2
        skewness = np.where(zero, np.nan, m3 / m2**1.5)
    return np.sign(np.nan_to_num(skewness)).astype(np.int8)


class _Index:
    """Derived, read-only scoring structures for one training matrix."""

    def __init__(self, train: FloatArray) -> None:
        n, d = train.shape
        big_n = n + 1
        self.train = train
        self.sorted_cols: FloatArray = np.ascontiguousarray(np.sort(train, axis=0).T)
        # PyOD's column_ecdf probabilities and U = -1 * log(p), computed by the same numpy
        # calls on the same (N, d) layout so every table entry equals PyOD's bit for bit.
        probabilities = np.linspace(np.ones(d) / big_n, np.ones(d), big_n)
        self.neglog: FloatArray = np.ascontiguousarray((-1 * np.log(probabilities))[:, 0])
        tsum = np.add.reduce(train, axis=0)
        mu = tsum / n
        dev = train - mu
        adev = np.abs(dev)
        stats = np.empty((d, _N_STATS))
        stats[:, _TSUM] = tsum
        stats[:, _MU] = mu
        stats[:, _S1] = dev.sum(axis=0)
        stats[:, _S2] = (dev * dev).sum(axis=0)
        stats[:, _S3] = (dev * dev * dev).sum(axis=0)
        stats[:, _A1] = adev.sum(axis=0)
        stats[:, _A3] = (adev * adev * adev).sum(axis=0)
        stats[:, _MAXD] = adev.max(axis=0)
        stats[:, _SUMABS] = np.abs(train).sum(axis=0)
        self.stats: FloatArray = np.ascontiguousarray(stats)
        self.exact_mean = d >= 2 and self._mean_is_sequential(train, tsum)

    @staticmethod
    def _mean_is_sequential(train: FloatArray, tsum: FloatArray) -> bool:
        """Check, on this very matrix, that scipy's mean of train + x is fl(fl(tsum + x) / N)."""
        if not np.array_equal(sequential_column_sums(train), tsum):
            return False
        big_n = train.shape[0] + 1
        rng = np.random.default_rng(0)
        spread = np.abs(train).max(axis=0) + 1.0
        for probe in (train[-1], train[0] + spread * rng.uniform(-1, 1, train.shape[1]) / 3.0):
            concatenated = np.concatenate((train, probe.reshape(1, -1)), axis=0)
            if not np.array_equal(np.mean(concatenated, axis=0), (tsum + probe) / big_n):
                return False
        return True


class TailProbabilityDetector(Detector):
    """Base of ECOD and COPOD (they differ only in how the tails are combined)."""

    state_arrays: ClassVar[tuple[str, ...]] = (
        "train_",
        "skew_cache_values_",
        "skew_cache_signs_",
        "skew_cache_ptr_",
    )
    _copod: ClassVar[bool] = False

    train_: FloatArray
    skew_cache_values_: FloatArray
    skew_cache_signs_: Int8Array
    skew_cache_ptr_: NDArray[np.int64]

    def __init__(self, *, contamination: float = 0.1) -> None:
        super().__init__(contamination=contamination)

    def _library_model(self) -> Any:
        raise NotImplementedError

    def _fit_library(self, X: FloatArray) -> None:
        with warnings.catch_warnings():
            # PyOD's fit scores the training set through scipy.stats.skew, which warns about
            # precision loss on a constant non-zero column. Those training scores are thrown
            # away (calibration uses the exact frozen scorer below), so the warning is noise.
            # catch_warnings swaps process-global filters: fine for a one-off fit, which is
            # why nothing on the scoring path uses it.
            warnings.filterwarnings(
                "ignore", message="Precision loss occurred in moment calculation", category=RuntimeWarning
            )
            model = self._library_model().fit(X)
        # What ECOD/COPOD "learn" is the training matrix itself (PyOD keeps it as X_train).
        self.train_ = np.ascontiguousarray(model.X_train, dtype=np.float64)
        self._index = _Index(self.train_)
        self._build_skew_cache()

    def _build_skew_cache(self) -> None:
        """Exact signs for the training values whose sign the O(1) estimate cannot certify."""
        index = self._index
        train = self.train_
        n, d = train.shape
        per_column: list[FloatArray] = []
        for j in range(d):
            values, counts = np.unique(train[:, j], return_counts=True)
            estimate = skew_signs_for_values(values, index.stats[j], float(n), index.exact_mean)
            undecided = np.flatnonzero(estimate == UNKNOWN)
            # Most frequent first: those are the values most likely to be seen when serving.
            undecided = undecided[np.argsort(-counts[undecided], kind="stable")][:MAX_CACHED_PER_COLUMN]
            per_column.append(np.sort(values[undecided]))
        signs = [np.zeros(len(v), dtype=np.int8) for v in per_column]
        # One O(n d) exact computation yields all d columns' signs, so probe the k-th
        # undecided value of every column at once.
        filler = np.median(train, axis=0)
        for k in range(max((len(v) for v in per_column), default=0)):
            probe = filler.copy()
            for j, values in enumerate(per_column):
                if k < len(values):
                    probe[j] = values[k]
            exact = exact_skew_signs(train, probe)
            for j, values in enumerate(per_column):
                if k < len(values):
                    signs[j][k] = exact[j]
        self.skew_cache_values_ = np.concatenate(per_column) if per_column else np.zeros(0)
        self.skew_cache_signs_ = np.concatenate(signs) if signs else np.zeros(0, dtype=np.int8)
        self.skew_cache_ptr_ = np.concatenate(([0], np.cumsum([len(v) for v in per_column]))).astype(np.int64)

    def _state(self) -> dict[str, NDArray[Any]]:
        return {
            "train_": self.train_,
            "skew_cache_values_": self.skew_cache_values_,
            "skew_cache_signs_": self.skew_cache_signs_,
            "skew_cache_ptr_": self.skew_cache_ptr_,
        }

    def _set_state(self, state: Mapping[str, NDArray[Any]]) -> None:
        train = array_of(state, "train_", np.float64, 2)
        values = array_of(state, "skew_cache_values_", np.float64, 1)
        signs = array_of(state, "skew_cache_signs_", np.int8, 1)
        ptr = array_of(state, "skew_cache_ptr_", np.int64, 1)
        d = self.n_features_in_
        require(train.shape[1] == d and train.shape[0] >= 2, "train_ must be (n >= 2, d)")
        require(bool(np.isfinite(train).all()), "train_ must be finite")
        require(
            ptr.shape == (d + 1,) and ptr[0] == 0 and ptr[-1] == values.shape[0], "bad skew cache pointers"
        )
        require(bool(np.all(np.diff(ptr) >= 0)) and signs.shape == values.shape, "bad skew cache layout")
        require(bool(np.all(np.abs(signs) <= 1)), "skew cache signs must be -1, 0 or 1")
        for j in range(d):  # lookups binary-search each column's run
            run = values[ptr[j] : ptr[j + 1]]
            require(bool(np.all(np.diff(run) > 0)), "skew cache values must be sorted")
        self.train_, self.skew_cache_values_, self.skew_cache_signs_, self.skew_cache_ptr_ = (
            train,
            values,
            signs,
            ptr,
        )

    def _prepare(self) -> None:
        index = getattr(self, "_index", None)
        if index is None or index.train is not self.train_:
            self._index = _Index(self.train_)
        self._no_forced = np.zeros((0, self.train_.shape[1]), dtype=np.int8)

    def _evaluate(self, X: FloatArray) -> tuple[FloatArray, FloatArray]:
        index = self._index
        args = (
            index.sorted_cols,
            index.neglog,
            index.stats,
            index.exact_mean,
            self.skew_cache_values_,
            self.skew_cache_signs_,
            self.skew_cache_ptr_,
            self._copod,
        )
        scores, contrib, status = tail_scores(X, *args, self._no_forced)
        if status.any():
            bad = np.flatnonzero(status == 1)
            if bad.size:
                raise non_finite_error(X[bad[0]])
            for i in np.flatnonzero(status == 2):  # rare: decide the signs exactly, O(n d)
                row = X[i : i + 1]
                forced = exact_skew_signs(self.train_, row[0]).reshape(1, -1)
                one_score, one_contrib, _ = tail_scores(row, *args, forced)
                scores[i] = one_score[0]
                contrib[i] = one_contrib[0]
        return scores, contrib

    def _score_matrix(self, X: FloatArray) -> FloatArray:
        return self._evaluate(X)[0]

    def _score_row(self, x: FloatArray) -> float:
        return float(self._evaluate(x.reshape(1, -1))[0][0])

    def _contributions(self, x: FloatArray) -> FloatArray:
        """Per-feature outlyingness O_j = the tail term PyOD sums into the score."""
        return self._evaluate(x.reshape(1, -1))[1][0]
