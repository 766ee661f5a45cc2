"""Anomaly detectors on the check path: specs from configuration, models from training.

``detectors.yaml`` declares, per event kind, which features a detector reads, its algorithm
and parameters, its contamination (which sets the flagging threshold), the score it adds
to a check when it flags, and whether it is live or shadow. ``riskctl train`` fits a spec
on stored decisions' features and writes a versioned model file into the instance folder;
every worker picks the new model up within a second, like rule packs.

On a check, each loaded detector scores the event's features (a frozen scorer: a few
microseconds, thread-safe), emits a signal with its probability, threshold and - when it
flags - the features that drove it, and exposes ``detector.<name>.score`` to the rules.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detectors.base import Detector
from detectors.registry import ALGORITHMS, build, load_detector
from riskctl.decisions import Mode, Signal, SignalStatus, Source
from riskctl.errors import ConfigError
from riskctl.features import FeatureSchema, FeatureSpec, FeatureType

log = logging.getLogger(__name__)


class DetectorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    kind: Literal["order", "review", "coupon_redemption", "listing"]
    algorithm: str
    params: dict[str, Any] = Field(default_factory=dict)
    contamination: float = Field(default=0.02, gt=0, lt=0.5)
    score: float = Field(default=20.0, ge=0, le=100)
    mode: Literal["live", "shadow"] = "live"
    description: str = ""
    features: list[str] = Field(min_length=1)
    max_training_rows: int = Field(default=200_000, ge=100)

    @property
    def feature_name(self) -> str:
        return f"detector.{self.name}.score"


class DetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detectors: list[DetectorSpec] = Field(default_factory=list)


def load_specs(path: Path, schema: FeatureSchema) -> list[DetectorSpec]:
    """Read and check ``detectors.yaml``: unknown algorithms or features fail here, once."""
    if not path.exists():
        return []
    try:
        config = DetectorConfig.model_validate(yaml.safe_load(path.read_text()) or {})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    problems = []
    names = set()
    for spec in config.detectors:
        if spec.name in names:
            problems.append(f"{spec.name}: declared twice")
        names.add(spec.name)
        if spec.algorithm not in ALGORITHMS:
            problems.append(
                f"{spec.name}: unknown algorithm {spec.algorithm!r} (one of {sorted(ALGORITHMS)})"
            )
        for feature in spec.features:
            fs = schema.get(feature)
            if fs is None:
                problems.append(f"{spec.name}: unknown feature {feature!r}")
            elif not (fs.type.numeric or fs.type is FeatureType.BOOL):
                problems.append(f"{spec.name}: feature {feature!r} is {fs.type}, detectors read numbers")
            elif fs.kinds and spec.kind not in fs.kinds:
                problems.append(f"{spec.name}: feature {feature!r} does not exist for {spec.kind} events")
        try:
            build(spec.algorithm, contamination=spec.contamination, **spec.params)
        except (ValueError, TypeError) as exc:
            problems.append(f"{spec.name}: {exc}")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return config.detectors


def detector_schema(specs: Sequence[DetectorSpec]) -> list[FeatureSpec]:
    return [
        FeatureSpec(
            s.feature_name, FeatureType.FLOAT, f"{s.name} anomaly probability (0-1)", frozenset({s.kind})
        )
        for s in specs
    ]


def row_of(spec: DetectorSpec, features: dict[str, Any]) -> np.ndarray | None:
    """The spec's features as floats, or None when one is unavailable."""
    values = []
    for name in spec.features:
        v = features.get(name)
        if v is None:
            return None
        values.append(float(v))
    return np.asarray(values, dtype=np.float64)


@dataclass
class LoadedDetector:
    spec: DetectorSpec
    model: Detector
    path: Path

    @property
    def version(self) -> str:
        return str(self.model.version)


@dataclass
class DetectorSet:
    """The detectors in force for this process; satisfies ``riskctl.checks.DetectorSet``."""

    loaded: dict[str, list[LoadedDetector]] = field(default_factory=dict)  # by kind
    versions: dict[str, str] = field(default_factory=dict)

    def score(self, kind: str, features: dict[str, Any]) -> tuple[list[Signal], dict[str, Any]]:
        signals: list[Signal] = []
        out: dict[str, Any] = {}
        for det in self.loaded.get(kind, ()):
            spec = det.spec
            started = time.perf_counter()
            row = row_of(spec, features)
            mode = Mode(spec.mode)
            if row is None:
                out[spec.feature_name] = None
                signals.append(
                    Signal(
                        Source.DETECTOR,
                        f"detector.{spec.name}",
                        SignalStatus.ERROR,
                        "a feature it reads is unavailable",
                        spec.score,
                        mode=mode,
                        details={"version": det.version},
                    )
                )
                continue
            try:
                p = float(det.model.probability_one(row))
            except ValueError as exc:
                out[spec.feature_name] = None
                signals.append(
                    Signal(
                        Source.DETECTOR,
                        f"detector.{spec.name}",
                        SignalStatus.ERROR,
                        str(exc),
                        spec.score,
                        mode=mode,
                        details={"version": det.version},
                    )
                )
                continue
            threshold = float(det.model.threshold_)
            hit = p >= threshold
            details: dict[str, Any] = {
                "probability": round(p, 6),
                "threshold": round(threshold, 6),
                "version": det.version,
            }
            if hit:
                details["drivers"] = [
                    {"feature": name, "contribution": round(c, 6), "value": features.get(name)}
                    for name, c in det.model.explain(row, top=3)
                ]
            out[spec.feature_name] = round(p, 6)
            signals.append(
                Signal(
                    Source.DETECTOR,
                    f"detector.{spec.name}",
                    SignalStatus.HIT if hit else SignalStatus.NO_HIT,
                    spec.description or f"{spec.name} finds this {kind} anomalous",
                    spec.score,
                    mode=mode,
                    details=details,
                    duration_us=(time.perf_counter() - started) * 1e6,
                )
            )
        return signals, out


class ModelStore:
    """Model files under ``<instance>/models/<name>/``; ``current`` names the live one."""

    def __init__(self, root: Path, specs: Sequence[DetectorSpec], interval_s: float = 1.0) -> None:
        self.root = root
        self.specs = list(specs)
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._next_check = 0.0
        self._signature: tuple[Any, ...] = ()
        self._set = DetectorSet()
        self.maybe_reload()

    def current(self) -> DetectorSet:
        self.maybe_reload()
        return self._set

    def pointer(self, name: str) -> Path:
        return self.root / name / "current"

    def _sig(self) -> tuple[Any, ...]:
        out: list[tuple[str, int | None, int | None]] = []
        for spec in self.specs:
            p = self.pointer(spec.name)
            try:
                st = p.stat()
                out.append((spec.name, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append((spec.name, None, None))
        return tuple(out)

    def maybe_reload(self) -> bool:
        now = time.monotonic()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return False
        try:
            self._next_check = now + self.interval_s
            sig = self._sig()
            if sig == self._signature:
                return False
            self._signature = sig
            self._set = self._load()
            return True
        finally:
            self._lock.release()

    def _load(self) -> DetectorSet:
        loaded: dict[str, list[LoadedDetector]] = {}
        versions: dict[str, str] = {}
        previous = {d.spec.name: d for dets in self._set.loaded.values() for d in dets}
        for spec in self.specs:
            pointer = self.pointer(spec.name)
            if not pointer.exists():
                continue
            path = pointer.parent / pointer.read_text().strip()
            old = previous.get(spec.name)
            if old is not None and old.path == path:
                det = old
            else:
                try:
                    model = load_detector(path)
                except (OSError, ValueError) as exc:
                    log.error("model %s not loaded, %s", path, exc)
                    if old is not None:
                        det = old  # keep serving the previous model
                    else:
                        continue
                else:
                    if list(model.feature_names_in_) != spec.features:
                        log.error("model %s was trained on other features than the spec; retrain", path)
                        continue
                    det = LoadedDetector(spec, model, path)
                    # Score once now: the first call compiles (or loads) the numba kernels,
                    # which must not happen inside a pipeline's millisecond budget.
                    zero = np.zeros(len(spec.features))
                    model.probability_one(zero)
                    model.explain(zero, top=3)
                    log.info("detector %s model %s is live", spec.name, det.version)
            loaded.setdefault(spec.kind, []).append(det)
            versions[spec.name] = det.version
        return DetectorSet(loaded, versions)

    def status(self) -> dict[str, str]:
        """Per declared detector: its live model version, ``untrained`` or ``failed``."""
        live = {d.spec.name: d.version for dets in self._set.loaded.values() for d in dets}
        out = {}
        for spec in self.specs:
            if spec.name in live:
                out[spec.name] = live[spec.name]
            elif self.pointer(spec.name).exists():
                out[spec.name] = "failed"
            else:
                out[spec.name] = "untrained"
        return out

    def ready(self) -> bool:
        """No model that exists failed to load (untrained detectors are simply not scored)."""
        return "failed" not in self.status().values()

    def save(self, spec: DetectorSpec, model: Detector) -> Path:
        folder = self.root / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{model.version}.model"  # our envelope, not a plain .npz
        model.save(path)
        tmp = folder / "current.tmp"
        tmp.write_text(path.name + "\n")
        tmp.replace(self.pointer(spec.name))  # atomic: readers see the old or the new name
        return path


def train(spec: DetectorSpec, rows: np.ndarray) -> Detector:
    model = build(spec.algorithm, contamination=spec.contamination, **spec.params)
    with warnings.catch_warnings():
        # scipy warns when a training column is (nearly) constant, e.g. a velocity count
        # that is always 1 in a young install; the detectors handle such columns.
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        return model.fit(rows, spec.features)
