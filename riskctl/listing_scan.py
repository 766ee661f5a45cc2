"""Re-scan stored listings against the brand registry (``riskctl scan listings``).

The check matches a listing against the registry in force when it arrives. Registries
change -- a rights holder registers a brand, a product name or images, or revokes a shop --
and listings that passed before may infringe under the new entries. This scan replays the
stored listing events through :class:`~detectors.listing_match.ListingMatcher` (the same
matcher, so the same features) and turns each infringing listing into a
:class:`~riskctl.scans.Finding` for its shop's case in the IP queue.

A listing is a finding when it names (or shows the registered image of) a brand its shop is
not authorised for, outside compatibility use, and its evidence scores at least
``min_score``: the scores mirror the brand rules of ``rules/listings.yaml`` (an
unauthorised brand 30, disguised spelling 40, under 30% of the reference price 40, under 10%
another 25, a near-duplicate registered image 55 -- 100 when almost identical --, a
"style/inspired/replica" qualifier 45, a protected product name 15), capped at 100.
The finding key is ``listing:<listing_id>:<brand>``: re-running the scan, on the same or an
updated registry, never adds the same listing twice to a case.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from detectors.listing_match import ListingMatch, ListingMatcher
from riskctl.models import EventRecord
from riskctl.scans import Finding

KIND = "listing"
DETECTOR = "listings.brand"
NEAR_IMAGE = 8  # bits of 64: LST-012
SAME_IMAGE = 3  # LST-013


def evidence_score(m: ListingMatch) -> tuple[float, list[str]]:
    """(0-100 score, reasons) of one match, as the brand rules would weigh it."""
    named = bool(m.brand) and not m.compatibility
    brand = m.brand or m.image_brand
    if not brand or m.shop_authorised:
        return 0.0, []
    score = 0.0
    reasons: list[str] = []
    if named:
        score += 30
        reasons.append(f"names {m.brand} without authorisation")
        if m.obfuscated:
            score += 40
            reasons.append("disguised spelling")
        if m.price_ratio is not None and m.price_ratio < 0.3:
            score += 40 + (25 if m.price_ratio < 0.1 else 0)
            reasons.append(f"{m.price_ratio:.0%} of the reference price")
        if m.term:
            score += 15
            reasons.append(f"protected name {m.term!r}")
    if m.qualifier and m.brand:
        score += 45
        reasons.append(f"{m.qualifier!r} next to the brand")
    if m.image_distance is not None and m.image_distance <= NEAR_IMAGE:
        score += 100 if m.image_distance <= SAME_IMAGE else 55
        reasons.append(f"image {m.image_distance} bits from a registered {m.image_brand} image")
    return min(100.0, score), reasons


@dataclass
class ListingScanReport:
    scanned: int = 0
    matched: int = 0  # listings naming or showing a registered brand
    findings: list[Finding] = field(default_factory=list)
    registry_version: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "matched": self.matched,
            "findings": len(self.findings),
            "registry_version": self.registry_version,
        }


def _stored(
    engine: Engine, since: datetime | None, until: datetime | None, batch: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    query = select(EventRecord.event_id, EventRecord.payload).where(EventRecord.kind == KIND)
    if since is not None:
        query = query.where(EventRecord.occurred_at >= since)
    if until is not None:
        query = query.where(EventRecord.occurred_at < until)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(query.order_by(EventRecord.id))
        for row in result:
            yield row.event_id, row.payload


def finding_of(event_id: str, payload: dict[str, Any], m: ListingMatch, min_score: float) -> Finding | None:
    score, reasons = evidence_score(m)
    if score < min_score or not reasons:
        return None
    brand = m.brand or m.image_brand
    shop = str(payload["shop_id"])
    listing = str(payload["listing_id"])
    return Finding(
        detector=DETECTOR,
        key=f"listing:{listing}:{brand}",
        kind=KIND,
        subject_id=shop,
        title=f"{brand} listing {listing} by unauthorised shop {shop}: " + ", ".join(reasons),
        score=score,
        evidence={
            "listing_id": listing,
            "event_id": event_id,
            "brand": brand,
            "reasons": reasons,
            "match": m.as_dict(),
        },
        shop_id=shop,
        money=float(payload.get("price") or 0.0),
        members=(listing,),
    )


def scan_stored(
    engine: Engine,
    matcher: ListingMatcher,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_score: float = 50.0,
    batch: int = 1000,
) -> ListingScanReport:
    report = ListingScanReport(registry_version=matcher.registry.version)
    for event_id, payload in _stored(engine, since, until, batch):
        report.scanned += 1
        m = matcher.match(
            title=payload.get("title", ""),
            description=payload.get("description", ""),
            brand=payload.get("brand"),
            category=payload.get("category", ""),
            price=payload.get("price"),
            currency=payload.get("currency", ""),
            image_hashes=payload.get("image_hashes", ()),
            shop_id=payload.get("shop_id", ""),
        )
        if m.brand or (m.image_brand and m.image_distance is not None and m.image_distance <= NEAR_IMAGE):
            report.matched += 1
        finding = finding_of(event_id, payload, m, min_score)
        if finding is not None:
            report.findings.append(finding)
    return report
