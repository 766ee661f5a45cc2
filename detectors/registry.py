"""Algorithm names -> detector classes, and loading a model file of any algorithm."""

from __future__ import annotations

import os
from typing import Any

from .base import Detector
from .copod import COPODDetector
from .ecod import ECODDetector
from .hbos import HBOSDetector
from .iforest import IsolationForestDetector, PyODIForestDetector
from .persistence import read_header

ALGORITHMS: dict[str, type[Detector]] = {
    "sklearn_iforest": IsolationForestDetector,
    "iforest": PyODIForestDetector,
    "ecod": ECODDetector,
    "copod": COPODDetector,
    "hbos": HBOSDetector,
}


def build(algorithm: str, **params: Any) -> Detector:
    """An unfitted detector: ``build("hbos", n_bins=20).fit(X, names)``.

    Unlike the constructors (which, per scikit-learn's contract, only store parameters),
    ``build`` also validates the values, so configuration errors surface before training.
    """
    try:
        klass = ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose from {sorted(ALGORITHMS)}") from None
    unknown = set(params) - set(klass._param_names())
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for {algorithm!r}")
    detector = klass(**params)
    detector._validate_params()
    return detector


def load_detector(path: str | os.PathLike[str]) -> Detector:
    """Load any detector saved with ``save``; the file's envelope says which class."""
    return Detector.load(path)


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model file's JSON header, without loading its arrays."""
    return read_header(path)
