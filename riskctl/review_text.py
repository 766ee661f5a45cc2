"""The supervised review-text model in the service: training data, versioned files, the check feature.

``riskctl train reviews`` fits :class:`detectors.text_model.ReviewTextModel` on labelled
texts - a CSV, or the moderators' outcomes (resolved review cases) when no CSV is given -
and writes it into ``<instance>/models/review-text/<version>.model`` with a ``current``
pointer, like the tabular detectors. Every worker's :class:`TextModelStore` notices the new
pointer within a second; :class:`ReviewTextEnricher` then adds ``review.text_score`` (the
model's probability that the text is abusive, 0-1) and ``review.text_model`` (its version)
to every review check, so rules can read the score and the decision records which model
produced it. With no model (or a file that fails to load) the score is ``None``:
unavailable, never an error.
"""

from __future__ import annotations

import csv
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from detectors.text_model import ReviewTextModel
from riskctl.cases import case_labels
from riskctl.casestate import CaseStatus, Resolution, label_of
from riskctl.events import BaseEvent, ReviewEvent
from riskctl.features import FeatureSpec, FeatureType
from riskctl.models import Case, EventRecord

log = logging.getLogger(__name__)

#: Folder under ``<instance>/models``; a hyphen, so no detectors.yaml spec can claim it.
FOLDER = "review-text"
REVIEW = frozenset({"review"})
TEXT_SCHEMA: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "review.text_score", FeatureType.FLOAT, "supervised text model: probability of abuse (0-1)", REVIEW
    ),
    FeatureSpec("review.text_model", FeatureType.STR, "version of the text model that scored it", REVIEW),
)
MAX_SCORED_CHARS = 5_000  # the event schema's limit; scoring cost grows with length

_TRUE = {"1", "true", "yes", "abuse", "fraud", "spam", "fake", "malicious", "-1"}
_FALSE = {"0", "false", "no", "legit", "legitimate", "ok", "genuine", "ham", "real"}


def parse_label(value: Any) -> bool | None:
    """1/0, true/false, abuse/legit (and YelpChi's -1 = filtered); None if unrecognised."""
    text = str(value).strip().lower() if value is not None else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: list[int]
    groups: list[str]
    skipped: int  # rows without a usable text or label

    @property
    def positives(self) -> int:
        return sum(self.labels)


def read_labelled_csv(
    path: Path, text_col: str, label_col: str, group_col: str | None = None
) -> LabelledTexts:
    """Rows with a non-empty text and a recognised label; unknown columns raise ValueError."""
    texts: list[str] = []
    labels: list[int] = []
    groups: list[str] = []
    skipped = 0
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        for col in (text_col, label_col, group_col):
            if col is not None and col not in columns:
                raise ValueError(f"{path}: no column {col!r} (columns: {', '.join(columns) or 'none'})")
        for i, row in enumerate(reader):
            text, label = row.get(text_col) or "", parse_label(row.get(label_col))
            if not text.strip() or label is None:
                skipped += 1
                continue
            texts.append(text)
            labels.append(int(label))
            groups.append(str(row.get(group_col) or f"row-{i}") if group_col else f"row-{i}")
    return LabelledTexts(texts, labels, groups, skipped)


def scan_case_labels(engine: Engine) -> dict[str, bool]:
    """event_id -> abuse, from concluded cases opened by ``riskctl scan reviews``.

    Their findings list the event ids of the reviews involved; a confirmed-abuse case labels
    them all abusive, a false-positive case labels them legitimate.
    """
    out: dict[str, bool] = {}
    query = select(Case.status, Case.resolution, Case.evidence).where(
        Case.kind == "review", Case.source.like("scan:reviews.%"), Case.resolution.is_not(None)
    )
    with engine.connect() as conn:
        for status, resolution, evidence in conn.execute(query):
            label = label_of(CaseStatus(status), Resolution(resolution))
            if label is None:
                continue
            for finding in (evidence or {}).get("findings", []):
                for event_id in finding.get("event_ids", []):
                    out[str(event_id)] = label
    return out


def moderator_texts(engine: Engine) -> LabelledTexts:
    """Texts of stored review events that moderators concluded on (decision and scan cases).

    Grouped by reviewer, so ``grouped_cv`` never splits one author between train and test.
    """
    with engine.connect() as conn:
        labels = case_labels(conn)
    labels.update(scan_case_labels(engine))
    texts: list[str] = []
    values: list[int] = []
    groups: list[str] = []
    skipped = 0
    ids = sorted(labels)
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = conn.execute(
                select(EventRecord.event_id, EventRecord.subject_id, EventRecord.payload).where(
                    EventRecord.kind == "review", EventRecord.event_id.in_(chunk)
                )
            )
            for event_id, subject, payload in rows:
                text = (payload or {}).get("text") or ""
                if not text.strip():
                    skipped += 1
                    continue
                texts.append(text)
                values.append(int(labels[event_id]))
                groups.append(subject or event_id)
    return LabelledTexts(texts, values, groups, skipped)


def check_trainable(data: LabelledTexts, min_rows: int) -> None:
    if len(data.texts) < min_rows:
        raise ValueError(f"{len(data.texts)} labelled texts; at least {min_rows} are needed")
    if data.positives == 0 or data.positives == len(data.labels):
        raise ValueError("the labels must hold both abusive and legitimate texts")


class TextModelStore:
    """``<root>/review-text/<version>.model`` files and the ``current`` pointer; reloads live."""

    def __init__(self, root: Path, interval_s: float = 1.0) -> None:
        self.folder = Path(root) / FOLDER
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._next_check = 0.0
        self._signature: tuple[Any, ...] | None = None
        self._model: ReviewTextModel | None = None
        self._path: Path | None = None
        self.maybe_reload()

    @property
    def pointer(self) -> Path:
        return self.folder / "current"

    def current(self) -> ReviewTextModel | None:
        self.maybe_reload()
        return self._model

    def _sig(self) -> tuple[Any, ...]:
        try:
            st = self.pointer.stat()
        except FileNotFoundError:
            return (None, None)
        return (st.st_mtime_ns, st.st_size)

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
            if sig == (None, None):
                self._model, self._path = None, None
                return True
            path = self.folder / self.pointer.read_text().strip()
            if path == self._path:
                return False
            try:
                model = ReviewTextModel.load(path)
            except (OSError, ValueError) as exc:
                # keep serving the previous model (or none): a bad file never breaks checks
                log.error("review text model %s not loaded, %s", path, exc)
                return False
            model.score(["warm-up"])
            self._model, self._path = model, path
            log.info("review text model %s is live", model.version)
            return True
        finally:
            self._lock.release()

    def status(self) -> str:
        model = self.current()
        if model is not None:
            return model.version
        return "failed" if self.pointer.exists() else "untrained"

    def save(self, model: ReviewTextModel) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{model.version}.model"
        model.save(path)
        tmp = self.folder / "current.tmp"
        tmp.write_text(path.name + "\n")
        tmp.replace(self.pointer)  # atomic: readers see the old or the new name
        return path


def train_text_model(data: LabelledTexts, **params: Any) -> ReviewTextModel:
    return ReviewTextModel(**params).fit(data.texts, data.labels)


class ReviewTextEnricher:
    """Adds ``review.text_score`` and ``review.text_model`` to review checks."""

    kinds = REVIEW

    def __init__(self, store: TextModelStore) -> None:
        self.store = store

    def features(self, event: BaseEvent) -> dict[str, Any]:
        model = self.store.current()
        if model is None or not isinstance(event, ReviewEvent):
            return {"review.text_score": None, "review.text_model": ""}
        try:
            score = float(model.score([event.text[:MAX_SCORED_CHARS]])[0])
        except Exception:
            log.exception("review text model failed on event %s", event.event_id)
            return {"review.text_score": None, "review.text_model": model.version}
        return {"review.text_score": round(score, 6), "review.text_model": model.version}
