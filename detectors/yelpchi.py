"""Offline evaluation of riskctl's structural review scoring on the YelpChi review graph.

The data (``metadata.gz``: ``user_id prod_id rating label date`` with rating and date
stripped to ``None``; label -1 = filtered by Yelp, 1 = recommended; plus the SpEagle prior
CSVs) is third-party research data for offline evaluation only: it is read from wherever it
lies and never copied. See ``/work/shared/data/README.md``.

Only the user-product graph is available, so every score here is label-free and uses the
graph alone (no text, ratings or dates). Signals computed, each reported with its AUC/AP:

* ``user_rarity``: ``-log(reviews by the user)``. One-off accounts are the bulk of the
  filtered reviews: this is the signal that works.
* ``product_obscurity``: ``-log(reviews of the product)`` (per user: mean over their products).
* ``product_oneoff_share``: share of the product's *other* reviewers who are one-review
  accounts: a label-free "spam-prone product" estimate (per user: mean over products).
* ``hits_inverse_hub``: minus the HITS hub score on the bipartite graph.
* ``dense_block``: FRAUDAR-style greedy peeling (column weights ``1/log(deg + 5)``), a user's
  position in the peeling order (later = inside a denser block); ties broken by a seeded
  random permutation, never by id.
* ``isolation_forest``: scikit-learn Isolation Forest on per-user structural features
  (log degree, mean/min/max log product degree, mean product one-off share).
* ``riskctl``: the score riskctl uses, ``rank(user_rarity) + 0.1 * rank(product_obscurity)``
  (ranks scaled to [0, 1]); the obscurity term only orders accounts of equal activity.

Leakage warning: in this file the row order within a product and the numbering of user ids
follow Yelp's crawl (recommended reviews first), so row position alone reaches review AUC ~0.98
and user id ~0.92. Nothing here uses ids or row order: scores are invariant to shuffling the
rows and relabelling the ids (tested).
"""

from __future__ import annotations

import heapq
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.stats import rankdata

__all__ = ["YelpChiGraph", "evaluate_yelpchi", "fraudar_peel_order", "load_yelpchi", "structural_scores"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

RISKCTL_OBSCURITY_WEIGHT = 0.1


@dataclass(frozen=True)
class YelpChiGraph:
    user_ids: IntArray  # original ids, sorted; users are indexed by position here
    prod_ids: IntArray
    review_user: IntArray  # per review: index into user_ids
    review_prod: IntArray
    review_spam: NDArray[np.int8]  # 1 = filtered by Yelp, 0 = recommended
    user_spam: NDArray[np.int8]  # 1 = at least one filtered review
    review_prior: FloatArray  # SpEagle review prior (NaN when absent)
    user_prior: FloatArray  # SpEagle user prior (NaN when absent)

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_prods(self) -> int:
        return int(self.prod_ids.shape[0])


def load_yelpchi(data_dir: str | os.PathLike[str]) -> YelpChiGraph:
    """Read metadata.gz and the SpEagle review/user priors (pandas)."""
    import pandas as pd

    root = Path(data_dir)
    meta = pd.read_csv(
        root / "metadata.gz",
        sep=" ",
        header=None,
        names=["user_id", "prod_id", "rating", "label", "date"],
        dtype={"user_id": np.int64, "prod_id": np.int64, "label": np.int64},
        usecols=[0, 1, 2, 3, 4],
    )
    if meta.empty:
        raise ValueError("metadata.gz holds no reviews")
    if not meta["label"].isin([-1, 1]).all():
        raise ValueError("labels must be -1 (filtered) or 1 (recommended)")
    if meta.duplicated(["user_id", "prod_id"]).any():
        raise ValueError("each (user_id, prod_id) pair must be unique")
    users = meta["user_id"].to_numpy()
    prods = meta["prod_id"].to_numpy()
    user_ids, review_user = np.unique(users, return_inverse=True)
    prod_ids, review_prod = np.unique(prods, return_inverse=True)
    review_spam = (meta["label"].to_numpy() == -1).astype(np.int8)
    user_spam = np.zeros(user_ids.shape[0], dtype=np.int8)
    np.maximum.at(user_spam, review_user, review_spam)

    rprior = pd.read_csv(
        root / "speagle_priors_review.csv.gz", dtype={"user_id": np.int64, "prod_id": np.int64}
    )
    rprior = rprior.rename(columns={rprior.columns[2]: "prior"})
    joined = meta[["user_id", "prod_id"]].merge(
        rprior, on=["user_id", "prod_id"], how="left", validate="one_to_one"
    )
    uprior = pd.read_csv(root / "speagle_priors_user.csv.gz", dtype={"user_id": np.int64})
    uprior = uprior.rename(columns={uprior.columns[1]: "prior"}).set_index("user_id")["prior"]
    if not uprior.index.is_unique:
        raise ValueError("speagle_priors_user.csv.gz has duplicate user ids")
    return YelpChiGraph(
        user_ids=user_ids.astype(np.int64),
        prod_ids=prod_ids.astype(np.int64),
        review_user=review_user.astype(np.int64),
        review_prod=review_prod.astype(np.int64),
        review_spam=review_spam,
        user_spam=user_spam,
        review_prior=joined["prior"].to_numpy(dtype=np.float64),
        user_prior=uprior.reindex(user_ids).to_numpy(dtype=np.float64),
    )


# ---------------------------------------------------------------------------- signals


def _unit_rank(values: FloatArray) -> FloatArray:
    """Average ranks scaled to [0, 1] (ties share a rank)."""
    if values.shape[0] < 2:
        return np.zeros(values.shape[0])
    return (rankdata(values) - 1.0) / (values.shape[0] - 1.0)


def fraudar_peel_order(
    review_user: IntArray, review_prod: IntArray, n_users: int, n_prods: int, *, seed: int = 0
) -> FloatArray:
    """FRAUDAR greedy peeling; per user, its removal position in [0, 1] (1 = peeled last).

    Node priority = total weight of its remaining edges, edge weight ``1 / log(deg(prod) + 5)``
    (FRAUDAR's column weighting, which discounts popular products). Ties are broken by a
    seeded random permutation so the order does not depend on how ids were assigned.
    """
    rng = np.random.default_rng(seed)
    prod_degree = np.bincount(review_prod, minlength=n_prods).astype(np.float64)
    weight = 1.0 / np.log(prod_degree[review_prod] + 5.0)
    n = n_users + n_prods
    node_a = review_user
    node_b = review_prod + n_users
    priority = np.bincount(node_a, weights=weight, minlength=n) + np.bincount(
        node_b, weights=weight, minlength=n
    )
    tiebreak = rng.permutation(n)
    adjacency = sp.csr_matrix(
        (
            np.concatenate([weight, weight]),
            (np.concatenate([node_a, node_b]), np.concatenate([node_b, node_a])),
        ),
        shape=(n, n),
    )
    indptr, indices, data = adjacency.indptr, adjacency.indices, adjacency.data
    prio = priority.tolist()
    tb = tiebreak.tolist()
    heap = [(prio[i], tb[i], i) for i in range(n)]
    heapq.heapify(heap)
    removed = np.zeros(n, dtype=bool)
    order = np.zeros(n, dtype=np.float64)
    position = 0
    while heap:
        p, _, node = heapq.heappop(heap)
        if removed[node] or p != prio[node]:
            continue
        removed[node] = True
        order[node] = position
        position += 1
        for k in range(indptr[node], indptr[node + 1]):
            other = int(indices[k])
            if not removed[other]:
                prio[other] -= float(data[k])
                heapq.heappush(heap, (prio[other], tb[other], other))
    return order[:n_users] / max(1, n - 1)


def _hits_hub(matrix: sp.csr_matrix, iterations: int = 100) -> FloatArray:
    hub = np.ones(matrix.shape[0]) / math.sqrt(matrix.shape[0])
    for _ in range(iterations):
        authority = matrix.T @ hub
        authority /= np.linalg.norm(authority) or 1.0
        new = matrix @ authority
        new /= np.linalg.norm(new) or 1.0
        if np.abs(new - hub).max() < 1e-12:
            hub = new
            break
        hub = new
    return np.asarray(hub, dtype=np.float64)


def structural_scores(
    review_user: IntArray, review_prod: IntArray, n_users: int, n_prods: int, *, seed: int = 0
) -> dict[str, dict[str, FloatArray]]:
    """Label-free suspicion scores from the bipartite graph alone (higher = more suspicious).

    Returns ``{"review": {signal: per-review scores}, "user": {signal: per-user scores}}``.
    """
    from sklearn.ensemble import IsolationForest

    ru, rp = np.asarray(review_user, dtype=np.int64), np.asarray(review_prod, dtype=np.int64)
    edges = np.ones(ru.shape[0])
    matrix = sp.csr_matrix((edges, (ru, rp)), shape=(n_users, n_prods))
    du = np.bincount(ru, minlength=n_users).astype(np.float64)
    dp = np.bincount(rp, minlength=n_prods).astype(np.float64)
    if (du == 0).any() or (dp == 0).any():
        raise ValueError("every user and product must have at least one review")
    log_du, log_dp = np.log(du), np.log(dp)

    # product spam-proneness without labels: share of one-off reviewers (excluding the review's own author)
    oneoff = (du == 1).astype(np.float64)
    oneoff_sum = np.bincount(rp, weights=oneoff[ru], minlength=n_prods)
    others = np.maximum(dp[rp] - 1.0, 1.0)
    review_oneoff = np.where(dp[rp] > 1, (oneoff_sum[rp] - oneoff[ru]) / others, 0.0)
    user_oneoff = np.bincount(ru, weights=review_oneoff, minlength=n_users) / du

    user_obscurity = -(matrix @ log_dp) / du
    min_ldp = np.full(n_users, np.inf)
    max_ldp = np.full(n_users, -np.inf)
    np.minimum.at(min_ldp, ru, log_dp[rp])
    np.maximum.at(max_ldp, ru, log_dp[rp])

    hub = _hits_hub(matrix)
    dense = fraudar_peel_order(ru, rp, n_users, n_prods, seed=seed)
    features = np.column_stack([log_du, -user_obscurity, min_ldp, max_ldp, user_oneoff])
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(features)
    iforest = -forest.score_samples(features)

    riskctl_user = _unit_rank(-log_du) + RISKCTL_OBSCURITY_WEIGHT * _unit_rank(user_obscurity)
    riskctl_review = _unit_rank(-log_du[ru]) + RISKCTL_OBSCURITY_WEIGHT * _unit_rank(-log_dp[rp])
    user = {
        "riskctl": riskctl_user,
        "user_rarity": -log_du,
        "product_obscurity": user_obscurity,
        "product_oneoff_share": user_oneoff,
        "hits_inverse_hub": -hub,
        "dense_block": dense,
        "isolation_forest": iforest,
    }
    review = {
        "riskctl": riskctl_review,
        "user_rarity": -log_du[ru],
        "product_obscurity": -log_dp[rp],
        "product_oneoff_share": review_oneoff,
        "hits_inverse_hub": -hub[ru],
        "dense_block": dense[ru],
        "isolation_forest": iforest[ru],
    }
    return {"review": review, "user": user}


# ---------------------------------------------------------------------------- evaluation


def _metrics(labels: NDArray[Any], scores: FloatArray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    known = ~np.isnan(scores)
    y, s = labels[known], scores[known]
    if y.size == 0 or len(np.unique(y)) < 2:
        return {"auc": math.nan, "ap": math.nan, "coverage": float(known.mean())}
    return {
        "auc": float(roc_auc_score(y, s)),
        "ap": float(average_precision_score(y, s)),
        "coverage": float(known.mean()),
    }


def _plot(
    out_png: Path, panels: list[tuple[str, NDArray[Any], dict[str, FloatArray], dict[str, dict[str, float]]]]
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve

    figure = Figure(figsize=(11, 4.6), dpi=110)
    FigureCanvasAgg(figure)
    for k, (title, labels, curves, metrics) in enumerate(panels):
        ax = figure.add_subplot(1, len(panels), k + 1)
        for name, scores in curves.items():
            known = ~np.isnan(scores)
            precision, recall, _ = precision_recall_curve(labels[known], scores[known])
            m = metrics[name]
            ax.step(recall, precision, where="post", label=f"{name} (AP {m['ap']:.3f}, AUC {m['auc']:.3f})")
        prevalence = float(np.mean(labels))
        ax.axhline(
            prevalence, color="grey", linestyle="--", linewidth=1, label=f"prevalence {prevalence:.3f}"
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=8)
    figure.suptitle("YelpChi: riskctl structural score vs SpEagle prior (label = Yelp filtered)")
    figure.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png)


def evaluate_yelpchi(
    data_dir: str | os.PathLike[str], out_png: str | os.PathLike[str], *, seed: int = 0
) -> dict[str, Any]:
    """Review- and user-level AUC/AP of riskctl's structural scores next to the SpEagle prior.

    Writes a precision-recall plot (reviews and users, riskctl vs SpEagle prior) to
    ``out_png``. Returns::

        {"data": {...counts and prevalences...},
         "review": {"riskctl": {"auc", "ap", "coverage"}, "speagle_prior": {...}},
         "user": {"riskctl": {...}, "speagle_prior": {...}},
         "signals": {"review": {signal: {"auc", "ap", "coverage"}}, "user": {...}},
         "seconds": wall time, "png": str(out_png)}
    """
    started = time.perf_counter()
    graph = load_yelpchi(data_dir)
    scores = structural_scores(graph.review_user, graph.review_prod, graph.n_users, graph.n_prods, seed=seed)
    signals = {
        "review": {name: _metrics(graph.review_spam, s) for name, s in scores["review"].items()},
        "user": {name: _metrics(graph.user_spam, s) for name, s in scores["user"].items()},
    }
    review = {
        "riskctl": signals["review"]["riskctl"],
        "speagle_prior": _metrics(graph.review_spam, graph.review_prior),
    }
    user = {
        "riskctl": signals["user"]["riskctl"],
        "speagle_prior": _metrics(graph.user_spam, graph.user_prior),
    }
    out = Path(out_png)
    _plot(
        out,
        [
            (
                f"reviews (n={graph.review_spam.size})",
                graph.review_spam,
                {"riskctl": scores["review"]["riskctl"], "speagle_prior": graph.review_prior},
                review,
            ),
            (
                f"users (n={graph.n_users})",
                graph.user_spam,
                {"riskctl": scores["user"]["riskctl"], "speagle_prior": graph.user_prior},
                user,
            ),
        ],
    )
    return {
        "data": {
            "reviews": int(graph.review_spam.size),
            "users": graph.n_users,
            "products": graph.n_prods,
            "spam_reviews": int(graph.review_spam.sum()),
            "spam_users": int(graph.user_spam.sum()),
            "review_prevalence": float(graph.review_spam.mean()),
            "user_prevalence": float(graph.user_spam.mean()),
        },
        "review": review,
        "user": user,
        "signals": signals,
        "seconds": time.perf_counter() - started,
        "png": str(out),
    }
