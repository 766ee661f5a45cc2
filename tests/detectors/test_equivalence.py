"""Frozen scores equal the libraries' own ``decision_function`` / ``score_samples``.

Tolerance: absolute 1e-9 (the contract). On the reference machine the scores are in fact
bit-identical; the kernels follow the libraries' operation order, including numpy's pairwise
summation and vectorised power/log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from pyod.models.copod import COPOD
from pyod.models.ecod import ECOD
from pyod.models.hbos import HBOS
from pyod.models.iforest import IForest
from sklearn.ensemble import IsolationForest

import detectors.ecdf as ecdf_module
from detectors import _kernels
from detectors._jit import python_version
from detectors.copod import COPODDetector
from detectors.ecod import ECODDetector
from detectors.hbos import HBOSDetector
from detectors.iforest import IsolationForestDetector, PyODIForestDetector, average_path_length

from .datasets import DATASET_IDS, DATASETS, Dataset

ATOL = 1e-9

# PyOD's ECOD/COPOD call scipy.stats.skew on the training data + the row; on a constant
# non-zero column scipy warns about precision loss. That warning is the library's, raised
# only while computing the reference values here; the frozen scorer never calls scipy.
pytestmark = pytest.mark.filterwarnings("ignore:Precision loss occurred in moment calculation:RuntimeWarning")


def assert_scores_equal(got: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def pyod_one_row(model: Any, queries: np.ndarray) -> np.ndarray:
    """PyOD scored one row per call (its batch call shares one ECDF across the batch)."""
    return np.array([model.decision_function(row.reshape(1, -1))[0] for row in queries])


FOREST_PARAMS = [
    {"random_state": 3},
    {"random_state": 4, "max_features": 0.6, "max_samples": 64, "bootstrap": True},
    {"random_state": 5, "n_estimators": 37, "max_samples": 0.5},
    {"random_state": 6, "max_features": 1},
]


@pytest.mark.parametrize("data", DATASETS, ids=DATASET_IDS)
@pytest.mark.parametrize(
    "params", FOREST_PARAMS, ids=["default", "subsampled", "float_max_samples", "int_features"]
)
def test_sklearn_isolation_forest(data: Dataset, params: dict[str, Any]) -> None:
    detector = IsolationForestDetector(**params).fit(data.X, data.names)
    library = IsolationForest(**params).fit(data.X)
    expected = -library.score_samples(data.queries)
    assert_scores_equal(detector.score_batch(data.queries), expected)
    assert_scores_equal(np.array([detector.score_one(q) for q in data.queries]), expected)
    # -decision_function = -score_samples + offset_: our score shifted by sklearn's constant.
    assert_scores_equal(
        detector.score_batch(data.queries) + library.offset_, -library.decision_function(data.queries)
    )


@pytest.mark.parametrize("data", DATASETS, ids=DATASET_IDS)
@pytest.mark.parametrize("params", FOREST_PARAMS[:2], ids=["default", "subsampled"])
def test_pyod_iforest(data: Dataset, params: dict[str, Any]) -> None:
    detector = PyODIForestDetector(contamination=0.07, **params).fit(data.X, data.names)
    library = IForest(contamination=0.07, **params).fit(data.X)
    expected = library.decision_function(data.queries)
    assert_scores_equal(detector.score_batch(data.queries), expected)
    assert_scores_equal(np.array([detector.score_one(q) for q in data.queries]), expected)


def test_average_path_length_matches_sklearn() -> None:
    from sklearn.ensemble._iforest import _average_path_length

    n = np.arange(0, 5000)
    assert np.array_equal(average_path_length(n), _average_path_length(n))


@pytest.mark.parametrize("data", DATASETS, ids=DATASET_IDS)
@pytest.mark.parametrize(
    ("detector_class", "library_class"), [(ECODDetector, ECOD), (COPODDetector, COPOD)], ids=["ecod", "copod"]
)
def test_ecod_copod_one_row(data: Dataset, detector_class: type, library_class: type) -> None:
    detector = detector_class().fit(data.X, data.names)
    library = library_class().fit(data.X)
    expected = pyod_one_row(library, data.queries)
    assert_scores_equal(detector.score_batch(data.queries), expected)
    assert_scores_equal(np.array([detector.score_one(q) for q in data.queries]), expected)
    # The per-feature terms explain() reports add up to the score.
    for q in data.queries[:10]:
        terms = dict(detector.explain(q, top=data.X.shape[1]))
        assert sum(terms.values()) == pytest.approx(detector.score_one(q), abs=1e-9)


@pytest.fixture
def exact_sign_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count the O(n d) exact skewness computations made while scoring."""
    calls: list[int] = []
    original = ecdf_module.exact_skew_signs

    def counting(train: np.ndarray, row: np.ndarray) -> np.ndarray:
        calls.append(1)
        return original(train, row)

    monkeypatch.setattr(ecdf_module, "exact_skew_signs", counting)
    yield calls


@pytest.mark.parametrize(
    ("detector_class", "library_class"), [(ECODDetector, ECOD), (COPODDetector, COPOD)], ids=["ecod", "copod"]
)
def test_ecod_copod_exact_sign_paths(
    detector_class: type, library_class: type, exact_sign_calls: list[int]
) -> None:
    """Rows making a column's skewness exactly zero go through the cache or the exact path."""
    rng = np.random.default_rng(11)
    X = np.c_[
        np.repeat([0.0, 2.0], 100),  # symmetric about 1.0, which is not a training value
        rng.standard_normal(200),
        np.repeat([0.0, 1.0, 2.0], [60, 80, 60]),  # symmetric about 1.0, a training value
    ]
    names = ["sym_gap", "noise", "sym_three"]
    detector = detector_class().fit(X, names)
    library = library_class().fit(X)
    # Adding a 1 keeps the third column exactly symmetric: decided at fit time, cached.
    assert 1.0 in detector.skew_cache_values_
    queries = np.array(
        [
            [1.0, 0.1, 0.0],  # first column exactly symmetric with x: exact O(n d) path
            [1.0 + 1e-13, -0.3, 1.0],  # a hair off the centre, and the cached value
            [0.0, 0.0, 1.0],  # training values
            [2.0, 5.0, 2.0],
            [-4.0, 0.2, 3.0],  # outside the range
        ]
    )
    before = len(exact_sign_calls)
    got = detector.score_batch(queries)
    assert len(exact_sign_calls) > before, "the centre row should need the exact computation"
    assert_scores_equal(got, pyod_one_row(library, queries))
    assert_scores_equal(np.array([detector.score_one(q) for q in queries]), got)


@pytest.mark.parametrize("detector_class", [ECODDetector, COPODDetector], ids=["ecod", "copod"])
def test_generic_data_never_takes_the_exact_path(detector_class: type, exact_sign_calls: list[int]) -> None:
    """On continuous data every skewness sign is certified in O(1): cost stays flat in n."""
    rng = np.random.default_rng(12)
    X = rng.standard_normal((3000, 6)) * [1, 10, 1e-3, 1e4, 1, 1] + [0, 5, 1e6, -3, 0, 0]
    detector = detector_class().fit(X, [f"f{i}" for i in range(6)])
    calls_after_fit = len(exact_sign_calls)
    detector.score_batch(rng.standard_normal((2000, 6)) * 3)
    assert len(exact_sign_calls) == calls_after_fit == 0
    assert detector.skew_cache_values_.size == 0


@pytest.mark.parametrize("data", DATASETS, ids=DATASET_IDS)
@pytest.mark.parametrize(
    "params",
    [
        {"n_bins": 10},
        {"n_bins": 3, "alpha": 0.5, "tol": 0.1},
        {"n_bins": "auto"},
        {"n_bins": 25, "tol": 0.99},
    ],
    ids=["static10", "static3", "auto", "static25"],
)
def test_hbos(data: Dataset, params: dict[str, Any]) -> None:
    detector = HBOSDetector(**params).fit(data.X, data.names)
    library = HBOS(**params).fit(data.X)
    expected = library.decision_function(data.queries)
    assert_scores_equal(detector.score_batch(data.queries), expected)
    assert_scores_equal(np.array([detector.score_one(q) for q in data.queries]), expected)
    for q in data.queries[:10]:
        terms = dict(detector.explain(q, top=data.X.shape[1]))
        assert sum(terms.values()) == pytest.approx(detector.score_one(q), abs=1e-9)


def test_hbos_values_at_the_edges_and_tolerance_band() -> None:
    """Exactly at the lowest edge (digitize index 0), inside and past the tol band."""
    rng = np.random.default_rng(13)
    X = rng.uniform(0.0, 10.0, size=(500, 2))
    detector = HBOSDetector(n_bins=10, tol=0.5).fit(X, ["a", "b"])
    library = HBOS(n_bins=10, tol=0.5).fit(X)
    lo, hi = X.min(axis=0), X.max(axis=0)
    width = (hi - lo) / 10
    probes = [lo, hi, lo - 0.5 * width, hi + 0.5 * width, lo - 0.5001 * width, hi + 0.5001 * width]
    queries = np.vstack([*probes, np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)])
    assert_scores_equal(detector.score_batch(queries), library.decision_function(queries))


def use_python_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace every compiled kernel by its Python function (the no-numba code path)."""
    import detectors.ecdf
    import detectors.hbos
    import detectors.iforest

    for name in dir(_kernels):
        compiled = getattr(_kernels, name)
        if not hasattr(compiled, "py_func"):
            continue
        python = python_version(compiled)
        for module in (_kernels, detectors.ecdf, detectors.hbos, detectors.iforest):
            if getattr(module, name, None) is compiled:
                monkeypatch.setattr(module, name, python)


@pytest.mark.parametrize(
    "make",
    [
        lambda: IsolationForestDetector(random_state=0, n_estimators=20),
        lambda: ECODDetector(),
        lambda: COPODDetector(),
        lambda: HBOSDetector(),
    ],
    ids=["sklearn_iforest", "ecod", "copod", "hbos"],
)
def test_python_fallback_matches_compiled(make: Callable[[], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    data = DATASETS[1]
    compiled = make().fit(data.X, data.names)
    expected = compiled.score_batch(data.queries[:30])
    use_python_kernels(monkeypatch)
    python = make().fit(data.X, data.names)
    assert_scores_equal(python.score_batch(data.queries[:30]), expected)
    assert python.version_ == compiled.version_


def test_pairwise_sum_matches_numpy() -> None:
    rng = np.random.default_rng(14)
    for n in [0, 1, 5, 7, 8, 9, 16, 127, 128, 129, 300, 1000, 4099]:
        a = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 7, size=n)
        expected = a.reshape(1, -1).sum(axis=1)[0] if n else 0.0
        assert _kernels.pairwise_sum(a, 0, n) == expected
        assert python_version(_kernels.pairwise_sum)(a, 0, n) == expected


def test_exact_skew_replica_matches_scipy() -> None:
    """The O(n d) fallback reproduces PyOD's skew() (scipy) sign bit for bit."""
    from pyod.models.ecod import skew

    rng = np.random.default_rng(15)
    for trial in range(60):
        n, d = int(rng.integers(2, 400)), int(rng.integers(1, 6))
        kind = trial % 4
        if kind == 0:
            X = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-3, 3) + 10.0 ** rng.uniform(-3, 9)
        elif kind == 1:
            X = rng.choice([-1.0, 0.0, 1.0], size=(n, d))
        elif kind == 2:
            X = np.full((n, d), rng.uniform(-5, 5))
        else:
            X = rng.integers(0, 3, size=(n, d)) * 0.1
        row = X[rng.integers(0, n)] if trial % 2 else rng.standard_normal(d)
        expected = np.sign(skew(np.concatenate((X, row.reshape(1, -1)))))
        assert np.array_equal(ecdf_module.exact_skew_signs(X, row), expected)
