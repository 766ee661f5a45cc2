"""HBOS (PyOD): histogram-based outlier score, frozen as per-feature bin tables.

What is frozen: for each feature its bin edges and histogram densities (static ``n_bins`` or
PyOD's Birge-Rozenblac "auto" bins, possibly a different count per feature), stored flat
with offsets. Scoring is one binary search per feature over <= n_bins + 1 edges: flat in the
training-set size.

Exactness with ``pyod.models.hbos.HBOS.decision_function``:

* bin index = ``np.digitize(x, edges, right=True)`` = ``searchsorted(edges, x, 'left')``, so
  a value equal to the lowest edge (the training minimum) is "below range" (index 0), as in
  PyOD;
* below the first edge: if ``edges[0] - x <= (edges[1] - edges[0]) * tol`` it takes the first
  bin's value, else the minimum over the feature's bins; symmetrically above the last edge;
* a bin's value is ``log2(density + alpha)``, computed with numba for static bins (PyOD's
  static path is numba-compiled) and numpy for "auto" bins (PyOD's auto path is numpy);
* score = ``-sum_j value_j`` with numpy's pairwise summation order.

``explain`` returns ``-value_j`` per feature: how rare the row's bin is for that feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from ._kernels import histogram_scores, log2_shifted
from .base import Detector, FloatArray, array_of, non_finite_error, require

IndexArray = NDArray[np.int64]


class HBOSDetector(Detector):
    """``pyod.models.hbos.HBOS``; raw score = its ``decision_function``."""

    algorithm: ClassVar[str] = "hbos"
    reproduces: ClassVar[str] = "pyod HBOS.decision_function"
    state_arrays: ClassVar[tuple[str, ...]] = ("bin_edges_", "edge_ptr_", "hist_", "bin_ptr_")

    bin_edges_: FloatArray
    edge_ptr_: IndexArray
    hist_: FloatArray
    bin_ptr_: IndexArray

    def __init__(
        self,
        *,
        n_bins: int | Literal["auto"] = 10,
        alpha: float = 0.1,
        tol: float = 0.5,
        contamination: float = 0.1,
    ) -> None:
        super().__init__(contamination=contamination)
        self.n_bins = n_bins
        self.alpha = alpha
        self.tol = tol

    def _validate_params(self) -> None:
        super()._validate_params()
        if not (
            self.n_bins == "auto" or (isinstance(self.n_bins, int) and not isinstance(self.n_bins, bool))
        ):
            raise ValueError("n_bins must be an int >= 2 or 'auto'")
        if isinstance(self.n_bins, int) and self.n_bins < 2:
            raise ValueError("n_bins must be an int >= 2 or 'auto'")
        for name in ("alpha", "tol"):
            value = getattr(self, name)
            # PyOD's own check: the open interval.
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be a float in (0, 1)")

    def _fit_library(self, X: FloatArray) -> None:
        from pyod.models.hbos import HBOS

        model = HBOS(
            n_bins=self.n_bins, alpha=self.alpha, tol=self.tol, contamination=self.contamination
        ).fit(X)
        d = X.shape[1]
        if self.n_bins == "auto":  # ragged: one 1-D array per feature
            edges = [np.asarray(e, dtype=np.float64) for e in model.bin_edges_]
            hists = [np.asarray(h, dtype=np.float64) for h in model.hist_]
        else:  # (n_bins + 1, d) and (n_bins, d)
            edges = [np.asarray(model.bin_edges_[:, j], dtype=np.float64) for j in range(d)]
            hists = [np.asarray(model.hist_[:, j], dtype=np.float64) for j in range(d)]
        self.bin_edges_ = np.concatenate(edges)
        self.hist_ = np.concatenate(hists)
        self.edge_ptr_ = np.concatenate(([0], np.cumsum([len(e) for e in edges]))).astype(np.int64)
        self.bin_ptr_ = np.concatenate(([0], np.cumsum([len(h) for h in hists]))).astype(np.int64)

    def _state(self) -> dict[str, NDArray[Any]]:
        return {
            "bin_edges_": self.bin_edges_,
            "edge_ptr_": self.edge_ptr_,
            "hist_": self.hist_,
            "bin_ptr_": self.bin_ptr_,
        }

    def _set_state(self, state: Mapping[str, NDArray[Any]]) -> None:
        edges = array_of(state, "bin_edges_", np.float64, 1)
        edge_ptr = array_of(state, "edge_ptr_", np.int64, 1)
        hist = array_of(state, "hist_", np.float64, 1)
        bin_ptr = array_of(state, "bin_ptr_", np.int64, 1)
        d = self.n_features_in_
        require(
            edge_ptr.shape == (d + 1,) and bin_ptr.shape == (d + 1,), "bin pointers must have d + 1 entries"
        )
        require(edge_ptr[0] == 0 and bin_ptr[0] == 0, "bin pointers must start at 0")
        require(
            edge_ptr[-1] == edges.shape[0] and bin_ptr[-1] == hist.shape[0],
            "bin pointers must end at the sizes",
        )
        n_bins = np.diff(bin_ptr)
        require(
            bool(np.all(n_bins >= 1)) and bool(np.all(np.diff(edge_ptr) == n_bins + 1)),
            "each feature needs n_bins + 1 edges",
        )
        require(bool(np.isfinite(edges).all() and np.isfinite(hist).all()), "bins must be finite")
        require(bool(np.all(hist >= 0)), "histogram densities must be >= 0")
        for j in range(d):
            require(
                bool(np.all(np.diff(edges[edge_ptr[j] : edge_ptr[j + 1]]) >= 0)), "bin edges must be sorted"
            )
        self.bin_edges_, self.edge_ptr_, self.hist_, self.bin_ptr_ = edges, edge_ptr, hist, bin_ptr

    def _prepare(self) -> None:
        if self.n_bins == "auto":
            log_density = np.log2(self.hist_ + self.alpha)
        else:
            log_density = log2_shifted(self.hist_, float(self.alpha))
        self._log_density: FloatArray = np.ascontiguousarray(log_density)
        self._min_log_density: FloatArray = np.array(
            [log_density[a:b].min() for a, b in zip(self.bin_ptr_[:-1], self.bin_ptr_[1:], strict=True)]
        )

    def _evaluate(self, X: FloatArray) -> tuple[FloatArray, FloatArray]:
        scores, contrib = histogram_scores(
            X,
            self.bin_edges_,
            self.edge_ptr_,
            self._log_density,
            self.bin_ptr_,
            self._min_log_density,
            float(self.tol),
        )
        return scores, contrib

    def _score_matrix(self, X: FloatArray) -> FloatArray:
        return self._evaluate(X)[0]

    def _score_row(self, x: FloatArray) -> float:
        score = float(self._evaluate(x.reshape(1, -1))[0][0])
        if score != score:
            raise non_finite_error(x)
        return score

    def _contributions(self, x: FloatArray) -> FloatArray:
        return self._evaluate(x.reshape(1, -1))[1][0]
