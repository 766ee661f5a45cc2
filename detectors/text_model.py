"""Supervised review-text model: TF-IDF word 1-2-grams + char 3-5-grams, logistic regression.

Train with scikit-learn, score frozen. ``fit`` trains a ``Pipeline(FeatureUnion(word TF-IDF,
char TF-IDF), LogisticRegression(class_weight="balanced"))`` and then copies what it learned
into plain data: the two vocabularies (term -> column), the two idf vectors, the coefficient
vector and the intercept. ``score`` always uses that frozen copy (scikit-learn is not needed
to score), which reproduces ``pipeline_.predict_proba(texts)[:, 1]`` to floating-point
rounding (tested to 1e-9):

* both vectorizers use the analyzers of this module (passed to scikit-learn as callables), so
  the tokens are the same by construction: word n-grams of ``normalize_text`` tokens (NFKC,
  casefold, punctuation/symbols as separators; combining marks stay inside words) and char
  n-grams of the NFKC-casefolded text with whitespace runs collapsed;
* tf = 1 + ln(count) (``sublinear_tf``), times idf, each block L2-normalised on its own
  (that is what a ``FeatureUnion`` of two ``TfidfVectorizer`` does), then
  ``expit(x . coef + intercept)``.

Files (``save``/``load``) use the riskctl model envelope of ``persistence`` (magic, JSON
header, ``.npz`` payload read with ``allow_pickle=False``, SHA-256 of the payload and a
content hash over params, vocabularies and arrays), never pickle. The vocabularies are JSON in
the header; idf vectors, coefficients and intercept are float64 arrays in the payload.

``grouped_cv`` estimates out-of-sample ROC AUC and average precision with folds that never
split a group (e.g. an account) between train and test.
"""

from __future__ import annotations

import functools
import math
import os
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, NamedTuple, Self, cast

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

from .persistence import (
    ModelFormatError,
    ModelIntegrityError,
    content_hash,
    read_envelope,
    write_envelope,
)
from .reviews import normalize_text

__all__ = ["Contribution", "ReviewTextModel", "char_ngrams", "grouped_cv", "word_ngrams"]

ALGORITHM = "review_text_tfidf_lr"
#: Version of the analyzers; bump when tokenisation changes (old files are then refused).
ANALYZER_VERSION = 1
_ARRAYS = frozenset({"idf_word", "idf_char", "coef", "intercept"})
_MAX_HEADER_BYTES = 16 * 1024 * 1024  # what persistence accepts


# ---------------------------------------------------------------------------- analyzers


def word_ngrams(text: str, ngram_range: tuple[int, int] = (1, 2)) -> list[str]:
    """Word n-grams (space-joined) of the normalised text's tokens."""
    tokens = normalize_text(text).split()
    lo, hi = ngram_range
    out: list[str] = []
    for n in range(lo, hi + 1):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


def char_ngrams(text: str, ngram_range: tuple[int, int] = (3, 5)) -> list[str]:
    """Character n-grams of the NFKC-casefolded text, whitespace runs collapsed to a space."""
    norm = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    lo, hi = ngram_range
    out: list[str] = []
    for n in range(lo, hi + 1):
        out.extend(norm[i : i + n] for i in range(len(norm) - n + 1))
    return out


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("pass a sequence of texts, not one string")
    out = list(texts)
    for t in out:
        if not isinstance(t, str):
            raise TypeError(f"texts must be strings, got {type(t).__name__}")
    return out


def _binary_labels(labels: ArrayLike, n: int) -> NDArray[np.int64]:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"expected {n} labels, got shape {y.shape}")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1 (or booleans); 1 = abusive")
    y = y.astype(np.int64)
    if len(np.unique(y)) != 2:
        raise ValueError("labels must contain both classes")
    return y


def _pair(value: Any, name: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of ints, got {value!r}") from None
    if not 1 <= lo <= hi <= 10:
        raise ValueError(f"{name} must satisfy 1 <= min <= max <= 10, got {value!r}")
    return lo, hi


class Contribution(NamedTuple):
    ngram: str
    kind: str  # "word" or "char"
    weight: float  # tf-idf value x coefficient: its share of the log-odds


# ---------------------------------------------------------------------------- model


class ReviewTextModel:
    """TF-IDF + logistic regression review classifier; scores with a frozen copy."""

    def __init__(
        self,
        *,
        word_ngram_range: tuple[int, int] = (1, 2),
        char_ngram_range: tuple[int, int] = (3, 5),
        min_df: int = 1,
        max_word_features: int = 100_000,
        max_char_features: int = 200_000,
        C: float = 4.0,
        max_iter: int = 2000,
    ) -> None:
        # tuple() of the annotated pair is still a pair (mypy widens it to tuple[int, ...]);
        # _validate() checks and normalises it before it is used.
        self.word_ngram_range = cast("tuple[int, int]", tuple(word_ngram_range))
        self.char_ngram_range = cast("tuple[int, int]", tuple(char_ngram_range))
        self.min_df = min_df
        self.max_word_features = max_word_features
        self.max_char_features = max_char_features
        self.C = C
        self.max_iter = max_iter

    # -- parameters
    def get_params(self) -> dict[str, Any]:
        return {
            "word_ngram_range": list(self.word_ngram_range),
            "char_ngram_range": list(self.char_ngram_range),
            "min_df": self.min_df,
            "max_word_features": self.max_word_features,
            "max_char_features": self.max_char_features,
            "C": self.C,
            "max_iter": self.max_iter,
        }

    def _validate(self) -> None:
        self.word_ngram_range = _pair(self.word_ngram_range, "word_ngram_range")
        self.char_ngram_range = _pair(self.char_ngram_range, "char_ngram_range")
        for name in ("min_df", "max_word_features", "max_char_features", "max_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if (
            isinstance(self.C, bool)
            or not isinstance(self.C, int | float)
            or not 0 < float(self.C) < math.inf
        ):
            raise ValueError(f"C must be a positive number, got {self.C!r}")

    # -- training
    def build_pipeline(self) -> Any:
        """The (unfitted) scikit-learn pipeline that ``fit`` trains."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, Pipeline

        self._validate()
        common = {
            "min_df": self.min_df,
            "sublinear_tf": True,
            "norm": "l2",
            "smooth_idf": True,
            "dtype": np.float64,
        }
        union = FeatureUnion(
            [
                (
                    "word",
                    TfidfVectorizer(
                        analyzer=functools.partial(word_ngrams, ngram_range=self.word_ngram_range),
                        max_features=self.max_word_features,
                        **common,
                    ),
                ),
                (
                    "char",
                    TfidfVectorizer(
                        analyzer=functools.partial(char_ngrams, ngram_range=self.char_ngram_range),
                        max_features=self.max_char_features,
                        **common,
                    ),
                ),
            ]
        )
        classifier = LogisticRegression(C=float(self.C), class_weight="balanced", max_iter=self.max_iter)
        return Pipeline([("features", union), ("classifier", classifier)])

    def fit(self, texts: Sequence[str], labels: ArrayLike) -> Self:
        """Train on texts with 0/1 labels (1 = abusive); keeps ``pipeline_`` for comparison."""
        docs = _texts(texts)
        y = _binary_labels(labels, len(docs))
        pipeline = self.build_pipeline().fit(docs, y)
        union = pipeline.named_steps["features"]
        classifier = pipeline.named_steps["classifier"]
        word, char = union.transformer_list[0][1], union.transformer_list[1][1]
        if list(classifier.classes_) != [0, 1]:  # pragma: no cover - guaranteed by _binary_labels
            raise RuntimeError(f"unexpected classes {classifier.classes_!r}")
        self.pipeline_ = pipeline
        self._set_learned(
            word_vocab=_vocab_list(word.vocabulary_),
            char_vocab=_vocab_list(char.vocabulary_),
            idf_word=np.asarray(word.idf_, dtype=np.float64),
            idf_char=np.asarray(char.idf_, dtype=np.float64),
            coef=np.asarray(classifier.coef_, dtype=np.float64).ravel(),
            intercept=np.asarray(classifier.intercept_, dtype=np.float64).ravel(),
        )
        self.created_at_ = datetime.now(UTC).isoformat(timespec="seconds")
        self.trained_with_ = _library_versions()
        return self

    def _set_learned(
        self,
        *,
        word_vocab: list[str],
        char_vocab: list[str],
        idf_word: NDArray[np.float64],
        idf_char: NDArray[np.float64],
        coef: NDArray[np.float64],
        intercept: NDArray[np.float64],
    ) -> None:
        self.word_vocab_ = word_vocab
        self.char_vocab_ = char_vocab
        self.idf_word_ = idf_word
        self.idf_char_ = idf_char
        self.coef_ = coef
        self.intercept_ = intercept
        self._word_index = {t: i for i, t in enumerate(word_vocab)}
        self._char_index = {t: i for i, t in enumerate(char_vocab)}
        self._word_analyzer = functools.partial(word_ngrams, ngram_range=self.word_ngram_range)
        self._char_analyzer = functools.partial(char_ngrams, ngram_range=self.char_ngram_range)
        self.version_ = f"{ALGORITHM}-{self._content_hash()[:16]}"

    # -- frozen scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "version_"):
            raise ValueError("this ReviewTextModel is not fitted yet; call fit() or load()")

    @staticmethod
    def _block(
        docs: list[str], analyzer: Any, index: Mapping[str, int], idf: NDArray[np.float64]
    ) -> sp.csr_matrix:
        indptr: list[int] = [0]
        indices: list[int] = []
        data: list[int] = []
        for doc in docs:
            counts = Counter(t for t in analyzer(doc) if t in index)
            cols = sorted(index[t] for t in counts)
            inverse = {index[t]: c for t, c in counts.items()}
            indices.extend(cols)
            data.extend(inverse[c] for c in cols)
            indptr.append(len(indices))
        matrix = sp.csr_matrix(
            (
                np.asarray(data, dtype=np.float64),
                np.asarray(indices, dtype=np.int64),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(docs), idf.shape[0]),
        )
        matrix.data = (np.log(matrix.data) + 1.0) * idf[matrix.indices]
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0.0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / norms) @ matrix)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The TF-IDF feature matrix (word block, then char block) of the frozen model."""
        self._check_fitted()
        docs = _texts(texts)
        word = self._block(docs, self._word_analyzer, self._word_index, self.idf_word_)
        char = self._block(docs, self._char_analyzer, self._char_index, self.idf_char_)
        return sp.csr_matrix(sp.hstack([word, char], format="csr"))

    def decision_function(self, texts: Sequence[str]) -> NDArray[np.float64]:
        return np.asarray(self.transform(texts) @ self.coef_, dtype=np.float64) + self.intercept_[0]

    def score(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Probability that each text is abusive (class 1)."""
        return np.asarray(expit(self.decision_function(texts)), dtype=np.float64)

    def explain(self, text: str, top: int = 5) -> list[Contribution]:
        """The ``top`` n-grams of ``text`` with the largest positive contributions."""
        if top < 0:
            raise ValueError("top must be >= 0")
        row = self.transform([text])
        n_word = len(self.word_vocab_)
        parts = []
        for col, value in zip(row.indices, row.data, strict=True):
            weight = float(value * self.coef_[col])
            if weight > 0.0:
                if col < n_word:
                    parts.append(Contribution(self.word_vocab_[col], "word", weight))
                else:
                    parts.append(Contribution(self.char_vocab_[col - n_word], "char", weight))
        parts.sort(key=lambda c: (-c.weight, c.kind, c.ngram))
        return parts[:top]

    # -- persistence
    def _arrays(self) -> dict[str, NDArray[np.float64]]:
        return {
            "idf_word": self.idf_word_,
            "idf_char": self.idf_char_,
            "coef": self.coef_,
            "intercept": self.intercept_,
        }

    def _hash_params(self) -> dict[str, Any]:
        return {**self.get_params(), "analyzer_version": ANALYZER_VERSION, "n_word": len(self.word_vocab_)}

    def _content_hash(self) -> str:
        return content_hash(
            ALGORITHM, self._hash_params(), self.word_vocab_ + self.char_vocab_, self._arrays()
        )

    @property
    def version(self) -> str:
        self._check_fitted()
        return self.version_

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the frozen model (JSON header + .npz payload in one envelope; no pickle)."""
        self._check_fitted()
        header = {
            "algorithm": ALGORITHM,
            "model_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "analyzer_version": ANALYZER_VERSION,
            "params": self.get_params(),
            "vocabularies": {"word": self.word_vocab_, "char": self.char_vocab_},
            "model_version": self.version_,
            "content_sha256": self._content_hash(),
            "created_at": getattr(self, "created_at_", ""),
            "trained_with": getattr(self, "trained_with_", {}),
        }
        approx = sum(len(t.encode()) + 3 for t in self.word_vocab_ + self.char_vocab_)
        if approx > _MAX_HEADER_BYTES - 65536:
            raise ValueError("vocabularies too large for the model header; lower max_*_features")
        write_envelope(path, header, self._arrays())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Load a frozen model written by ``save``; anything else raises ModelFormatError."""
        header, arrays = read_envelope(path)
        if header.get("algorithm") != ALGORITHM:
            raise ModelFormatError(f"the file holds a {header.get('algorithm')!r} model, not {ALGORITHM!r}")
        if header.get("analyzer_version") != ANALYZER_VERSION:
            raise ModelFormatError(
                f"analyzer version {header.get('analyzer_version')!r} is not {ANALYZER_VERSION}"
            )
        params = header.get("params")
        if not isinstance(params, dict) or set(params) != set(cls().get_params()):
            raise ModelFormatError(f"model params {params!r} do not fit {cls.__name__}")
        model = cls(**params)
        try:
            model._validate()
        except ValueError as exc:
            raise ModelFormatError(f"model params are invalid: {exc}") from exc
        vocabularies = header.get("vocabularies")
        if not isinstance(vocabularies, dict) or set(vocabularies) != {"word", "char"}:
            raise ModelFormatError("model header lacks the two vocabularies")
        word, char = vocabularies["word"], vocabularies["char"]
        for name, vocab in (("word", word), ("char", char)):
            if not isinstance(vocab, list) or not all(isinstance(t, str) and t for t in vocab):
                raise ModelFormatError(f"{name} vocabulary must be a list of non-empty strings")
            if len(set(vocab)) != len(vocab):
                raise ModelFormatError(f"{name} vocabulary has duplicate terms")
        if set(arrays) != _ARRAYS:
            raise ModelFormatError(f"model arrays {sorted(arrays)} are not those of {cls.__name__}")
        shapes = {
            "idf_word": (len(word),),
            "idf_char": (len(char),),
            "coef": (len(word) + len(char),),
            "intercept": (1,),
        }
        for name, shape in shapes.items():
            array = arrays[name]
            if array.dtype != np.float64 or array.shape != shape or not np.isfinite(array).all():
                raise ModelFormatError(f"array {name!r} must be finite float64 of shape {shape}")
        if (arrays["idf_word"] < 1.0).any() or (arrays["idf_char"] < 1.0).any():
            raise ModelFormatError("smoothed idf values are >= 1")
        model._set_learned(word_vocab=list(word), char_vocab=list(char), **{k: arrays[k] for k in _ARRAYS})
        if model._content_hash() != header.get("content_sha256"):
            raise ModelIntegrityError("model content does not match its recorded hash")
        if model.version_ != header.get("model_version"):
            raise ModelIntegrityError("model version in the header does not match its content")
        created, trained = header.get("created_at"), header.get("trained_with")
        model.created_at_ = created if isinstance(created, str) else ""
        model.trained_with_ = dict(trained) if isinstance(trained, dict) else {}
        return model


def _vocab_list(vocabulary: Mapping[str, int]) -> list[str]:
    terms = [""] * len(vocabulary)
    for term, column in vocabulary.items():
        terms[int(column)] = str(term)
    return terms


def _library_versions() -> dict[str, str]:
    versions = {}
    for dist in ("numpy", "scipy", "scikit-learn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover
            continue
    return versions


# ---------------------------------------------------------------------------- evaluation


def grouped_cv(
    texts: Sequence[str],
    labels: ArrayLike,
    groups: ArrayLike,
    folds: int = 5,
    seed: int = 0,
    **params: Any,
) -> dict[str, Any]:
    """Grouped cross-validation of ``ReviewTextModel(**params)``: ROC AUC and average precision.

    Groups (e.g. the reviewer account) never straddle train and test, so the model cannot
    score well by memorising an author's phrasing. ``StratifiedGroupKFold`` (shuffled with
    ``seed``) when each class occurs in at least ``folds`` groups, else ``GroupKFold``.
    ``auc``/``ap`` are means over folds whose test part holds both classes; ``oof_auc``/
    ``oof_ap`` are computed on all out-of-fold scores pooled.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    docs = _texts(texts)
    y = _binary_labels(labels, len(docs))
    g = np.asarray(groups)
    if g.shape != (len(docs),):
        raise ValueError(f"expected {len(docs)} groups, got shape {g.shape}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError("folds must be an int >= 2")
    if len(np.unique(g)) < folds:
        raise ValueError(f"{len(np.unique(g))} groups cannot make {folds} folds")
    stratify = all(len(np.unique(g[y == c])) >= folds for c in (0, 1))
    splitter: Any = (
        StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        if stratify
        else GroupKFold(n_splits=folds)
    )
    oof = np.full(len(docs), np.nan)
    per_fold = []
    for fold, (train, test) in enumerate(splitter.split(np.zeros(len(docs)), y, g)):
        entry: dict[str, Any] = {
            "fold": fold,
            "n_train": int(train.size),
            "n_test": int(test.size),
            "n_test_positive": int(y[test].sum()),
            "auc": None,
            "ap": None,
        }
        if len(np.unique(y[train])) == 2:
            model = ReviewTextModel(**params).fit([docs[i] for i in train], y[train])
            scores = model.score([docs[i] for i in test])
            oof[test] = scores
            if len(np.unique(y[test])) == 2:
                entry["auc"] = float(roc_auc_score(y[test], scores))
                entry["ap"] = float(average_precision_score(y[test], scores))
        per_fold.append(entry)
    aucs = [f["auc"] for f in per_fold if f["auc"] is not None]
    aps = [f["ap"] for f in per_fold if f["ap"] is not None]
    scored = ~np.isnan(oof)
    pooled = scored.any() and len(np.unique(y[scored])) == 2
    return {
        "auc": float(np.mean(aucs)) if aucs else math.nan,
        "ap": float(np.mean(aps)) if aps else math.nan,
        "auc_std": float(np.std(aucs)) if aucs else math.nan,
        "ap_std": float(np.std(aps)) if aps else math.nan,
        "oof_auc": float(roc_auc_score(y[scored], oof[scored])) if pooled else math.nan,
        "oof_ap": float(average_precision_score(y[scored], oof[scored])) if pooled else math.nan,
        "splitter": type(splitter).__name__,
        "folds": folds,
        "per_fold": per_fold,
    }
