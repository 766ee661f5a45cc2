"""The ring scan: stored order events in, brushing rings (:mod:`detectors.rings`) out as findings.

Each stored ``order`` event gives the detector one :class:`~detectors.rings.Order`: the buyer
and shop ids (raw account ids, stored as ``subject_id`` / ``shop_id``) and the device,
shipping-address and card tokens of its payload. Those three are keyed-hash tokens made on
arrival (:func:`riskctl.checks.redacted_payload`), so the scan links buyers through shared
devices, addresses and cards without ever seeing one raw; the findings carry the same tokens.

One ring becomes one :class:`~riskctl.scans.Finding` in the ``order`` queue about the ring's
main shop. Its key is a hash of the ring's sorted members, so a re-run over the same data
finds the same keys and opens nothing new; a ring that grew is a new finding that joins the
shop's open case.

Lists are not fed: the list store keys entries by a hash of the *raw* value
(:meth:`riskctl.lists.ListStore.token`), and the scan only has tokens, so a device put on a
list from here would never match a check. Blocking is left to the moderator working the case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from detectors.rings import Order, Ring, RingDetector
from riskctl.models import EventRecord
from riskctl.scans import Finding

DETECTOR = "rings"
DEFAULT_MIN_SCORE = 50.0
MAX_EVIDENCE_BUYERS = 100
MAX_EVIDENCE_ENTITIES = 20


@dataclass
class RingScan:
    orders: int
    rings: list[Ring] = field(default_factory=list)  # every ring found, best first
    findings: list[Finding] = field(default_factory=list)  # the rings at or above min_score

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "rings_found": len(self.rings),
            "rings_reported": len(self.findings),
        }


def load_orders(
    engine: Engine, *, since: datetime | None = None, until: datetime | None = None, batch: int = 5000
) -> list[Order]:
    """The stored order events in ``[since, until)``, one per order id (a retry counts once)."""
    payload = EventRecord.payload
    query = (
        select(
            EventRecord.event_id,
            payload["order_id"].as_string(),
            EventRecord.subject_id,
            EventRecord.shop_id,
            payload["device_id"].as_string(),
            payload["shipping_address_hash"].as_string(),
            payload["payment"]["fingerprint"].as_string(),
            EventRecord.amount,
        )
        .where(
            EventRecord.kind == "order",
            EventRecord.subject_id.is_not(None),
            EventRecord.shop_id.is_not(None),
        )
        .order_by(EventRecord.id)
    )
    if since is not None:
        query = query.where(EventRecord.occurred_at >= since)
    if until is not None:
        query = query.where(EventRecord.occurred_at < until)
    seen: set[str] = set()
    out: list[Order] = []
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(query)
        for event_id, order_id, buyer, shop, device, address, payment, amount in result:
            key = order_id or event_id
            if key in seen:
                continue
            seen.add(key)
            out.append(Order(buyer, shop, device or None, address or None, payment or None, amount or 0.0))
    return out


def ring_finding(ring: Ring, *, since: datetime | None = None, until: datetime | None = None) -> Finding:
    shops = ", ".join(ring.shops[:3]) + (f" (+{len(ring.shops) - 3})" if len(ring.shops) > 3 else "")
    entities = {
        kind: {"count": len(tokens), "tokens": list(tokens[:MAX_EVIDENCE_ENTITIES])}
        for kind, tokens in ring.entities.items()
    }
    return Finding(
        detector=DETECTOR,
        key=f"{DETECTOR}:{ring.ring_id}",
        kind="order",
        subject_id=ring.main_shop,
        shop_id=ring.main_shop,
        title=f"Brushing ring: {len(ring.buyers)} linked buyers at shop {shops}",
        score=round(ring.score, 2),
        money=round(ring.amount, 2),
        members=ring.members,
        evidence={
            "ring_id": ring.ring_id,
            "explanation": ring.explanation,
            "shops": list(ring.shops),
            "shop_share": {k: round(v, 3) for k, v in ring.shop_share.items()},
            "buyer_count": len(ring.buyers),
            "buyers": list(ring.buyers[:MAX_EVIDENCE_BUYERS]),
            "linked_buyers": ring.linked_buyers,
            "shared_entities": entities,
            "orders": ring.orders,
            "amount": round(ring.amount, 2),
            "edges": ring.edges,
            "density": round(ring.density, 4),
            "background_density": round(ring.background, 4),
            "density_ratio": round(ring.ratio, 2),
            "other_shops": ring.other_shops,
            "window": {
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
            },
        },
    )


def scan_rings(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    max_rings: int = 10,
    min_score: float = DEFAULT_MIN_SCORE,
    detector: RingDetector | None = None,
) -> RingScan:
    """Load the stored orders, find rings, and make findings of those scoring >= ``min_score``."""
    orders = load_orders(engine, since=since, until=until)
    return scan_orders(
        orders, since=since, until=until, max_rings=max_rings, min_score=min_score, detector=detector
    )


def scan_orders(
    orders: Sequence[Order],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    max_rings: int = 10,
    min_score: float = DEFAULT_MIN_SCORE,
    detector: RingDetector | None = None,
) -> RingScan:
    detector = detector or RingDetector(max_rings=max_rings)
    rings = detector.detect(orders) if orders else []
    findings = [ring_finding(r, since=since, until=until) for r in rings if r.score >= min_score]
    return RingScan(orders=len(orders), rings=rings, findings=findings)
