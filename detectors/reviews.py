"""Review-abuse signals: copy-paste farms, bursts, rating outliers, unverified reviews, rings.

Pure scoring code (no Flask, database or Redis). Input records are plain mappings or
objects with the attributes of ``Review``: review_id, reviewer_id, product_id, shop_id,
rating, text, time (epoch seconds or an *aware* datetime) and an optional order_id.

Signals
-------
* **Near-duplicate text across accounts** (``NearDuplicateIndex``, ``near_duplicate_clusters``):
  MinHash over character 5-gram shingles of the normalised text (NFKC, casefold, every
  punctuation/symbol run and whitespace run collapsed to one space), banded LSH tuned for
  recall (weights 0.1 false positives / 0.9 false negatives), then every LSH candidate is
  verified with the MinHash Jaccard estimate >= ``threshold`` (default 0.7). Texts shorter
  than ``min_chars`` normalised characters are not indexed: "great product!" is written
  independently by thousands of honest buyers. The index is incremental and thread-safe so a
  service can keep one in memory and feed it; the batch function links verified pairs
  (single linkage) and keeps clusters spanning >= ``min_accounts`` distinct accounts.
* **Bursts** (``detect_bursts``, ``BurstMonitor``): reviews per shop (or product) per UTC
  hour against that target's own history, the previous ``history_hours`` as far as they
  were observed (since the batch's first review, or ``history_start``; an hour is not tested
  before ``min_history_hours`` have been observed, so the first hours of a batch are never
  "bursts" for lack of history). The expected hourly count is ``(history + 1) / hours``
  and the burst p-value is the Poisson tail ``P(X >= count)``.
  A robust z-score is *not* used: most targets have zero reviews in most hours, so the MAD is
  0 and the z-score is undefined or infinite. Three streams are tested: all reviews, low
  ratings (<= 2, review bombing) and high ratings (>= 4, boosting). Buckets are fixed UTC
  hours, so a burst straddling an hour boundary is split in two.
* **Rating deviation** (``rating_deviations``): ``|rating - mean of the product's other
  reviews|`` (leave-one-out), only with at least ``min_others`` other reviews.
* **No matching purchase** (``check_purchases``): a review is verified when its
  ``order_id`` is a known order of that reviewer for that product/shop, or when
  (reviewer, product) or (reviewer, shop) is a known purchase.
* **Reviewer-shop collusion** (``find_collusion_rings``): accounts are grouped by the set of
  shops they review (MinHash LSH on the shop sets, verified with the exact Jaccard), each
  group is trimmed to a biclique-like core (shops reviewed by >= 80% of the group, accounts
  covering >= 80% of those shops), and kept only if the core block is far denser than a
  Chung-Lu (degree-preserving) random graph predicts (Poisson tail p-value), so groups of
  honest users of the same few popular shops are not opened. Groups are disjoint: one ring,
  one group.
* ``ReviewScorer`` combines these per review into a 0-1 score with a noisy-OR,
  ``1 - prod(1 - weight_i * strength_i)``, and keeps the per-signal explanations.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import numbers
import threading
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH
from scipy.stats import poisson

__all__ = [
    "Burst",
    "BurstMonitor",
    "CollusionRing",
    "DuplicateCluster",
    "NearDuplicateIndex",
    "PurchaseCheck",
    "RatingDeviation",
    "Review",
    "ReviewReport",
    "ReviewScore",
    "ReviewScorer",
    "SignalHit",
    "SimilarReview",
    "as_review",
    "as_reviews",
    "check_purchases",
    "detect_bursts",
    "find_collusion_rings",
    "near_duplicate_clusters",
    "normalize_text",
    "rating_deviations",
    "shingles",
    "to_epoch",
]

Target = Literal["shop", "product"]
Stream = Literal["all", "low", "high"]

# ---------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Review:
    """One review, validated: ids are strings, time is epoch seconds (UTC)."""

    review_id: str
    reviewer_id: str
    product_id: str
    shop_id: str
    rating: float
    text: str
    time: float
    order_id: str | None = None

    def target(self, by: Target) -> str:
        return self.shop_id if by == "shop" else self.product_id


def to_epoch(value: Any) -> float:
    """Epoch seconds from a number or an aware datetime (naive datetimes are refused)."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: pass an aware datetime or epoch seconds")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"time must be epoch seconds or an aware datetime, got {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"time must be finite, got {value!r}")
    return seconds


def _ident(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"{name} must be a string or an integer, got {type(value).__name__}")
    text = str(value)
    if not text:
        raise ValueError(f"{name} must not be empty")
    return text


def _field(record: Any, name: str, default: Any = ...) -> Any:
    if isinstance(record, Mapping):
        if name in record:
            return record[name]
    elif hasattr(record, name):
        return getattr(record, name)
    if default is ...:
        raise ValueError(f"review record lacks {name!r}")
    return default


def as_review(record: Review | Mapping[str, Any] | Any) -> Review:
    """Validate one record (a ``Review``, a mapping, or any object with those attributes)."""
    if isinstance(record, Review):
        return record
    rating = _field(record, "rating")
    if isinstance(rating, bool) or not isinstance(rating, numbers.Real) or not math.isfinite(float(rating)):
        raise ValueError(f"rating must be a finite number, got {rating!r}")
    text = _field(record, "text", "")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    order_id = _field(record, "order_id", None)
    return Review(
        review_id=_ident(_field(record, "review_id"), "review_id"),
        reviewer_id=_ident(_field(record, "reviewer_id"), "reviewer_id"),
        product_id=_ident(_field(record, "product_id"), "product_id"),
        shop_id=_ident(_field(record, "shop_id"), "shop_id"),
        rating=float(rating),
        text=text,
        time=to_epoch(_field(record, "time")),
        order_id=None if order_id is None or order_id == "" else _ident(order_id, "order_id"),
    )


def as_reviews(records: Iterable[Review | Mapping[str, Any] | Any]) -> list[Review]:
    """Validate a batch; review ids must be unique."""
    reviews = [as_review(r) for r in records]
    seen: set[str] = set()
    for review in reviews:
        if review.review_id in seen:
            raise ValueError(f"duplicate review_id {review.review_id!r} in the batch")
        seen.add(review.review_id)
    return reviews


def _check_by(by: str) -> Target:
    if by not in ("shop", "product"):
        raise ValueError(f"by must be 'shop' or 'product', got {by!r}")
    return by  # type: ignore[return-value]


# ---------------------------------------------------------------------------- text

# Unicode general categories folded to a space: punctuation, symbols, separators, controls.
# (Not ``\W``: that would also split words at combining marks, e.g. Devanagari vowel signs.)
_SEPARATOR_CATEGORIES = frozenset("PSZC")


def normalize_text(text: str) -> str:
    """NFKC, casefold, and every run of punctuation/symbols/whitespace collapsed to one space.

    NFKC folds full-width and compatibility characters (full-width BEST -> ``best``) so a farm
    cannot dodge the index with look-alike code points; casefold is Unicode-aware lowering.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    spaced = "".join(" " if unicodedata.category(ch)[0] in _SEPARATOR_CATEGORIES else ch for ch in folded)
    return " ".join(spaced.split())


def shingles(text: str, size: int = 5) -> set[str]:
    """Character ``size``-gram shingles of the normalised text (one shingle if shorter)."""
    if size < 1:
        raise ValueError("shingle size must be >= 1")
    norm = normalize_text(text)
    if not norm:
        return set()
    if len(norm) <= size:
        return {norm}
    return {norm[i : i + size] for i in range(len(norm) - size + 1)}


def _check_lsh_params(threshold: float, num_perm: int) -> None:
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    if not 16 <= int(num_perm) <= 1024:
        raise ValueError(f"num_perm must be in [16, 1024], got {num_perm!r}")


# ---------------------------------------------------------------------------- near duplicates


@dataclass(frozen=True, slots=True)
class SimilarReview:
    review_id: str
    account_id: str
    similarity: float  # MinHash estimate of the shingle-set Jaccard similarity


class NearDuplicateIndex:
    """Incremental MinHash-LSH index of review texts; thread-safe.

    ``add`` indexes a review; ``query`` returns the indexed reviews whose estimated Jaccard
    similarity with a text is >= ``threshold``, excluding those of ``account_id`` (the
    author's own reviews are not evidence against them). Memory: ~``num_perm`` x 4 bytes
    per review for the signature plus the LSH band tables.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.7,
        num_perm: int = 128,
        shingle_size: int = 5,
        min_chars: int = 20,
        seed: int = 1,
    ) -> None:
        _check_lsh_params(threshold, num_perm)
        if shingle_size < 1 or min_chars < 0:
            raise ValueError("shingle_size must be >= 1 and min_chars >= 0")
        self.threshold = float(threshold)
        self.num_perm = int(num_perm)
        self.shingle_size = int(shingle_size)
        self.min_chars = int(min_chars)
        self.seed = int(seed)
        # Banding tuned for recall; every candidate is verified, so precision comes from that.
        self._lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm, weights=(0.1, 0.9))
        # Drawn once (they depend only on num_perm and seed): about half the cost of a signature.
        template = MinHash(num_perm=self.num_perm, seed=self.seed)
        self._minhash_kw: dict[str, Any] = {"permutations": template.permutations}
        if hasattr(template, "scheme"):  # datasketch >= 2 wants the scheme with the permutations
            self._minhash_kw["scheme"] = template.scheme
        self._entries: dict[str, tuple[str, LeanMinHash]] = {}
        self._lock = threading.Lock()

    def minhash(self, text: str) -> MinHash | None:
        """The signature of a text, or None when it is too short to be indexed."""
        norm = normalize_text(text)
        if len(norm) < self.min_chars:
            return None
        mh = MinHash(num_perm=self.num_perm, seed=self.seed, **self._minhash_kw)
        mh.update_batch([s.encode("utf-8") for s in shingles(norm, self.shingle_size)])
        return mh

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, review_id: object) -> bool:
        return review_id in self._entries

    def add(self, review_id: str, account_id: str, text: str) -> bool:
        """Index a review; False if its text is too short to be indexed. Ids are unique."""
        review_id = _ident(review_id, "review_id")
        account_id = _ident(account_id, "account_id")
        mh = self.minhash(text)
        with self._lock:
            if review_id in self._entries:
                raise ValueError(f"review {review_id!r} is already indexed")
            if mh is None:
                return False
            self._lsh.insert(review_id, mh)
            self._entries[review_id] = (account_id, LeanMinHash(mh))
        return True

    def remove(self, review_id: str) -> bool:
        """Forget a review (deleted or moderated away); False if it was not indexed."""
        with self._lock:
            if review_id not in self._entries:
                return False
            self._lsh.remove(review_id)
            del self._entries[review_id]
        return True

    def _matches(self, mh: MinHash, account_id: str | None, skip: str | None) -> list[SimilarReview]:
        out = []
        for key in self._lsh.query(mh):
            if key == skip:
                continue
            account, other = self._entries[key]
            if account_id is not None and account == account_id:
                continue
            similarity = float(np.count_nonzero(other.hashvalues == mh.hashvalues)) / self.num_perm
            if similarity >= self.threshold:
                out.append(SimilarReview(key, account, similarity))
        out.sort(key=lambda s: (-s.similarity, s.review_id))
        return out

    def query(self, text: str, account_id: str | None = None) -> list[SimilarReview]:
        """Indexed reviews similar to ``text`` by accounts other than ``account_id``."""
        mh = self.minhash(text)
        if mh is None:
            return []
        with self._lock:
            return self._matches(mh, account_id, None)

    def query_indexed(self, review_id: str, *, other_accounts: bool = False) -> list[SimilarReview]:
        """Neighbours of an indexed review (itself excluded; optionally its author's too)."""
        with self._lock:
            account, mh = self._entries[review_id]
            return self._matches(mh, account if other_accounts else None, review_id)


@dataclass(frozen=True, slots=True)
class DuplicateCluster:
    review_ids: tuple[str, ...]
    account_ids: tuple[str, ...]  # distinct authors, sorted
    min_similarity: float  # weakest verified link that joined the cluster

    @property
    def n_accounts(self) -> int:
        return len(self.account_ids)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for x in self.parent:
            out[self.find(x)].append(x)
        return out


def near_duplicate_clusters(
    reviews: Iterable[Review | Mapping[str, Any] | Any],
    *,
    min_accounts: int = 3,
    threshold: float = 0.7,
    num_perm: int = 128,
    shingle_size: int = 5,
    min_chars: int = 20,
    seed: int = 1,
) -> list[DuplicateCluster]:
    """Clusters of near-duplicate reviews written by >= ``min_accounts`` distinct accounts.

    Largest clusters (by accounts) first; within a cluster, review ids are sorted.
    """
    if min_accounts < 2:
        raise ValueError("min_accounts must be >= 2")
    batch = as_reviews(reviews)
    index = NearDuplicateIndex(
        threshold=threshold, num_perm=num_perm, shingle_size=shingle_size, min_chars=min_chars, seed=seed
    )
    author = {}
    for review in batch:
        if index.add(review.review_id, review.reviewer_id, review.text):
            author[review.review_id] = review.reviewer_id
    links = _UnionFind()
    weakest: dict[tuple[str, str], float] = {}
    for review_id in author:
        links.find(review_id)
        for match in index.query_indexed(review_id):
            links.union(review_id, match.review_id)
            weakest[(min(review_id, match.review_id), max(review_id, match.review_id))] = match.similarity
    clusters = []
    for members in links.groups().values():
        accounts = sorted({author[m] for m in members})
        if len(accounts) < min_accounts:
            continue
        member_set = set(members)
        sims = [s for (a, b), s in weakest.items() if a in member_set and b in member_set]
        clusters.append(DuplicateCluster(tuple(sorted(members)), tuple(accounts), min(sims)))
    clusters.sort(key=lambda c: (-c.n_accounts, c.review_ids[0]))
    return clusters


# ---------------------------------------------------------------------------- bursts


@dataclass(frozen=True, slots=True)
class Burst:
    target_kind: str  # "shop" or "product"
    target_id: str
    stream: str  # "all", "low" (ratings <= 2) or "high" (ratings >= 4)
    bucket_start: float  # epoch seconds of the hour's start (UTC)
    count: int  # reviews of this stream in the bucket
    expected: float  # expected count from the target's history
    p_value: float  # Poisson P(X >= count | expected)
    review_ids: tuple[str, ...] = ()


def poisson_burst(count: int, history_count: int, history_buckets: int) -> tuple[float, float]:
    """(expected, p-value) of ``count`` events in one bucket given the history.

    Expected rate ``(history_count + 1) / history_buckets`` (add-one: a target with no
    history is not treated as having rate 0); p-value ``P(X >= count)`` under Poisson.
    """
    if history_buckets < 1:
        raise ValueError("history_buckets must be >= 1")
    expected = (history_count + 1.0) / history_buckets
    p_value = float(poisson.sf(count - 1, expected)) if count > 0 else 1.0
    return expected, p_value


def _streams(rating: float, low_max: float, high_min: float) -> tuple[Stream, ...]:
    if rating <= low_max:
        return ("all", "low")
    if rating >= high_min:
        return ("all", "high")
    return ("all",)


@dataclass(frozen=True, slots=True)
class _BurstConfig:
    bucket_seconds: int
    history_hours: int
    min_history_hours: int
    alpha: float
    min_count: int
    low_max: float
    high_min: float

    @classmethod
    def of(cls, **kw: Any) -> _BurstConfig:
        cfg = cls(**kw)
        if (
            cfg.bucket_seconds < 1
            or cfg.history_hours < 1
            or not 1 <= cfg.min_history_hours <= cfg.history_hours
        ):
            raise ValueError("need bucket_seconds >= 1 and 1 <= min_history_hours <= history_hours")
        if not 0.0 < cfg.alpha < 1.0 or cfg.min_count < 1:
            raise ValueError("need 0 < alpha < 1 and min_count >= 1")
        return cfg

    def bucket(self, t: float) -> int:
        return math.floor(t / self.bucket_seconds)

    def history_span(self, bucket: int, origin: int) -> int | None:
        """Buckets of observed history before ``bucket``; None if too few to test it."""
        span = min(self.history_hours, bucket - origin)
        return span if span >= self.min_history_hours else None


def detect_bursts(
    reviews: Iterable[Review | Mapping[str, Any] | Any],
    *,
    by: Target = "shop",
    bucket_seconds: int = 3600,
    history_hours: int = 24 * 28,
    min_history_hours: int = 24,
    alpha: float = 1e-4,
    min_count: int = 5,
    low_max: float = 2,
    high_min: float = 4,
    history_start: float | datetime | None = None,
) -> list[Burst]:
    """Hours in which a target received far more reviews than its history predicts.

    A bucket is a burst when its count is >= ``min_count`` and its Poisson p-value is below
    ``alpha``. ``history_hours`` counts buckets (hours by default) before the bucket. The
    batch is taken to hold every review since ``history_start`` (default: its earliest
    review), so a target with no reviews before a bucket had none in that period; buckets
    with less than ``min_history_hours`` of such history are not tested. Most significant first.
    """
    by = _check_by(by)
    cfg = _BurstConfig.of(
        bucket_seconds=bucket_seconds,
        history_hours=history_hours,
        min_history_hours=min_history_hours,
        alpha=alpha,
        min_count=min_count,
        low_max=low_max,
        high_min=high_min,
    )
    batch = as_reviews(reviews)
    if not batch:
        return []
    origin = cfg.bucket(to_epoch(history_start) if history_start is not None else min(r.time for r in batch))
    cells: dict[tuple[str, Stream], dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for review in batch:
        target, bucket = review.target(by), cfg.bucket(review.time)
        for stream in _streams(review.rating, low_max, high_min):
            cells[(target, stream)][bucket].append(review.review_id)
    bursts = []
    for (target, stream), by_bucket in cells.items():
        buckets = sorted(by_bucket)
        prefix = [0]
        for b in buckets:
            prefix.append(prefix[-1] + len(by_bucket[b]))
        for i, b in enumerate(buckets):
            count = len(by_bucket[b])
            span = cfg.history_span(b, origin)
            if count < min_count or span is None:
                continue
            lo = bisect.bisect_left(buckets, b - cfg.history_hours)
            history = prefix[i] - prefix[lo]
            expected, p_value = poisson_burst(count, history, span)
            if p_value < alpha:
                bursts.append(
                    Burst(
                        by,
                        target,
                        stream,
                        float(b * bucket_seconds),
                        count,
                        expected,
                        p_value,
                        tuple(sorted(by_bucket[b])),
                    )
                )
    bursts.sort(key=lambda x: (x.p_value, x.target_id, x.stream, x.bucket_start))
    return bursts


class BurstMonitor:
    """Incremental burst detection for a service: ``observe`` one review at a time.

    Keeps, per target and stream, the counts of the last ``history_hours`` + 1 buckets
    (older buckets are pruned). History counts from ``history_start`` (default: the first
    review observed), so nothing is tested during the first ``min_history_hours``; feed it
    a backlog first if it must alert from the start. ``observe`` returns the bursts the
    review's bucket shows *now*, counting the review itself; once an hour is complete and
    reviews came in time order, its result equals ``detect_bursts`` on the same reviews
    (without the ``review_ids``). Thread-safe.
    """

    def __init__(
        self,
        *,
        by: Target = "shop",
        bucket_seconds: int = 3600,
        history_hours: int = 24 * 28,
        min_history_hours: int = 24,
        alpha: float = 1e-4,
        min_count: int = 5,
        low_max: float = 2,
        high_min: float = 4,
        history_start: float | datetime | None = None,
    ) -> None:
        self.by = _check_by(by)
        self._cfg = _BurstConfig.of(
            bucket_seconds=bucket_seconds,
            history_hours=history_hours,
            min_history_hours=min_history_hours,
            alpha=alpha,
            min_count=min_count,
            low_max=low_max,
            high_min=high_min,
        )
        self._origin: int | None = (
            None if history_start is None else self._cfg.bucket(to_epoch(history_start))
        )
        self._counts: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
        self._lock = threading.Lock()

    def observe(self, record: Review | Mapping[str, Any] | Any) -> list[Burst]:
        review = as_review(record)
        cfg = self._cfg
        target, bucket = review.target(self.by), cfg.bucket(review.time)
        out = []
        with self._lock:
            if self._origin is None:
                self._origin = bucket
            span = cfg.history_span(bucket, self._origin)
            for stream in _streams(review.rating, cfg.low_max, cfg.high_min):
                counts = self._counts[(target, stream)]
                counts[bucket] = counts.get(bucket, 0) + 1
                newest = max(counts)
                for old in [b for b in counts if b < newest - cfg.history_hours]:
                    del counts[old]
                count = counts[bucket]
                if count < cfg.min_count or span is None:
                    continue
                history = sum(c for b, c in counts.items() if bucket - cfg.history_hours <= b < bucket)
                expected, p_value = poisson_burst(count, history, span)
                if p_value < cfg.alpha:
                    out.append(
                        Burst(
                            self.by,
                            target,
                            stream,
                            float(bucket * cfg.bucket_seconds),
                            count,
                            expected,
                            p_value,
                        )
                    )
        return out


# ---------------------------------------------------------------------------- ratings


@dataclass(frozen=True, slots=True)
class RatingDeviation:
    review_id: str
    rating: float
    mean_others: float  # NaN when the product has fewer than min_others other reviews
    n_others: int
    deviation: float  # |rating - mean_others|, 0.0 when undefined


def rating_deviations(
    reviews: Iterable[Review | Mapping[str, Any] | Any],
    *,
    by: Target = "product",
    min_others: int = 5,
) -> dict[str, RatingDeviation]:
    """Leave-one-out deviation of each rating from its product's (or shop's) mean."""
    by = _check_by(by)
    batch = as_reviews(reviews)
    sums: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    for review in batch:
        sums[review.target(by)] += review.rating
        counts[review.target(by)] += 1
    out = {}
    for review in batch:
        target = review.target(by)
        n_others = counts[target] - 1
        if n_others >= max(1, min_others):
            mean = (sums[target] - review.rating) / n_others
            out[review.review_id] = RatingDeviation(
                review.review_id, review.rating, mean, n_others, abs(review.rating - mean)
            )
        else:
            out[review.review_id] = RatingDeviation(review.review_id, review.rating, math.nan, n_others, 0.0)
    return out


# ---------------------------------------------------------------------------- purchases


@dataclass(frozen=True, slots=True)
class PurchaseCheck:
    review_id: str
    verified: bool
    reason: str


def check_purchases(
    reviews: Iterable[Review | Mapping[str, Any] | Any],
    purchases: Iterable[tuple[str, str]],
    orders: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, PurchaseCheck]:
    """Which reviews have a matching purchase.

    ``purchases`` holds (buyer_id, product_id or shop_id) pairs. ``orders`` optionally maps
    order_id -> (buyer_id, product_id or shop_id); when given, a review's ``order_id`` must
    be a known order of the reviewer for the reviewed product or shop, and a mismatching
    order is reported as such (a stronger signal than a missing one).
    """
    batch = as_reviews(reviews)
    pairs = {(str(buyer), str(target)) for buyer, target in purchases}
    out = {}
    for review in batch:
        targets = {review.product_id, review.shop_id}
        reason = ""
        if review.order_id is not None and orders is not None:
            order = orders.get(review.order_id)
            if order is None:
                reason = f"order {review.order_id} is unknown"
            elif str(order[0]) != review.reviewer_id:
                reason = f"order {review.order_id} belongs to another buyer"
            elif str(order[1]) not in targets:
                reason = f"order {review.order_id} is for another product/shop"
            else:
                out[review.review_id] = PurchaseCheck(
                    review.review_id, True, f"order {review.order_id} matches"
                )
                continue
        if any((review.reviewer_id, t) in pairs for t in targets):
            out[review.review_id] = PurchaseCheck(review.review_id, True, "purchase on record")
        else:
            out[review.review_id] = PurchaseCheck(
                review.review_id,
                False,
                reason or "no purchase of this product/shop by the reviewer on record",
            )
    return out


# ---------------------------------------------------------------------------- collusion


@dataclass(frozen=True, slots=True)
class CollusionRing:
    ring_id: str  # stable: hash of the sorted accounts and targets
    target_kind: str
    accounts: tuple[str, ...]
    targets: tuple[str, ...]
    review_ids: tuple[str, ...]  # the ring's reviews on its own targets
    density: float  # fraction of the accounts x targets cells with a review
    expected_edges: float  # cells expected filled by a degree-preserving random graph
    p_value: float  # Poisson P(edges >= observed | expected)


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b)


def find_collusion_rings(
    reviews: Iterable[Review | Mapping[str, Any] | Any],
    *,
    by: Target = "shop",
    min_accounts: int = 3,
    min_targets: int = 3,
    jaccard: float = 0.6,
    support: float = 0.8,
    max_p: float = 1e-6,
    num_perm: int = 64,
    seed: int = 1,
) -> list[CollusionRing]:
    """Groups of accounts that review (nearly) the same set of shops; one entry per ring.

    Accounts with >= ``min_targets`` targets are linked when the exact Jaccard similarity of
    their target sets is >= ``jaccard`` (candidates from MinHash LSH), linked components are
    trimmed to their core (targets reviewed by >= ``support`` of the members, members
    covering >= ``support`` of those targets, twice), and a core of >= ``min_accounts`` x
    ``min_targets`` is kept when its edge count has Poisson p-value <= ``max_p`` against the
    Chung-Lu expectation ``sum min(1, deg(a) deg(t) / edges)``. Most significant first.
    """
    by = _check_by(by)
    _check_lsh_params(jaccard, num_perm)
    if min_accounts < 2 or min_targets < 2 or not 0.5 <= support <= 1.0:
        raise ValueError("need min_accounts >= 2, min_targets >= 2 and 0.5 <= support <= 1")
    batch = as_reviews(reviews)
    account_targets: dict[str, set[str]] = defaultdict(set)
    cell_reviews: dict[tuple[str, str], list[str]] = defaultdict(list)
    for review in batch:
        account_targets[review.reviewer_id].add(review.target(by))
        cell_reviews[(review.reviewer_id, review.target(by))].append(review.review_id)
    target_degree: Counter[str] = Counter()
    for targets in account_targets.values():
        target_degree.update(targets)
    n_edges = sum(target_degree.values())

    sets = {a: frozenset(t) for a, t in account_targets.items() if len(t) >= min_targets}
    lsh = MinHashLSH(threshold=jaccard, num_perm=num_perm, weights=(0.1, 0.9))
    signatures = {}
    for account in sorted(sets):
        mh = MinHash(num_perm=num_perm, seed=seed)
        mh.update_batch([t.encode("utf-8") for t in sorted(sets[account])])
        lsh.insert(account, mh)
        signatures[account] = mh
    links = _UnionFind()
    for account in sorted(sets):
        links.find(account)
        for other in lsh.query(signatures[account]):
            if other != account and _jaccard(sets[account], sets[other]) >= jaccard:
                links.union(account, other)

    rings = []
    for members in links.groups().values():
        if len(members) < min_accounts:
            continue
        accounts = set(members)
        core: set[str] = set()
        for _ in range(2):
            counts = Counter(t for a in accounts for t in sets[a])
            core = {t for t, c in counts.items() if c >= support * len(accounts)}
            if not core:
                break
            accounts = {a for a in accounts if len(sets[a] & core) >= support * len(core)}
        if len(accounts) < min_accounts or len(core) < min_targets:
            continue
        observed = sum(len(sets[a] & core) for a in accounts)
        expected = sum(
            min(1.0, len(account_targets[a]) * target_degree[t] / n_edges) for a in accounts for t in core
        )
        p_value = float(poisson.sf(observed - 1, expected))
        if p_value > max_p:
            continue
        acc, tgt = tuple(sorted(accounts)), tuple(sorted(core))
        ring_id = "ring-" + hashlib.sha256("\x1f".join([by, *acc, "\x1e", *tgt]).encode()).hexdigest()[:12]
        review_ids = tuple(sorted(r for a in acc for t in tgt for r in cell_reviews.get((a, t), ())))
        rings.append(
            CollusionRing(
                ring_id, by, acc, tgt, review_ids, observed / (len(acc) * len(tgt)), expected, p_value
            )
        )
    rings.sort(key=lambda r: (r.p_value, r.ring_id))
    return rings


# ---------------------------------------------------------------------------- scorer


@dataclass(frozen=True, slots=True)
class SignalHit:
    name: str
    strength: float  # 0-1, how strongly this signal fired
    weight: float  # the scorer's weight of the signal
    detail: str  # human-readable explanation

    @property
    def contribution(self) -> float:
        return self.weight * self.strength


@dataclass(frozen=True, slots=True)
class ReviewScore:
    review_id: str
    score: float  # 0-1, noisy-OR of the weighted signal strengths
    signals: tuple[SignalHit, ...]  # signals that fired, largest contribution first

    def explain(self) -> list[str]:
        return [f"{s.name} ({s.contribution:.2f}): {s.detail}" for s in self.signals]


@dataclass(frozen=True, slots=True)
class ReviewReport:
    scores: list[ReviewScore]  # in input order
    clusters: list[DuplicateCluster] = field(default_factory=list)
    bursts: list[Burst] = field(default_factory=list)
    rings: list[CollusionRing] = field(default_factory=list)


def _log_strength(p_value: float, strong_p: float) -> float:
    """0 at p = 1, 1 at p <= strong_p, linear in log10(p) in between."""
    if p_value <= 0.0:
        return 1.0
    return min(1.0, max(0.0, math.log10(p_value) / math.log10(strong_p)))


class ReviewScorer:
    """Per-review abuse score in [0, 1] from the signals above, with explanations.

    ``score = 1 - prod_i (1 - weight_i * strength_i)`` (noisy-OR): one strong signal is
    enough to rank a review high, several moderate ones add up, and the score never exceeds 1.
    Strengths: near-duplicate 1.0 for a cluster of >= ``min_dup_accounts`` accounts (0.5 for
    a pair); burst and collusion map their p-values on a log scale (1.0 at p <= 1e-8);
    rating deviation is 0 below ``rating_dev_low`` and 1.0 from ``rating_dev_high`` stars;
    no-purchase is 1.0 (only when purchases are given); the optional text model contributes
    its probability. Signals that did not fire are left out of the explanations.
    """

    DEFAULT_WEIGHTS: Mapping[str, float] = {
        "near_duplicate": 0.9,
        "collusion": 0.8,
        "burst": 0.7,
        "no_purchase": 0.5,
        "text_model": 0.5,
        "rating_deviation": 0.3,
    }

    def __init__(
        self,
        *,
        weights: Mapping[str, float] | None = None,
        dup_threshold: float = 0.7,
        min_dup_accounts: int = 3,
        num_perm: int = 128,
        shingle_size: int = 5,
        min_chars: int = 20,
        burst_by: Sequence[Target] = ("shop", "product"),
        burst_alpha: float = 1e-4,
        burst_min_count: int = 5,
        history_hours: int = 24 * 28,
        rating_min_others: int = 5,
        rating_dev_low: float = 1.5,
        rating_dev_high: float = 3.5,
        ring_by: Target = "shop",
        ring_min_accounts: int = 3,
        ring_min_targets: int = 3,
        text_model: Any = None,
    ) -> None:
        merged = dict(self.DEFAULT_WEIGHTS)
        for name, weight in (weights or {}).items():
            if name not in merged:
                raise ValueError(f"unknown signal {name!r}; known: {sorted(merged)}")
            if not 0.0 <= float(weight) <= 1.0:
                raise ValueError(f"weight of {name!r} must be in [0, 1], got {weight!r}")
            merged[name] = float(weight)
        if not 0 <= rating_dev_low < rating_dev_high:
            raise ValueError("need 0 <= rating_dev_low < rating_dev_high")
        for by in burst_by:
            _check_by(by)
        self.weights = merged
        self.dup_threshold = dup_threshold
        self.min_dup_accounts = min_dup_accounts
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.min_chars = min_chars
        self.burst_by = tuple(burst_by)
        self.burst_alpha = burst_alpha
        self.burst_min_count = burst_min_count
        self.history_hours = history_hours
        self.rating_min_others = rating_min_others
        self.rating_dev_low = rating_dev_low
        self.rating_dev_high = rating_dev_high
        self.ring_by = _check_by(ring_by)
        self.ring_min_accounts = ring_min_accounts
        self.ring_min_targets = ring_min_targets
        self.text_model = text_model

    def analyse(
        self,
        reviews: Iterable[Review | Mapping[str, Any] | Any],
        *,
        purchases: Iterable[tuple[str, str]] | None = None,
        orders: Mapping[str, tuple[str, str]] | None = None,
    ) -> ReviewReport:
        """Scores (in input order) plus the clusters, bursts and rings behind them."""
        batch = as_reviews(reviews)
        hits: dict[str, list[SignalHit]] = {r.review_id: [] for r in batch}

        def hit(review_id: str, name: str, strength: float, detail: str) -> None:
            if strength > 0.0 and self.weights[name] > 0.0:
                hits[review_id].append(SignalHit(name, float(strength), self.weights[name], detail))

        # near-duplicate text (pairs too, at half strength)
        clusters = near_duplicate_clusters(
            batch,
            min_accounts=2,
            threshold=self.dup_threshold,
            num_perm=self.num_perm,
            shingle_size=self.shingle_size,
            min_chars=self.min_chars,
        )
        for cluster in clusters:
            strength = min(1.0, (cluster.n_accounts - 1) / max(1, self.min_dup_accounts - 1))
            for review_id in cluster.review_ids:
                hit(
                    review_id,
                    "near_duplicate",
                    strength,
                    f"near-duplicate text of {len(cluster.review_ids) - 1} other review(s) by "
                    f"{cluster.n_accounts} accounts (Jaccard >= {cluster.min_similarity:.2f})",
                )
        # bursts
        bursts: list[Burst] = []
        burst_strength: dict[str, tuple[float, Burst]] = {}
        for by in self.burst_by:
            for burst in detect_bursts(
                batch,
                by=by,
                alpha=self.burst_alpha,
                min_count=self.burst_min_count,
                history_hours=self.history_hours,
            ):
                bursts.append(burst)
                strength = _log_strength(burst.p_value, 1e-8)
                for review_id in burst.review_ids:
                    if strength > burst_strength.get(review_id, (0.0, None))[0]:
                        burst_strength[review_id] = (strength, burst)
        bursts.sort(key=lambda b: (b.p_value, b.target_kind, b.target_id, b.stream))
        for review_id, (strength, b) in burst_strength.items():
            what = {"all": "reviews", "low": "low-rated reviews", "high": "high-rated reviews"}[b.stream]
            hit(
                review_id,
                "burst",
                strength,
                f"{b.count} {what} on {b.target_kind} {b.target_id} in one hour, "
                f"{b.expected:.2f} expected (p={b.p_value:.1e})",
            )
        # rating deviation
        for review_id, dev in rating_deviations(batch, min_others=self.rating_min_others).items():
            strength = (dev.deviation - self.rating_dev_low) / (self.rating_dev_high - self.rating_dev_low)
            if strength > 0:
                hit(
                    review_id,
                    "rating_deviation",
                    min(1.0, strength),
                    f"rating {dev.rating:g} vs {dev.mean_others:.2f} mean of {dev.n_others} other reviews",
                )
        # purchases
        if purchases is not None:
            for review_id, check in check_purchases(batch, purchases, orders).items():
                if not check.verified:
                    hit(review_id, "no_purchase", 1.0, check.reason)
        # collusion rings
        rings = find_collusion_rings(
            batch, by=self.ring_by, min_accounts=self.ring_min_accounts, min_targets=self.ring_min_targets
        )
        for ring in rings:
            strength = _log_strength(ring.p_value, 1e-8)
            for review_id in ring.review_ids:
                hit(
                    review_id,
                    "collusion",
                    strength,
                    f"{ring.ring_id}: {len(ring.accounts)} accounts reviewing the same "
                    f"{len(ring.targets)} {ring.target_kind}s (density {ring.density:.2f}, p={ring.p_value:.1e})",
                )
        # optional supervised text model
        if self.text_model is not None and batch:
            probabilities = self.text_model.score([r.text for r in batch])
            for review, p in zip(batch, probabilities, strict=True):
                hit(review.review_id, "text_model", float(p), f"text model probability {float(p):.2f}")

        scores = []
        for review in batch:
            signals = tuple(sorted(hits[review.review_id], key=lambda s: (-s.contribution, s.name)))
            keep = 1.0
            for s in signals:
                keep *= 1.0 - s.contribution
            scores.append(ReviewScore(review.review_id, 1.0 - keep, signals))
        return ReviewReport(
            scores, [c for c in clusters if c.n_accounts >= self.min_dup_accounts], bursts, rings
        )

    def score_batch(
        self,
        reviews: Iterable[Review | Mapping[str, Any] | Any],
        *,
        purchases: Iterable[tuple[str, str]] | None = None,
        orders: Mapping[str, tuple[str, str]] | None = None,
    ) -> list[ReviewScore]:
        """Scores in input order (see ``analyse`` for the evidence objects)."""
        return self.analyse(reviews, purchases=purchases, orders=orders).scores
