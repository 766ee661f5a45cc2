"""Save/load: identical scores after a round trip; foreign or tampered files are refused."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.base import Detector
from detectors.ecod import ECODDetector
from detectors.hbos import HBOSDetector
from detectors.iforest import IsolationForestDetector
from detectors.persistence import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAGIC,
    ModelFormatError,
    ModelIntegrityError,
    content_hash,
    read_envelope,
    write_envelope,
)
from detectors.registry import describe, load_detector

from .conftest import ALGORITHM_NAMES

DETECTORS_DIR = Path(__file__).resolve().parents[2] / "detectors"


def split_file(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    length = int.from_bytes(raw[len(MAGIC) : len(MAGIC) + 8], "little")
    start = len(MAGIC) + 8
    return json.loads(raw[start : start + length]), raw[start + length :]


def join_file(path: Path, header: dict[str, Any], payload: bytes) -> None:
    body = json.dumps(header).encode()
    path.write_bytes(MAGIC + len(body).to_bytes(8, "little") + body + payload)


def forge(path: Path, target: Path, mutate_arrays: Any) -> None:
    """A file whose hashes are all recomputed after editing arrays (what an attacker can do)."""
    header, arrays = read_envelope(path)
    arrays = {k: v.copy() for k, v in arrays.items()}
    mutate_arrays(arrays)
    header["content_sha256"] = content_hash(
        header["algorithm"], header["params"], header["feature_names"], arrays
    )
    header["model_version"] = f"{header['algorithm']}-{header['content_sha256'][:16]}"
    for key in ("format", "format_version", "arrays", "payload_bytes", "payload_sha256"):
        header.pop(key)
    write_envelope(target, header, arrays)


@pytest.fixture
def saved(fitted: dict[str, Detector], tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, detector in fitted.items():
        paths[name] = tmp_path / f"{name}.npz"
        detector.save(paths[name])
    return paths


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_round_trip_scores_identically(
    name: str, fitted: dict[str, Detector], saved: dict[str, Path], query_rows: np.ndarray
) -> None:
    original = fitted[name]
    loaded = load_detector(saved[name])
    assert type(loaded) is type(original)
    assert loaded.version_ == original.version_
    assert loaded.get_params() == original.get_params()
    assert loaded.feature_names_in_ == original.feature_names_in_
    assert loaded.threshold_ == original.threshold_
    assert np.array_equal(loaded.score_batch(query_rows), original.score_batch(query_rows))
    assert np.array_equal(loaded.probability_batch(query_rows), original.probability_batch(query_rows))
    assert loaded.score_one(query_rows[0]) == original.score_one(query_rows[0])
    assert loaded.explain(query_rows[1]) == original.explain(query_rows[1])
    # Loading through the concrete class works too, and saving again is byte-stable.
    again = type(original).load(saved[name])
    assert again.version_ == original.version_
    resaved = saved[name].with_suffix(".again")
    loaded.save(resaved)
    assert split_file(resaved)[1] == split_file(saved[name])[1]


def test_header_is_readable_without_the_arrays(fitted: dict[str, Detector], saved: dict[str, Path]) -> None:
    header = describe(saved["ecod"])
    assert header["format"] == FORMAT_NAME and header["format_version"] == FORMAT_VERSION
    assert header["algorithm"] == "ecod"
    assert header["detector_class"] == "detectors.ecod.ECODDetector"
    assert header["params"] == {"contamination": 0.1}
    assert header["feature_names"] == [f"f{i}" for i in range(6)]
    assert header["model_version"] == fitted["ecod"].version_
    assert re.fullmatch(r"[0-9a-f]{64}", header["content_sha256"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", header["created_at"])
    assert {"numpy", "scikit-learn", "pyod"} <= set(header["trained_with"])
    assert saved["ecod"].read_bytes().startswith(MAGIC)


def test_wrong_class_is_refused(saved: dict[str, Path]) -> None:
    with pytest.raises(ModelFormatError, match="holds a 'ecod' detector, not 'hbos'"):
        HBOSDetector.load(saved["ecod"])


def test_pickle_and_other_foreign_files_are_refused(tmp_path: Path) -> None:
    candidates = {
        # A pickle (protocol 4 of the int 1) and a joblib-style zlib'd pickle: never unpickled.
        "model.pkl": b"\x80\x04K\x01.",
        "model.joblib": b"x\x9c" + b"\x80\x04K\x01.",
        "empty.npz": b"",
        "text.json": b'{"format": "riskctl.detector", "format_version": 1}',
    }
    buffer = io.BytesIO()
    np.savez(buffer, calibration_scores_=np.arange(3.0))
    candidates["bare.npz"] = buffer.getvalue()  # a valid .npz, but not our envelope
    for filename, content in candidates.items():
        path = tmp_path / filename
        path.write_bytes(content)
        with pytest.raises(ModelFormatError, match="not a riskctl detector file"):
            load_detector(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"format_version": 2}, "unsupported riskctl.detector format version 2"),
        ({"format_version": "1"}, "unsupported riskctl.detector format version '1'"),
        ({"format": "someone.else"}, "unknown model format"),
        ({"algorithm": "lof"}, "unknown detector algorithm"),
        ({"params": {"contamination": 0.1, "n_neighbors": 5}}, "do not fit"),
        ({"feature_names": ["f0", "f0", "f2", "f3", "f4", "f5"]}, "bad feature names"),
    ],
)
def test_header_edits_are_refused(
    saved: dict[str, Path], tmp_path: Path, edit: dict[str, Any], message: str
) -> None:
    header, payload = split_file(saved["ecod"])
    header.update(edit)
    target = tmp_path / "edited.npz"
    join_file(target, header, payload)
    with pytest.raises(ModelFormatError, match=message):
        load_detector(target)


def test_tampering_is_detected(saved: dict[str, Path], tmp_path: Path) -> None:
    header, payload = split_file(saved["hbos"])
    target = tmp_path / "tampered.npz"

    # A param changed in the header: the content hash no longer matches.
    join_file(target, {**header, "params": {**header["params"], "contamination": 0.3}}, payload)
    with pytest.raises(ModelIntegrityError, match="recorded hash"):
        load_detector(target)

    # A byte flipped in the payload.
    flipped = bytearray(payload)
    flipped[len(flipped) // 2] ^= 0x01
    join_file(target, header, bytes(flipped))
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        load_detector(target)

    # Truncated, and appended to.
    join_file(target, header, payload[:-10])
    with pytest.raises(ModelIntegrityError, match="length"):
        load_detector(target)
    join_file(target, header, payload + b"\x00")
    with pytest.raises(ModelIntegrityError, match="length"):
        load_detector(target)
    target.write_bytes(saved["hbos"].read_bytes()[: len(MAGIC) + 20])
    with pytest.raises(ModelFormatError):
        load_detector(target)

    # An edited version string.
    join_file(target, {**header, "model_version": "hbos-0000000000000000"}, payload)
    with pytest.raises(ModelIntegrityError, match="version"):
        load_detector(target)


def test_structurally_invalid_arrays_are_refused_even_with_valid_hashes(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    """Hashes are not signatures; the loader still checks everything the kernels index with."""
    target = tmp_path / "forged.npz"

    def child_out_of_range(arrays: dict[str, np.ndarray]) -> None:
        internal = np.flatnonzero(arrays["node_left_"] >= 0)[0]
        arrays["node_left_"][internal] = 10**6

    forge(saved["sklearn_iforest"], target, child_out_of_range)
    with pytest.raises(ModelFormatError, match="child index"):
        IsolationForestDetector.load(target)

    def cycle(arrays: dict[str, np.ndarray]) -> None:
        internal = np.flatnonzero(arrays["node_left_"] >= 0)[3]
        arrays["node_right_"][internal] = internal  # a node pointing at itself: endless walk

    forge(saved["sklearn_iforest"], target, cycle)
    with pytest.raises(ModelFormatError, match="child index"):
        load_detector(target)

    forge(saved["hbos"], target, lambda a: a["edge_ptr_"].__setitem__(-1, 10**6))
    with pytest.raises(ModelFormatError, match="pointers"):
        load_detector(target)

    forge(saved["ecod"], target, lambda a: a.__setitem__("train_", a["train_"][:, :3].copy()))
    with pytest.raises(ModelFormatError, match="train_"):
        load_detector(target)

    forge(saved["ecod"], target, lambda a: a.__setitem__("extra_", np.zeros(2)))
    with pytest.raises(ModelFormatError, match="arrays"):
        load_detector(target)

    forge(saved["ecod"], target, lambda a: a.__setitem__("train_", a["train_"].astype(np.float32)))
    with pytest.raises(ModelFormatError, match="float64"):
        load_detector(target)


def test_object_arrays_are_never_unpickled(saved: dict[str, Path], tmp_path: Path) -> None:
    header, _ = split_file(saved["ecod"])
    buffer = io.BytesIO()
    np.savez(buffer, train_=np.array([{"a": 1}], dtype=object))  # numpy pickles object arrays
    payload = buffer.getvalue()
    header.update(payload_bytes=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest())
    header["arrays"] = {"train_": {"dtype": "|O", "shape": [1]}}
    target = tmp_path / "objects.npz"
    join_file(target, header, payload)
    with pytest.raises(ModelFormatError, match=r"not a plain \.npz|non-numeric"):
        load_detector(target)


def test_save_is_atomic_and_leaves_no_temp_files(fitted: dict[str, Detector], tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    fitted["copod"].save(path)
    fitted["ecod"].save(path)  # replaces it
    assert load_detector(path).algorithm == "ecod"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_no_pickle_or_joblib_in_the_package() -> None:
    for source in DETECTORS_DIR.glob("*.py"):
        text = source.read_text()
        assert not re.search(r"^\s*(import|from)\s+(pickle|joblib|cloudpickle|dill)\b", text, re.M), source
        assert "allow_pickle=True" not in text, source


def test_version_is_a_content_hash(
    fitted: dict[str, Detector], training_data: tuple[np.ndarray, list[str]]
) -> None:
    X, names = training_data
    twin = ECODDetector().fit(X, names)
    assert twin.version_ == fitted["ecod"].version_  # same data, same params: same version
    renamed = ECODDetector().fit(X, [f"g{i}" for i in range(6)])
    assert renamed.version_ != twin.version_
