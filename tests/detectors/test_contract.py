"""The estimator contract: parameters, fit, input validation, batch = row-by-row, no mutation."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from detectors.base import Detector, NotFittedError
from detectors.registry import ALGORITHMS, build

from .conftest import ALGORITHM_NAMES, PARAMS


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_init_only_stores_params(name: str) -> None:
    klass = ALGORITHMS[name]
    detector = klass(contamination=0.3)
    assert detector.get_params()["contamination"] == 0.3
    assert not any(attr.endswith("_") for attr in vars(detector)), "learned attributes before fit"
    # Invalid values are only checked at fit time (scikit-learn's contract)...
    bad = klass(contamination=2.0)
    with pytest.raises(ValueError, match="contamination"):
        bad.fit(np.zeros((10, 2)), ["a", "b"])
    # ...but build() validates up front, for configuration checks.
    with pytest.raises(ValueError, match="contamination"):
        build(name, contamination=2.0)


def test_get_set_params_and_repr() -> None:
    detector = build("hbos", n_bins="auto")
    assert detector.get_params() == {"n_bins": "auto", "alpha": 0.1, "tol": 0.5, "contamination": 0.1}
    assert detector.set_params(alpha=0.2) is detector and detector.get_params()["alpha"] == 0.2
    assert repr(detector) == "HBOSDetector(n_bins='auto', alpha=0.2, tol=0.5, contamination=0.1)"
    with pytest.raises(ValueError, match="invalid parameter"):
        detector.set_params(bins=3)


def test_build_rejects_unknown_algorithm_and_params() -> None:
    with pytest.raises(ValueError, match="unknown algorithm"):
        build("lof")
    with pytest.raises(ValueError, match="unknown parameter"):
        build("ecod", n_bins=3)
    with pytest.raises(ValueError, match="n_bins"):
        build("hbos", n_bins=1)
    with pytest.raises(ValueError, match="random_state"):
        build("iforest", random_state=np.random.RandomState(0))


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_fit_sets_learned_attributes(name: str, fitted: dict[str, Detector]) -> None:
    detector = fitted[name]
    assert detector.n_features_in_ == 6
    assert detector.feature_names_in_ == tuple(f"f{i}" for i in range(6))
    assert detector.version == detector.version_
    assert detector.version_.startswith(f"{name}-")
    assert 0.0 < detector.threshold_ <= 1.0
    learned = [a for a in vars(detector) if a.endswith("_") and not a.startswith("_")]
    assert {"calibration_scores_", "threshold_", "version_"} <= set(learned)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_unfitted_detector_refuses_to_score(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    detector = build(name)
    for call in (
        lambda: detector.score_one([0.0]),
        lambda: detector.score_batch([[0.0]]),
        lambda: detector.probability_one([0.0]),
        lambda: detector.explain([0.0]),
        lambda: detector.save(tmp_path / "m"),
        lambda: detector.version,
    ):
        with pytest.raises(NotFittedError):
            call()


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected(name: str, bad: float, fitted: dict[str, Detector]) -> None:
    detector = fitted[name]
    row = np.zeros(6)
    row[3] = bad
    with pytest.raises(ValueError, match=r"non-finite.*feature 3"):
        detector.score_one(row)
    with pytest.raises(ValueError, match="non-finite"):
        detector.probability_one(row)
    with pytest.raises(ValueError, match="non-finite"):
        detector.explain(row)
    batch = np.zeros((4, 6))
    batch[2, 3] = bad
    with pytest.raises(ValueError, match=r"non-finite.*row 2, feature 3"):
        detector.score_batch(batch)
    training = np.random.default_rng(0).standard_normal((50, 6))
    training[7, 1] = bad
    with pytest.raises(ValueError, match="non-finite"):
        build(name, **PARAMS[name]).fit(training, [f"f{i}" for i in range(6)])


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_shape_and_feature_name_checks(name: str, fitted: dict[str, Detector]) -> None:
    detector = fitted[name]
    with pytest.raises(ValueError, match="6 features"):
        detector.score_one(np.zeros(5))
    with pytest.raises(ValueError, match="6 features"):
        detector.score_batch(np.zeros((3, 7)))
    with pytest.raises(ValueError, match="2-D"):
        detector.score_batch(np.zeros(6))
    X = np.random.default_rng(1).standard_normal((20, 2))
    with pytest.raises(ValueError, match="unique"):
        build(name).fit(X, ["a", "a"])
    with pytest.raises(ValueError, match="2 features"):
        build(name).fit(X, ["a"])
    with pytest.raises(TypeError):
        build(name).fit(X, "ab")
    with pytest.raises(ValueError, match="at least 2 rows"):
        build(name).fit(X[:1], ["a", "b"])


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_batch_equals_row_by_row_and_accepts_sequences(
    name: str, fitted: dict[str, Detector], query_rows: np.ndarray
) -> None:
    detector = fitted[name]
    batch = detector.score_batch(query_rows)
    assert batch.shape == (len(query_rows),) and batch.dtype == np.float64
    assert np.array_equal(batch, [detector.score_one(row) for row in query_rows])
    assert detector.score_one(list(query_rows[0])) == batch[0]
    assert detector.score_one(tuple(query_rows[0])) == batch[0]
    # A non-contiguous view scores like a contiguous copy.
    wide = np.repeat(query_rows[:5], 2, axis=1)[:, ::2]
    assert np.array_equal(detector.score_batch(wide), batch[:5])
    assert detector.score_one(wide[1]) == batch[1]
    assert np.array_equal(
        detector.probability_batch(query_rows), [detector.probability_one(r) for r in query_rows]
    )


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_scoring_never_mutates_the_detector(
    name: str, fitted: dict[str, Detector], query_rows: np.ndarray
) -> None:
    detector = fitted[name]
    before = {k: (v, copy.deepcopy(v)) for k, v in vars(detector).items()}
    detector.score_batch(query_rows)
    for row in query_rows[:20]:
        detector.score_one(row)
        detector.probability_one(row)
        detector.explain(row)
    after = vars(detector)
    assert after.keys() == before.keys()
    for key, (original, snapshot) in before.items():
        assert after[key] is original, f"{key} was rebound"
        if isinstance(snapshot, np.ndarray):
            assert np.array_equal(after[key], snapshot), f"{key} changed"
    assert detector._content_hash().startswith(detector.version_.split("-")[1])


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_explain_shape(name: str, fitted: dict[str, Detector], query_rows: np.ndarray) -> None:
    detector = fitted[name]
    explanation = detector.explain(query_rows[0], top=3)
    assert len(explanation) == 3
    assert all(isinstance(f, str) and isinstance(c, float) for f, c in explanation)
    contributions = [c for _, c in explanation]
    assert contributions == sorted(contributions, reverse=True)
    assert len(detector.explain(query_rows[0], top=100)) == 6
    assert detector.explain(query_rows[0], top=0) == []
    with pytest.raises(ValueError):
        detector.explain(query_rows[0], top=-1)


def test_refit_changes_the_version(training_data: tuple[np.ndarray, list[str]]) -> None:
    X, names = training_data
    a = build("hbos").fit(X, names)
    b = build("hbos").fit(X, names)
    c = build("hbos").fit(X[:-1], names)
    assert a.version_ == b.version_ != c.version_
    d = build("sklearn_iforest", random_state=1).fit(X, names)
    e = build("sklearn_iforest", random_state=2).fit(X, names)
    assert d.version_ != e.version_


def test_detector_base_is_abstract() -> None:
    with pytest.raises(TypeError):
        Detector()  # type: ignore[abstract]
