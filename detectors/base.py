"""The detector interface: train with a library, score with what it learned, frozen.

Contract (scikit-learn's estimator conventions, PyOD's score direction):

* ``__init__`` only stores keyword parameters (``get_params``/``set_params`` work as in
  scikit-learn); they are validated by ``fit``.
* ``fit(X, feature_names)`` trains the library estimator once, copies what it learned into
  plain numpy arrays (attributes ending in ``_``) and drops the library object.
* ``score_one``/``score_batch`` return the raw score, higher = more anomalous (PyOD's
  direction). Scoring never mutates the detector, so one fitted instance can be shared by
  any number of threads; the kernels release the GIL.
* ``probability_*`` maps raw scores to [0, 1] with the empirical CDF of the training scores
  (see ``calibration``); ``threshold_`` is in that calibrated space and
  ``probability >= threshold_`` flags about ``contamination`` of the training rows.
* ``explain(row, top)`` names the features that drove the score, with their contribution.
* ``save``/``load`` use the versioned envelope of ``persistence`` (never pickle); ``version_``
  is a content hash of params, feature names and learned arrays.

Inputs must be finite: NaN or infinity raises ``ValueError`` (impute upstream; silently
routing NaN down some branch would make a missing value look normal or anomalous by accident).
"""

from __future__ import annotations

import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .calibration import fit_calibration, probability, probability_scalar, threshold_for
from .persistence import (
    ModelFormatError,
    ModelIntegrityError,
    content_hash,
    read_envelope,
    write_envelope,
)

FloatArray = NDArray[np.float64]

# Learned arrays every detector has, besides its algorithm's own.
_CALIBRATION = "calibration_scores_"


class NotFittedError(ValueError, AttributeError):
    """The detector was used before ``fit`` (same bases as scikit-learn's)."""


def as_matrix(X: ArrayLike, n_features: int | None = None) -> FloatArray:
    """A C-contiguous float64 matrix of finite values, or a ValueError saying what is wrong."""
    matrix = np.asarray(X, dtype=np.float64, order="C")
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D array (rows x features), got shape {matrix.shape}")
    if n_features is not None and matrix.shape[1] != n_features:
        raise ValueError(f"expected {n_features} features per row, got {matrix.shape[1]}")
    finite = np.isfinite(matrix)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(
            f"non-finite value {matrix[row, col]!r} at row {row}, feature {col}: "
            "detectors reject NaN/inf (impute missing values before scoring)"
        )
    return matrix


def non_finite_error(x: FloatArray) -> ValueError:
    col = int(np.flatnonzero(~np.isfinite(x))[0])
    return ValueError(
        f"non-finite value {x[col]!r} at feature {col}: detectors reject NaN/inf "
        "(impute missing values before scoring)"
    )


def _check_feature_names(feature_names: Sequence[str], n_features: int) -> tuple[str, ...]:
    if isinstance(feature_names, str):
        raise TypeError("feature_names must be a sequence of strings, not one string")
    names = tuple(feature_names)
    if len(names) != n_features:
        raise ValueError(f"{len(names)} feature names for {n_features} features")
    if not all(isinstance(name, str) and name for name in names):
        raise TypeError("feature names must be non-empty strings")
    if len(set(names)) != len(names):
        raise ValueError("feature names must be unique")
    return names


def _library_versions() -> dict[str, str]:
    versions = {}
    for dist in ("numpy", "scipy", "scikit-learn", "pyod", "numba"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - optional at scoring time
            continue
    return versions


class Detector(ABC):
    """Base class of every frozen detector. Subclasses implement the ``_``-prefixed hooks."""

    #: Registry key, also written in the model file and used to dispatch ``load``.
    algorithm: ClassVar[str] = ""
    #: What the scores reproduce, for humans (bench table, reports).
    reproduces: ClassVar[str] = ""
    #: Names of the algorithm's learned arrays, i.e. the keys of ``_state()``.
    state_arrays: ClassVar[tuple[str, ...]] = ()

    # Learned attributes common to all detectors (set by fit or load).
    feature_names_in_: tuple[str, ...]
    n_features_in_: int
    calibration_scores_: FloatArray
    threshold_: float
    version_: str
    created_at_: str
    trained_with_: dict[str, str]

    def __init__(self, *, contamination: float = 0.1) -> None:
        self.contamination = contamination

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name for p in signature.parameters.values() if p.name != "self" and p.kind is p.KEYWORD_ONLY
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _validate_params(self) -> None:
        c = self.contamination
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0.0 < float(c) <= 0.5:
            raise ValueError(f"contamination must be a float in (0, 0.5], got {c!r}")

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _fit_library(self, X: FloatArray) -> None:
        """Train the library estimator on X and copy what it learned into ``*_`` arrays."""

    @abstractmethod
    def _state(self) -> dict[str, NDArray[Any]]:
        """The algorithm's learned arrays, by attribute name (persisted and hashed)."""

    @abstractmethod
    def _set_state(self, state: Mapping[str, NDArray[Any]]) -> None:
        """Restore ``_state()`` from a file; raise ModelFormatError if it is inconsistent."""

    @abstractmethod
    def _prepare(self) -> None:
        """Build the derived, read-only scoring structures from the learned arrays."""

    @abstractmethod
    def _score_matrix(self, X: FloatArray) -> FloatArray:
        """Raw scores of a validated (finite, right width) matrix."""

    @abstractmethod
    def _score_row(self, x: FloatArray) -> float:
        """Raw score of one row of the right width; must raise ValueError if non-finite."""

    @abstractmethod
    def _contributions(self, x: FloatArray) -> FloatArray:
        """Per-feature contribution to the score of a validated row (see each algorithm)."""

    # ------------------------------------------------------------------ fit
    def fit(self, X: ArrayLike, feature_names: Sequence[str]) -> Self:
        self._validate_params()
        matrix = as_matrix(X)
        names = _check_feature_names(feature_names, matrix.shape[1])
        if matrix.shape[0] < 2:
            raise ValueError("fit needs at least 2 rows")
        self._fit_library(matrix)
        self.feature_names_in_ = names
        self.n_features_in_ = matrix.shape[1]
        self._prepare()
        # Calibrate on the frozen scorer itself, so serving-time scores and the calibration
        # come from one function.
        self.calibration_scores_ = fit_calibration(self._score_matrix(matrix))
        self.created_at_ = datetime.now(UTC).isoformat(timespec="seconds")
        self.trained_with_ = _library_versions()
        self._finish()
        return self

    def _arrays(self) -> dict[str, NDArray[Any]]:
        return {**self._state(), _CALIBRATION: self.calibration_scores_}

    def _content_hash(self) -> str:
        return content_hash(self.algorithm, self.get_params(), list(self.feature_names_in_), self._arrays())

    def _finish(self) -> None:
        self.threshold_ = threshold_for(self.calibration_scores_, float(self.contamination))
        self.version_ = f"{self.algorithm}-{self._content_hash()[:16]}"

    # ------------------------------------------------------------------ scoring
    @property
    def version(self) -> str:
        self._check_fitted()
        return self.version_

    def _check_fitted(self) -> None:
        if not hasattr(self, "version_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() or load()")

    def _row(self, row: ArrayLike) -> FloatArray:
        try:
            width = self.n_features_in_
        except AttributeError:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit() or load()"
            ) from None
        x = np.asarray(row, dtype=np.float64)
        if x.shape != (width,):
            raise ValueError(f"expected a row of {width} features, got shape {x.shape}")
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        return x

    def _matrix(self, X: ArrayLike) -> FloatArray:
        self._check_fitted()
        return as_matrix(X, self.n_features_in_)

    def score_one(self, row: ArrayLike) -> float:
        """Raw anomaly score of one row (higher = more anomalous)."""
        return self._score_row(self._row(row))

    def score_batch(self, X: ArrayLike) -> FloatArray:
        """Raw scores of many rows; row i scores exactly as ``score_one(X[i])``."""
        return self._score_matrix(self._matrix(X))

    def probability_one(self, row: ArrayLike) -> float:
        """Calibrated score in [0, 1]: fraction of training rows scoring <= this row."""
        raw = self.score_one(row)  # first: it raises NotFittedError on an unfitted detector
        return probability_scalar(self.calibration_scores_, raw)

    def probability_batch(self, X: ArrayLike) -> FloatArray:
        raw = self.score_batch(X)
        return probability(self.calibration_scores_, raw)

    def explain(self, row: ArrayLike, top: int = 3) -> list[tuple[str, float]]:
        """The ``top`` features with the largest contribution to this row's score."""
        if top < 0:
            raise ValueError("top must be >= 0")
        x = self._row(row)
        if not np.isfinite(x).all():
            raise non_finite_error(x)
        contributions = self._contributions(x)
        # Stable sort on the negated values: ties keep feature order, so output is deterministic.
        order = np.argsort(-contributions, kind="stable")[:top]
        return [(self.feature_names_in_[i], float(contributions[i])) for i in order]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        self._check_fitted()
        header = {
            "algorithm": self.algorithm,
            "detector_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": self.get_params(),
            "feature_names": list(self.feature_names_in_),
            "model_version": self.version_,
            "content_sha256": self._content_hash(),
            "created_at": self.created_at_,
            "trained_with": self.trained_with_,
        }
        write_envelope(path, header, self._arrays())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Load a model saved by ``save``; on the base class, dispatch on the file's algorithm."""
        header, arrays = read_envelope(path)
        algorithm = header.get("algorithm")
        if cls.algorithm:
            if algorithm != cls.algorithm:
                raise ModelFormatError(f"the file holds a {algorithm!r} detector, not {cls.algorithm!r}")
            klass: type[Detector] = cls
        else:
            from .registry import ALGORITHMS  # late import: the registry imports this module

            if algorithm not in ALGORITHMS:
                raise ModelFormatError(f"unknown detector algorithm {algorithm!r}")
            klass = ALGORITHMS[algorithm]
        detector = klass._from_envelope(header, arrays)
        assert isinstance(detector, cls)
        return detector

    @classmethod
    def _from_envelope(cls, header: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> Self:
        params = header.get("params")
        if not isinstance(params, dict) or not set(params) <= set(cls._param_names()):
            raise ModelFormatError(f"model params {params!r} do not fit {cls.__name__}")
        detector = cls(**params)
        try:
            detector._validate_params()
        except ValueError as exc:
            raise ModelFormatError(f"model params are invalid: {exc}") from exc
        names = header.get("feature_names")
        if not isinstance(names, list):
            raise ModelFormatError("model header lacks feature names")
        try:
            detector.feature_names_in_ = _check_feature_names(names, len(names))
        except (TypeError, ValueError) as exc:
            raise ModelFormatError(f"bad feature names in model: {exc}") from exc
        detector.n_features_in_ = len(names)
        expected = set(cls.state_arrays) | {_CALIBRATION}
        if set(arrays) != expected:
            raise ModelFormatError(f"model arrays {sorted(arrays)} are not those of {cls.__name__}")
        scores = np.asarray(arrays[_CALIBRATION])
        if (
            scores.dtype != np.float64
            or scores.ndim != 1
            or scores.size == 0
            or not np.isfinite(scores).all()
            or np.any(np.diff(scores) < 0)
        ):
            raise ModelFormatError("calibration scores must be a sorted, finite float64 vector")
        detector.calibration_scores_ = scores
        detector._set_state({k: v for k, v in arrays.items() if k != _CALIBRATION})
        detector._prepare()
        created = header.get("created_at")
        trained = header.get("trained_with")
        detector.created_at_ = created if isinstance(created, str) else ""
        detector.trained_with_ = dict(trained) if isinstance(trained, dict) else {}
        if detector._content_hash() != header.get("content_sha256"):
            raise ModelIntegrityError("model content does not match its recorded hash")
        detector._finish()
        if detector.version_ != header.get("model_version"):
            raise ModelIntegrityError("model version in the header does not match its content")
        return detector


def require(condition: bool, message: str) -> None:
    """Structural check of loaded arrays: kernels index with them, so refuse bad ones."""
    if not condition:
        raise ModelFormatError(message)


def array_of(state: Mapping[str, NDArray[Any]], name: str, dtype: type, ndim: int) -> NDArray[Any]:
    array = np.asarray(state[name])
    require(array.dtype == np.dtype(dtype), f"array {name!r} must be {np.dtype(dtype)}, got {array.dtype}")
    require(array.ndim == ndim, f"array {name!r} must have {ndim} dimension(s), got shape {array.shape}")
    return np.asarray(array, order="C")
