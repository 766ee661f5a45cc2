"""Isolation Forest, trained by scikit-learn (directly or through PyOD), scored frozen.

What is frozen: every tree's nodes packed into flat arrays (left/right child, split feature
in the caller's column numbering, split threshold, training samples per node) plus
``max_samples_`` and, for PyOD, ``offset_``. Scoring walks all trees for a row in one
compiled loop: cost ~ n_estimators x depth (depth <= ceil(log2(max_samples)) = 8 by
default), independent of the training-set size.

Exactness with scikit-learn (``IsolationForest.score_samples``):

* trees compare the row cast to float32 (sklearn validates X to float32 before ``apply``)
  against float64 thresholds: ``go left iff float64(float32(x[f])) <= threshold``;
* a leaf contributes ``depth + c(n_node_samples) - 1`` (root depth 1), c being sklearn's
  average path length with c(1) = 0 and c(2) = 1, summed over trees in tree order;
* score = 2 ** (-(sum / (n_estimators * c(max_samples_)))), 0.5 if that denominator is 0;
* with ``max_features < 1`` tree feature indices refer to the tree's feature subset and are
  mapped back to the caller's columns.

Sign convention:

* ``IsolationForestDetector`` (scikit-learn) scores ``-score_samples(x)``: the anomaly score
  s(x, n) of Liu et al. in (0, 1], 0.5 = neutral. This is ``-decision_function(x)`` shifted by
  the constant ``offset_``; it is chosen because it does not depend on contamination.
* ``PyODIForestDetector`` scores exactly ``pyod.models.iforest.IForest.decision_function``,
  i.e. ``-(score_samples(x) - offset_)`` with the contamination-derived ``offset_``.

Explanation: the forest has no additive per-feature decomposition, so ``explain`` measures
what each feature does to this row: contribution_j = score(x) - score(x with x_j replaced by
the training median of feature j). Positive = that feature's value makes the row more
isolated. It costs d + 1 compiled tree walks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from ._kernels import forest_path_lengths
from .base import Detector, FloatArray, array_of, non_finite_error, require

IntArray = NDArray[np.int32]


def average_path_length(n_samples: NDArray[Any]) -> FloatArray:
    """scikit-learn's ``_average_path_length``, same float operations (for exactness)."""
    n = np.asarray(n_samples).reshape((1, -1))
    out = np.zeros(n.shape)
    mask_1 = n <= 1
    mask_2 = n == 2
    rest = ~np.logical_or(mask_1, mask_2)
    out[mask_1] = 0.0
    out[mask_2] = 1.0
    out[rest] = 2.0 * (np.log(n[rest] - 1.0) + np.euler_gamma) - 2.0 * (n[rest] - 1.0) / n[rest]
    return out.reshape(np.asarray(n_samples).shape)


class _FrozenForest(Detector):
    """Shared by the scikit-learn and PyOD flavours (same trees, different sign/offset)."""

    state_arrays: ClassVar[tuple[str, ...]] = (
        "tree_roots_",
        "node_left_",
        "node_right_",
        "node_feature_",
        "node_threshold_",
        "node_samples_",
        "max_samples_",
        "offset_",
        "median_",
    )
    _pyod_sign: ClassVar[bool] = False

    tree_roots_: IntArray
    node_left_: IntArray
    node_right_: IntArray
    node_feature_: IntArray
    node_threshold_: FloatArray
    node_samples_: NDArray[np.int64]
    max_samples_: int
    offset_: float
    median_: FloatArray

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        max_samples: int | float | Literal["auto"] = "auto",
        max_features: int | float = 1.0,
        bootstrap: bool = False,
        random_state: int | None = None,
        contamination: float = 0.1,
    ) -> None:
        super().__init__(contamination=contamination)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.random_state = random_state

    def _validate_params(self) -> None:
        super()._validate_params()
        # Params go into a JSON header, so only plain values (no RandomState objects).
        if self.random_state is not None and (
            isinstance(self.random_state, bool) or not isinstance(self.random_state, int)
        ):
            raise ValueError("random_state must be an int or None (it is stored in the model file)")
        if (
            isinstance(self.n_estimators, bool)
            or not isinstance(self.n_estimators, int)
            or self.n_estimators < 1
        ):
            raise ValueError("n_estimators must be a positive int")
        if not (self.max_samples == "auto" or isinstance(self.max_samples, int | float)) or isinstance(
            self.max_samples, bool
        ):
            raise ValueError("max_samples must be 'auto', an int or a float")
        if isinstance(self.max_features, bool) or not isinstance(self.max_features, int | float):
            raise ValueError("max_features must be an int or a float")
        if not isinstance(self.bootstrap, bool):
            raise ValueError("bootstrap must be a bool")

    def _train(self, X: FloatArray) -> Any:
        """The fitted ``sklearn.ensemble.IsolationForest`` (PyOD's is wrapped inside IForest)."""
        raise NotImplementedError

    def _fit_library(self, X: FloatArray) -> None:
        forest = self._train(X)
        n_features = X.shape[1]
        roots, lefts, rights, features, thresholds, samples = [], [], [], [], [], []
        base = 0
        for tree, columns in zip(forest.estimators_, forest.estimators_features_, strict=True):
            t = tree.tree_
            columns = np.asarray(columns, dtype=np.int64)
            is_leaf = t.children_left < 0
            local = t.feature.astype(np.int64)
            # Trees trained on a feature subset number features within that subset (sklearn
            # indexes X[:, features] only when the subset is not all the columns).
            mapped = columns[np.where(is_leaf, 0, local)] if len(columns) != n_features else local
            roots.append(base)
            lefts.append(np.where(is_leaf, -1, t.children_left + base))
            rights.append(np.where(is_leaf, -1, t.children_right + base))
            features.append(np.where(is_leaf, -1, mapped))
            thresholds.append(np.where(is_leaf, 0.0, t.threshold))
            samples.append(t.n_node_samples)
            base += t.node_count
        self.tree_roots_ = np.asarray(roots, dtype=np.int32)
        self.node_left_ = np.concatenate(lefts).astype(np.int32)
        self.node_right_ = np.concatenate(rights).astype(np.int32)
        self.node_feature_ = np.concatenate(features).astype(np.int32)
        self.node_threshold_ = np.concatenate(thresholds).astype(np.float64)
        self.node_samples_ = np.concatenate(samples).astype(np.int64)
        self.max_samples_ = int(forest.max_samples_)
        self.offset_ = float(forest.offset_)
        self.median_ = np.median(X, axis=0)

    def _state(self) -> dict[str, NDArray[Any]]:
        return {
            "tree_roots_": self.tree_roots_,
            "node_left_": self.node_left_,
            "node_right_": self.node_right_,
            "node_feature_": self.node_feature_,
            "node_threshold_": self.node_threshold_,
            "node_samples_": self.node_samples_,
            "max_samples_": np.asarray(self.max_samples_, dtype=np.int64),
            "offset_": np.asarray(self.offset_, dtype=np.float64),
            "median_": self.median_,
        }

    def _set_state(self, state: Mapping[str, NDArray[Any]]) -> None:
        roots = array_of(state, "tree_roots_", np.int32, 1)
        left = array_of(state, "node_left_", np.int32, 1)
        right = array_of(state, "node_right_", np.int32, 1)
        feature = array_of(state, "node_feature_", np.int32, 1)
        threshold = array_of(state, "node_threshold_", np.float64, 1)
        samples = array_of(state, "node_samples_", np.int64, 1)
        median = array_of(state, "median_", np.float64, 1)
        n_nodes = left.shape[0]
        d = self.n_features_in_
        require(
            right.shape == feature.shape == threshold.shape == samples.shape == (n_nodes,),
            "node arrays differ in length",
        )
        require(median.shape == (d,) and bool(np.isfinite(median).all()), "median_ must be d finite values")
        require(roots.size >= 1 and roots[0] == 0 and bool(np.all(np.diff(roots) > 0)), "bad tree roots")
        require(int(roots[-1]) < n_nodes, "tree root out of range")
        # Walks must stay in range and end: every child lies after its parent, inside the
        # parent's tree; leaves have no children and no feature.
        leaf = left < 0
        idx = np.arange(n_nodes)
        tree_end = np.append(roots[1:], n_nodes)[np.searchsorted(roots, idx, side="right") - 1]
        internal = ~leaf
        require(bool(np.all(right[leaf] == -1) and np.all(left[leaf] == -1)), "leaf with children")
        for child in (left, right):
            require(
                bool(np.all((child[internal] > idx[internal]) & (child[internal] < tree_end[internal]))),
                "child index out of its tree",
            )
        require(
            bool(np.all((feature[internal] >= 0) & (feature[internal] < d))), "split feature out of range"
        )
        require(bool(np.all(samples >= 1)), "node sample counts must be positive")
        max_samples = np.asarray(state["max_samples_"])
        offset = np.asarray(state["offset_"])
        require(
            max_samples.shape == () and max_samples.dtype == np.int64, "max_samples_ must be an int64 scalar"
        )
        require(offset.shape == () and offset.dtype == np.float64, "offset_ must be a float64 scalar")
        require(int(max_samples) >= 1 and bool(np.isfinite(offset)), "bad max_samples_/offset_")
        self.tree_roots_, self.node_left_, self.node_right_ = roots, left, right
        self.node_feature_, self.node_threshold_, self.node_samples_ = feature, threshold, samples
        self.max_samples_, self.offset_, self.median_ = int(max_samples), float(offset), median

    def _prepare(self) -> None:
        left, right = self.node_left_, self.node_right_
        n_nodes = left.shape[0]
        leaf = left < 0
        # Depth of every node (root = 1): children come after parents, so one forward pass.
        depth = np.zeros(n_nodes, dtype=np.int64)
        depth[self.tree_roots_] = 1
        for node in np.flatnonzero(~leaf):  # O(nodes) once per fit/load, not per row
            depth[left[node]] = depth[node] + 1
            depth[right[node]] = depth[node] + 1
        # Same expression and operation order as sklearn's per-tree leaf depth lookup.
        self._leaf_value: FloatArray = depth + average_path_length(self.node_samples_) - 1.0
        self._denominator = float(
            self.tree_roots_.shape[0] * average_path_length(np.asarray([self.max_samples_]))[0]
        )
        # Layout for the lockstep walk (see forest_path_lengths): leaves loop on themselves.
        node_ids = np.arange(n_nodes, dtype=np.int32)
        children = np.empty(2 * n_nodes, dtype=np.int32)
        children[0::2] = np.where(leaf, node_ids, left)
        children[1::2] = np.where(leaf, node_ids, right)
        self._children: IntArray = children
        self._walk_feature: IntArray = np.where(leaf, 0, self.node_feature_).astype(np.int32)
        self._walk_split: FloatArray = np.where(leaf, np.inf, self.node_threshold_)
        self._steps = int(depth.max() - 1)

    def _kernel(self, X: FloatArray) -> FloatArray:
        depths = forest_path_lengths(
            X,
            self.tree_roots_,
            self._children,
            self._walk_feature,
            self._walk_split,
            self._leaf_value,
            self._steps,
        )
        # The last steps run in numpy on purpose: numpy's vectorised power differs from
        # libm's pow in the last bit for ~5% of inputs, and sklearn uses numpy's.
        if self._denominator != 0.0:
            score_samples = -(2 ** (-np.divide(depths, self._denominator)))
        else:  # a single training sample: sklearn sets the ratio to 1, score 2 ** -1
            score_samples = -(2 ** -np.ones_like(depths))
        if self._pyod_sign:
            return (score_samples - self.offset_) * -1  # PyOD: invert_order(decision_function)
        return -score_samples

    def _score_matrix(self, X: FloatArray) -> FloatArray:
        return self._kernel(X)

    def _score_row(self, x: FloatArray) -> float:
        score = float(self._kernel(x.reshape(1, -1))[0])
        if score != score:  # NaN: the kernel saw a non-finite value
            raise non_finite_error(x)
        return score

    def _contributions(self, x: FloatArray) -> FloatArray:
        d = x.shape[0]
        probes = np.tile(x, (d + 1, 1))
        probes[np.arange(1, d + 1), np.arange(d)] = self.median_
        scores = self._kernel(probes)
        return scores[0] - scores[1:]


class IsolationForestDetector(_FrozenForest):
    """``sklearn.ensemble.IsolationForest``; raw score = ``-score_samples`` (in (0, 1])."""

    algorithm: ClassVar[str] = "sklearn_iforest"
    reproduces: ClassVar[str] = "-sklearn IsolationForest.score_samples"

    def _train(self, X: FloatArray) -> Any:
        from sklearn.ensemble import IsolationForest

        return IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            max_features=self.max_features,
            bootstrap=self.bootstrap,
            random_state=self.random_state,
        ).fit(X)


class PyODIForestDetector(_FrozenForest):
    """``pyod.models.iforest.IForest``; raw score = its ``decision_function``."""

    algorithm: ClassVar[str] = "iforest"
    reproduces: ClassVar[str] = "pyod IForest.decision_function"
    _pyod_sign: ClassVar[bool] = True

    def _train(self, X: FloatArray) -> Any:
        from pyod.models.iforest import IForest

        model = IForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            max_features=self.max_features,
            bootstrap=self.bootstrap,
            random_state=self.random_state,
            contamination=self.contamination,
        ).fit(X)
        return model.detector_
