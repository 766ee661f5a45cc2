"""The supervised review-text model (detectors.text_model): frozen scoring, files, grouped CV."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from detectors.persistence import ModelFormatError, ModelIntegrityError, read_envelope, write_envelope
from detectors.text_model import ReviewTextModel, char_ngrams, grouped_cv, word_ngrams

COMMON = [
    "the",
    "product",
    "arrived",
    "box",
    "colour",
    "size",
    "fit",
    "works",
    "item",
    "seller",
    "order",
    "package",
    "week",
]
SPAM = [
    "amazing",
    "best",
    "ever",
    "buy",
    "now",
    "perfect",
    "highly",
    "recommend",
    "five",
    "stars",
    "love",
    "gorgeous",
]
HAM = [
    "okay",
    "decent",
    "slightly",
    "small",
    "but",
    "returned",
    "average",
    "fine",
    "though",
    "issue",
    "scratched",
    "loose",
]
TRICKY = [
    "".join(chr(ord(c) + 0xFEE0) for c in "BEST") + "  product\n\tEVER!!! Buy now",
    "",
    "   ",
    "हिन्दी समीक्षा बहुत अच्छा",
    "\u00e9moji \U0001f600\U0001f600 ok \u2013 fine\u2026",
    "never-seen-before vocabulary zzzz qqqq",
]


def corpus(
    n_accounts: int = 60, per_account: int = 4, seed: int = 0
) -> tuple[list[str], list[int], list[str]]:
    """Synthetic separable task: abusive accounts sprinkle spam words, others complaints."""
    rng = random.Random(seed)
    texts, labels, groups = [], [], []
    for account in range(n_accounts):
        label = int(account % 3 == 0)
        for _ in range(per_account):
            words = [rng.choice(COMMON) for _ in range(rng.randint(6, 12))]
            words += [rng.choice(SPAM if label else HAM) for _ in range(rng.randint(1, 3))]
            rng.shuffle(words)
            texts.append(" ".join(words) + rng.choice([".", "!", "!!", " :)"]))
            labels.append(label)
            groups.append(f"acct{account}")
    return texts, labels, groups


@pytest.fixture(scope="module")
def fitted() -> ReviewTextModel:
    texts, labels, _ = corpus()
    return ReviewTextModel().fit(texts, labels)


def test_analyzers() -> None:
    assert word_ngrams("Best product, EVER!", (1, 2)) == [
        "best",
        "product",
        "ever",
        "best product",
        "product ever",
    ]
    assert char_ngrams("Ab  c", (3, 3)) == ["ab ", "b c"]
    assert word_ngrams("", (1, 2)) == [] and char_ngrams("ab", (3, 5)) == []


def test_frozen_scorer_reproduces_sklearn_predict_proba(fitted: ReviewTextModel) -> None:
    texts, _, _ = corpus(seed=7)  # unseen texts
    for batch in (texts, TRICKY):
        expected = fitted.pipeline_.predict_proba(batch)[:, 1]
        np.testing.assert_allclose(fitted.score(batch), expected, rtol=0, atol=1e-9)
    assert (
        fitted.score(["buy now amazing perfect five stars"])[0]
        > 0.5
        > fitted.score(["returned, scratched and loose"])[0]
    )


def test_explain_names_the_ngrams_pushing_towards_abuse(fitted: ReviewTextModel) -> None:
    parts = fitted.explain("Amazing item, highly recommend, five stars!", top=5)
    assert 1 <= len(parts) <= 5
    assert all(p.weight > 0 for p in parts)
    assert [p.weight for p in parts] == sorted((p.weight for p in parts), reverse=True)
    assert {"amazing", "recommend", "stars", "five stars", "highly recommend", "highly", "five"} & {
        p.ngram for p in parts if p.kind == "word"
    }
    assert fitted.explain("anything", top=0) == []


def test_save_load_round_trip(fitted: ReviewTextModel, tmp_path: Path) -> None:
    path = tmp_path / "text.model"
    fitted.save(path)
    loaded = ReviewTextModel.load(path)
    texts, _, _ = corpus(seed=3)
    np.testing.assert_array_equal(loaded.score(texts + TRICKY), fitted.score(texts + TRICKY))
    assert loaded.version == fitted.version and loaded.version.startswith("review_text_tfidf_lr-")
    assert loaded.explain(texts[0]) == fitted.explain(texts[0])
    assert not hasattr(loaded, "pipeline_")  # scoring needs no scikit-learn object
    # the payload is a plain .npz, loadable without pickle
    header, arrays = read_envelope(path)
    assert set(arrays) == {"idf_word", "idf_char", "coef", "intercept"}
    assert header["vocabularies"]["word"] == fitted.word_vocab_


def test_tampered_and_foreign_files_are_refused(fitted: ReviewTextModel, tmp_path: Path) -> None:
    path = tmp_path / "text.model"
    fitted.save(path)
    raw = path.read_bytes()

    flipped = bytearray(raw)
    flipped[-40] ^= 0xFF  # inside the .npz payload
    (tmp_path / "flipped").write_bytes(bytes(flipped))
    with pytest.raises(ModelIntegrityError):
        ReviewTextModel.load(tmp_path / "flipped")

    # a consistent envelope whose vocabulary was edited: the content hash catches it
    header, arrays = read_envelope(path)
    header["vocabularies"]["word"][0] = "tampered"
    for key in ("format", "format_version", "arrays", "payload_bytes", "payload_sha256"):
        header.pop(key)
    write_envelope(tmp_path / "edited", header, arrays)
    with pytest.raises(ModelIntegrityError, match="hash"):
        ReviewTextModel.load(tmp_path / "edited")

    # a model of another kind in the same envelope format
    header, arrays = read_envelope(path)
    write_envelope(tmp_path / "other", {"algorithm": "iforest"}, arrays)
    with pytest.raises(ModelFormatError, match="iforest"):
        ReviewTextModel.load(tmp_path / "other")

    (tmp_path / "pickled").write_bytes(pickle.dumps({"coef": [1.0]}))
    with pytest.raises(ModelFormatError, match="not a riskctl"):
        ReviewTextModel.load(tmp_path / "pickled")

    np.savez(tmp_path / "bare.npz", coef=np.zeros(3))
    with pytest.raises(ModelFormatError):
        ReviewTextModel.load(tmp_path / "bare.npz")

    (tmp_path / "truncated").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFormatError):
        ReviewTextModel.load(tmp_path / "truncated")


def test_grouped_cv_learns_the_separable_task() -> None:
    texts, labels, groups = corpus()
    result = grouped_cv(texts, labels, groups, folds=5, seed=0)
    assert result["splitter"] == "StratifiedGroupKFold"
    assert result["auc"] >= 0.9 and result["ap"] >= 0.8 and result["oof_auc"] >= 0.9
    assert len(result["per_fold"]) == 5
    for fold in result["per_fold"]:
        assert fold["n_train"] + fold["n_test"] == len(texts) and fold["auc"] is not None
    # deterministic for a seed
    assert grouped_cv(texts, labels, groups, folds=5, seed=0)["per_fold"] == result["per_fold"]


def test_grouped_cv_without_enough_positive_groups_falls_back_to_group_kfold() -> None:
    texts, labels, groups = corpus(n_accounts=12)
    labels = [int(g in {"acct0", "acct3"}) for g in groups]  # positives in only 2 groups
    result = grouped_cv(texts, labels, groups, folds=4)
    assert result["splitter"] == "GroupKFold"
    assert len(result["per_fold"]) == 4
    assert sum(f["auc"] is None for f in result["per_fold"]) >= 2  # folds without positives


def test_inputs_are_validated() -> None:
    texts, labels, groups = corpus(n_accounts=6)
    with pytest.raises(ValueError, match="both classes"):
        ReviewTextModel().fit(texts, [0] * len(texts))
    with pytest.raises(ValueError, match="0/1"):
        ReviewTextModel().fit(texts, [2] * len(texts))
    with pytest.raises(TypeError, match="not one string"):
        ReviewTextModel().fit("one text", [1])
    with pytest.raises(ValueError, match="groups cannot make"):
        grouped_cv(texts, labels, groups, folds=10)
    with pytest.raises(ValueError, match="C must be"):
        ReviewTextModel(C=0).fit(texts, labels)
    with pytest.raises(ValueError, match="not fitted"):
        ReviewTextModel().score(["x"])
