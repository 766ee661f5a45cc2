"""``riskctl scan reviews``: the review-abuse detectors over stored review events.

Reads the stored review events (and the stored orders, which tell which reviews have a
matching purchase), runs :class:`detectors.reviews.ReviewScorer` over them - near-duplicate
text across accounts, bursts per shop and product, rating deviation, no matching purchase,
reviewer-shop collusion rings, and the supervised text model when one is trained - and turns
what it finds into :class:`riskctl.scans.Finding` s for the ``reviews`` queue:

* one finding per **near-duplicate cluster** (>= 3 accounts) that something else
  corroborates - most of its reviews have no purchase on record, most (and 3+) of its
  accounts posted within 24 hours, or it is part of a burst or ring - since honest buyers
  write formulaic reviews too; the case subject is the cluster's first review
  (``dup-<hash>``), so a cluster that grows on a later scan adds a finding to the same case
  instead of opening another;
* one finding per **burst** (shop, hour), the most significant of the shop's and its
  products' streams; the case subject is the shop;
* one finding per **collusion ring**, corroborated the same way (or by copy-paste text); the
  case subject is the ring.

Rating deviation, missing purchases and the text score are evidence, not findings: an
honest 1-star review deviates from a well-liked product's mean, and a review of an order
placed before riskctl was installed has no stored purchase. A finding opens a case only when
the mean score of its reviews reaches ``min_score`` (0-100).

Idempotent: the same data gives the same finding keys, a key already in the subject's open
case is left alone (``record_findings``), and a key a moderator already concluded on (in a
resolved case) is not opened again.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from detectors.reviews import Review, ReviewReport, ReviewScore, ReviewScorer
from riskctl.cases import OPEN_STATUSES, Routing
from riskctl.models import Case, EventRecord
from riskctl.scans import Finding

MAX_LISTED = 200  # review/event ids kept in one finding's evidence
SAMPLE_CHARS = 280
CONCENTRATION_SECONDS = 24 * 3600


@dataclass(frozen=True)
class StoredReviews:
    reviews: list[Review]
    event_ids: dict[str, str]  # review_id -> event_id of its newest stored event


@dataclass(frozen=True)
class Purchases:
    pairs: set[tuple[str, str]]  # (buyer, product) and (buyer, shop)
    orders: dict[str, tuple[str, str]]  # order_id -> (buyer, shop)
    first_at: float | None  # epoch seconds of the earliest stored order

    @property
    def count(self) -> int:
        return len(self.orders)


@dataclass
class ReviewScanResult:
    reviews: int
    orders: int
    findings: list[Finding]
    clusters: int = 0
    bursts: int = 0
    rings: int = 0
    below_min_score: int = 0
    uncorroborated: int = 0  # clusters and rings with nothing else suspicious about them
    concluded: int = 0  # findings a moderator already concluded on: not reopened
    flagged_reviews: int = 0
    text_model: str = ""
    by_detector: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reviews": self.reviews,
            "orders": self.orders,
            "clusters": self.clusters,
            "bursts": self.bursts,
            "rings": self.rings,
            "findings": len(self.findings),
            "by_detector": dict(self.by_detector),
            "below_min_score": self.below_min_score,
            "uncorroborated": self.uncorroborated,
            "concluded": self.concluded,
            "flagged_reviews": self.flagged_reviews,
            "text_model": self.text_model,
        }


def _epoch(at: datetime) -> float:
    return at.astimezone(UTC).timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def load_reviews(
    engine: Engine, since: datetime | None = None, until: datetime | None = None
) -> StoredReviews:
    """Stored review events in [since, until); a review sent again (an edit) counts once, newest wins."""
    query = select(EventRecord.event_id, EventRecord.occurred_at, EventRecord.payload).where(
        EventRecord.kind == "review"
    )
    if since is not None:
        query = query.where(EventRecord.occurred_at >= since)
    if until is not None:
        query = query.where(EventRecord.occurred_at < until)
    latest: dict[str, tuple[Review, str]] = {}
    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=5000).execute(
            query.order_by(EventRecord.occurred_at, EventRecord.id)
        )
        for event_id, occurred_at, p in rows:
            review = Review(
                review_id=str(p["review_id"]),
                reviewer_id=str(p["reviewer_id"]),
                product_id=str(p["product_id"]),
                shop_id=str(p["shop_id"]),
                rating=float(p["rating"]),
                text=str(p.get("text") or ""),
                time=_epoch(occurred_at),
                order_id=p.get("order_id") or None,
            )
            latest[review.review_id] = (review, event_id)
    reviews = [r for r, _ in latest.values()]
    return StoredReviews(reviews, {rid: eid for rid, (_, eid) in latest.items()})


def load_purchases(engine: Engine, until: datetime | None = None) -> Purchases:
    """What the stored order events say was bought, by whom, from which shop."""
    query = select(EventRecord.occurred_at, EventRecord.payload).where(EventRecord.kind == "order")
    if until is not None:
        query = query.where(EventRecord.occurred_at < until)
    pairs: set[tuple[str, str]] = set()
    orders: dict[str, tuple[str, str]] = {}
    first: float | None = None
    with engine.connect() as conn:
        for occurred_at, p in conn.execution_options(yield_per=5000).execute(query):
            buyer, shop = str(p["buyer_id"]), str(p["shop_id"])
            orders[str(p["order_id"])] = (buyer, shop)
            pairs.add((buyer, shop))
            for item in p.get("items", ()):
                pairs.add((buyer, str(item["product_id"])))
            at = _epoch(occurred_at)
            first = at if first is None else min(first, at)
    return Purchases(pairs, orders, first)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class _Evidence:
    """Summaries of groups of reviews, for findings."""

    def __init__(self, stored: StoredReviews, scores: Sequence[ReviewScore]) -> None:
        self.by_id = {r.review_id: r for r in stored.reviews}
        self.event_ids = stored.event_ids
        self.scores = {s.review_id: s for s in scores}

    def mean_score(self, ids: Sequence[str]) -> float:
        return 100.0 * sum(self.scores[i].score for i in ids) / max(1, len(ids))

    def main_shop(self, ids: Sequence[str]) -> str:
        counts = Counter(self.by_id[i].shop_id for i in ids)
        return min(counts, key=lambda s: (-counts[s], s))

    def earliest(self, ids: Sequence[str]) -> Review:
        return min((self.by_id[i] for i in ids), key=lambda r: (r.time, r.review_id))

    def max_accounts_within(self, ids: Sequence[str], seconds: float) -> int:
        """Most distinct accounts among the reviews of any window of ``seconds``."""
        reviews = sorted((self.by_id[i] for i in ids), key=lambda r: r.time)
        best, lo = 0, 0
        for hi, last in enumerate(reviews):
            while last.time - reviews[lo].time > seconds:
                lo += 1
            best = max(best, len({r.reviewer_id for r in reviews[lo : hi + 1]}))
        return best

    def summary(self, ids: Sequence[str]) -> dict[str, Any]:
        ordered = sorted(ids, key=lambda i: (self.by_id[i].time, i))
        reviews = [self.by_id[i] for i in ordered]
        signals: Counter[str] = Counter()
        for i in ordered:
            signals.update(s.name for s in self.scores[i].signals)
        shops = Counter(r.shop_id for r in reviews)
        products = Counter(r.product_id for r in reviews)
        return {
            "reviews": len(ordered),
            "accounts": len({r.reviewer_id for r in reviews}),
            "shops": dict(shops.most_common(10)),
            "products": dict(products.most_common(10)),
            "ratings": {f"{k:g}": v for k, v in sorted(Counter(r.rating for r in reviews).items())},
            "without_purchase": signals.get("no_purchase", 0),
            "signals": dict(sorted(signals.items())),
            "mean_review_score": round(self.mean_score(ordered) / 100.0, 4),
            "first_at": _iso(reviews[0].time),
            "last_at": _iso(reviews[-1].time),
            "review_ids": ordered[:MAX_LISTED],
            "event_ids": [self.event_ids[i] for i in ordered[:MAX_LISTED]],
        }


def build_findings(
    stored: StoredReviews, report: ReviewReport, *, min_accounts_together: int = 3
) -> list[Finding]:
    """Findings (unfiltered) for the clusters, bursts and rings of one report."""
    ev = _Evidence(stored, report.scores)
    findings: list[Finding] = []
    in_burst = {i for b in report.bursts for i in b.review_ids}
    in_ring = {i for r in report.rings for i in r.review_ids}
    in_cluster = {i for c in report.clusters for i in c.review_ids}

    def corroborate(ids: list[str], evidence: dict[str, Any], of: str) -> list[str]:
        """What else, besides the ``of`` ("cluster" or "ring") itself, points at these reviews."""
        out = []
        if 2 * evidence["without_purchase"] >= len(ids):
            out.append(f"{evidence['without_purchase']} of {len(ids)} without a purchase on record")
        # a campaign posts most of its copies together; a chain of similar honest reviews
        # spread over weeks has a few close in time by chance
        together = ev.max_accounts_within(ids, CONCENTRATION_SECONDS)
        if together >= max(min_accounts_together, math.ceil(evidence["accounts"] / 2)):
            out.append(f"{together} of its {evidence['accounts']} accounts posted within 24 hours")
        if in_burst.intersection(ids):
            out.append("part of a review burst")
        if of == "cluster" and in_ring.intersection(ids):
            out.append("part of a collusion ring")
        copied = len(in_cluster.intersection(ids))
        if of == "ring" and 2 * copied >= len(ids):
            out.append(f"{copied} of {len(ids)} are copy-paste text")
        return out

    for cluster in report.clusters:
        ids = list(cluster.review_ids)
        first = ev.earliest(ids)
        shop = ev.main_shop(ids)
        evidence = ev.summary(ids)
        evidence["min_similarity"] = round(cluster.min_similarity, 3)
        # Honest buyers write formulaic reviews too ("good product, fast delivery"): a
        # copy-paste cluster is a finding only when something else points the same way.
        evidence["corroboration"] = corroborate(ids, evidence, "cluster")
        evidence["sample_text"] = first.text[:SAMPLE_CHARS]
        findings.append(
            Finding(
                detector="reviews.duplicates",
                key="reviews.duplicates:" + _digest(*sorted(ids))[:20],
                kind="review",
                subject_id="dup-" + _digest(first.review_id)[:16],
                title=f"Copy-paste reviews: {len(ids)} near-duplicate reviews by {cluster.n_accounts} "
                f"accounts (shop {shop})",
                score=ev.mean_score(ids),
                evidence=evidence,
                shop_id=shop,
                members=cluster.account_ids[:MAX_LISTED],
            )
        )
    # one burst per (shop, hour): the most significant of the shop's and its products' streams
    best: dict[tuple[str, float], Any] = {}
    for burst in report.bursts:  # most significant first
        shop = burst.target_id if burst.target_kind == "shop" else ev.main_shop(list(burst.review_ids))
        best.setdefault((shop, burst.bucket_start), burst)
    for (shop, bucket), burst in sorted(best.items(), key=lambda kv: (kv[1].p_value, kv[0])):
        ids = list(burst.review_ids)
        what = {"all": "reviews", "low": "low-rated reviews", "high": "high-rated reviews"}[burst.stream]
        evidence = ev.summary(ids)
        evidence |= {
            "target": f"{burst.target_kind} {burst.target_id}",
            "stream": burst.stream,
            "hour": _iso(bucket),
            "count": burst.count,
            "expected": round(burst.expected, 4),
            "p_value": burst.p_value,
        }
        findings.append(
            Finding(
                detector="reviews.burst",
                key=f"reviews.burst:{shop}:{_iso(bucket)}",
                kind="review",
                subject_id=shop,
                title=f"Review burst: {burst.count} {what} on {burst.target_kind} {burst.target_id} "
                f"in one hour ({burst.expected:.2f} expected)",
                score=ev.mean_score(ids),
                evidence=evidence,
                shop_id=shop,
                members=tuple(sorted({ev.by_id[i].reviewer_id for i in ids}))[:MAX_LISTED],
            )
        )
    for ring in report.rings:
        ids = list(ring.review_ids)
        evidence = ev.summary(ids)
        evidence |= {
            "targets": list(ring.targets),
            "target_kind": ring.target_kind,
            "density": round(ring.density, 4),
            "expected_edges": round(ring.expected_edges, 4),
            "p_value": ring.p_value,
        }
        # Among many accounts, a few share the same 3 shops by chance (the ring's p-value
        # does not count how many groups were tried): a ring needs corroboration too.
        evidence["corroboration"] = corroborate(ids, evidence, "ring")
        findings.append(
            Finding(
                detector="reviews.collusion",
                key=f"reviews.collusion:{ring.ring_id}",
                kind="review",
                subject_id=ring.ring_id,
                title=f"Reviewer-shop collusion: {len(ring.accounts)} accounts reviewing the same "
                f"{len(ring.targets)} {ring.target_kind}s",
                score=ev.mean_score(ids),
                evidence=evidence,
                shop_id=ring.targets[0] if ring.target_kind == "shop" and len(ring.targets) == 1 else None,
                members=ring.accounts[:MAX_LISTED],
            )
        )
    return findings


def concluded_keys(engine: Engine, routing: Routing, subjects: Sequence[str]) -> set[tuple[str, str]]:
    """(subject, finding key) pairs already in a concluded (not open) review case."""
    out: set[tuple[str, str]] = set()
    queue = routing.queue("review")
    unique = sorted(set(subjects))
    with engine.connect() as conn:
        for start in range(0, len(unique), 500):
            rows = conn.execute(
                select(Case.subject_id, Case.evidence).where(
                    Case.queue == queue,
                    Case.subject_id.in_(unique[start : start + 500]),
                    Case.status.not_in(OPEN_STATUSES),
                )
            )
            for subject, evidence in rows:
                for finding in (evidence or {}).get("findings", []):
                    if "key" in finding:
                        out.add((subject, str(finding["key"])))
    return out


def scan_reviews(
    engine: Engine,
    routing: Routing,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_score: float = 50.0,
    text_model: Any = None,
    scorer: ReviewScorer | None = None,
) -> ReviewScanResult:
    """Run the review detectors over stored events; findings to record (see the module doc)."""
    stored = load_reviews(engine, since, until)
    purchases = load_purchases(engine, until)
    if scorer is None:
        scorer = ReviewScorer(text_model=text_model)
    pairs: set[tuple[str, str]] | None = None
    if purchases.count:
        # Reviews older than the stored order history get the benefit of the doubt: their
        # orders may simply predate riskctl.
        first = purchases.first_at if purchases.first_at is not None else float("inf")
        pairs = set(purchases.pairs)
        pairs.update((r.reviewer_id, r.product_id) for r in stored.reviews if r.time < first)
    report = scorer.analyse(
        stored.reviews, purchases=pairs, orders=purchases.orders if pairs is not None else None
    )
    candidates = build_findings(stored, report)
    concluded = concluded_keys(engine, routing, [f.subject_id for f in candidates])
    result = ReviewScanResult(
        reviews=len(stored.reviews),
        orders=purchases.count,
        findings=[],
        clusters=len(report.clusters),
        bursts=len(report.bursts),
        rings=len(report.rings),
        text_model=getattr(text_model, "version", "") if text_model is not None else "",
    )
    flagged: set[str] = set()
    for finding in candidates:
        if finding.evidence.get("corroboration") == []:
            result.uncorroborated += 1
        elif finding.score < min_score:
            result.below_min_score += 1
        elif (finding.subject_id, finding.key) in concluded:
            result.concluded += 1
        else:
            result.findings.append(finding)
            result.by_detector[finding.detector] = result.by_detector.get(finding.detector, 0) + 1
            flagged.update(finding.evidence["review_ids"])
    result.flagged_reviews = len(flagged)
    return result
