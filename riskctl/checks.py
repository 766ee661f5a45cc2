"""The path of one risk check: validate → idempotency → features → rules → detectors →
decide → persist → respond. The API view calls :meth:`CheckService.check` and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from riskctl.breaker import CircuitBreaker
from riskctl.cases import DEFAULT_QUEUES, DEFAULT_SLA_HOURS, Routing
from riskctl.decisions import Outcome, Signal, SignalStatus, Verdict, decide
from riskctl.errors import IdempotencyConflict, NotFound
from riskctl.events import (
    BaseEvent,
    CouponRedemptionEvent,
    ListingEvent,
    OrderEvent,
    ReviewEvent,
    canonical_json,
    parse_event,
)
from riskctl.extraction import static_features
from riskctl.ids import new_id
from riskctl.lists import ListStore
from riskctl.models import Decision, EventRecord
from riskctl.persist import DriverWriter, Write
from riskctl.policy import PolicyHolder
from riskctl.pseudonym import Pseudonymizer
from riskctl.ratelimit import Limit, refused
from riskctl.reputation import ReputationStore
from riskctl.velocity import Velocity

_STORED = (
    select(
        Decision.id,
        Decision.response_body,
        Decision.outcome,
        Decision.kind,
        Decision.degraded,
        EventRecord.body_hash,
    )
    .join(EventRecord, Decision.event_pk == EventRecord.id)
    .where(Decision.event_id == bindparam("event_id"))
)


class Enricher(Protocol):
    """Adds features computed in-process from the event alone (e.g. brand matching)."""

    kinds: frozenset[str]

    def features(self, event: BaseEvent) -> dict[str, Any]: ...


class DetectorSet(Protocol):
    """Loaded detectors: versions, and signals + score features for one event."""

    @property
    def versions(self) -> dict[str, str]: ...

    def score(self, kind: str, features: dict[str, Any]) -> tuple[list[Signal], dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class CheckResult:
    body: bytes
    decision_id: str
    outcome: str
    kind: str
    replayed: bool  # True when an earlier identical request's stored answer was returned
    degraded: bool


def subject_of(event: BaseEvent) -> tuple[str | None, str | None, float | None]:
    """(acting account, shop, money at stake) of an event, for queues and reports."""
    if isinstance(event, OrderEvent):
        return event.buyer_id, event.shop_id, event.amount
    if isinstance(event, ReviewEvent):
        return event.reviewer_id, event.shop_id, None
    if isinstance(event, CouponRedemptionEvent):
        return event.account_id, None, event.discount_amount
    if isinstance(event, ListingEvent):
        return event.shop_id, event.shop_id, event.price
    return None, None, None


def redacted_payload(event: BaseEvent, pseudo: Pseudonymizer) -> dict[str, Any]:
    """The event as stored: device ids, IPs, card fingerprints and addresses as tokens."""
    data = event.model_dump(mode="json", exclude_none=True)
    data["device_id"] = pseudo.token("device", event.device_id)
    data["ip"] = pseudo.token("ip", str(event.ip))
    data["ip24"] = pseudo.token("ip24", event.ip_prefix)
    if isinstance(event, OrderEvent):
        if event.payment.fingerprint:
            data["payment"]["fingerprint"] = pseudo.token("payment", event.payment.fingerprint)
        data["shipping_address_hash"] = pseudo.token("address", event.shipping_address_hash)
    if isinstance(event, CouponRedemptionEvent):
        if event.payment_fingerprint:
            data["payment_fingerprint"] = pseudo.token("payment", event.payment_fingerprint)
        if event.shipping_address_hash:
            data["shipping_address_hash"] = pseudo.token("address", event.shipping_address_hash)
    return data


class CheckService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        velocity: Velocity,
        lists: ListStore,
        policy: PolicyHolder,
        pseudonymizer: Pseudonymizer,
        *,
        detectors: Callable[[], DetectorSet],
        fallback: dict[str, str] | None = None,
        breaker: CircuitBreaker | None = None,
        deadline_ms: int = 250,
        enrichers: Sequence[Enricher] = (),
        routing: Routing | None = None,
        reputation: ReputationStore | None = None,
    ) -> None:
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        self.velocity = velocity
        self.lists = lists
        self.policy = policy
        self.pseudo = pseudonymizer
        self.detectors = detectors
        self.fallback = {k: Outcome.parse(v) for k, v in (fallback or {}).items()}
        self.breaker = breaker or CircuitBreaker()
        self.deadline_s = deadline_ms / 1000
        self.enrichers = tuple(enrichers)
        self.routing = routing or Routing(DEFAULT_QUEUES, DEFAULT_SLA_HOURS)
        self.writer = DriverWriter(self.engine, self.routing)
        self.reputation = reputation

    def close(self) -> None:
        """Close the connections the check path's writer keeps for itself."""
        self.writer.close()

    # -- the path -------------------------------------------------------------------
    def check(self, raw: bytes, limit: Limit | None = None) -> CheckResult:
        started = time.perf_counter()
        event = parse_event(raw)
        body_hash = self.pseudo.digest(canonical_json(event))
        # Optimistic: no lookup before the work. A repeated event_id is rare, and it is
        # caught by the unique key when the decision is stored; its velocity update is a
        # no-op (the Redis script counts each event_id once), so nothing counts twice.
        features, degraded = self._features(event, limit)
        # Past the deadline, the answer is still given, but flagged: something was slow.
        degraded = degraded or time.perf_counter() - started > self.deadline_s
        kind: str = event.kind  # type: ignore[attr-defined]
        policy = self.policy.current
        detectors = self.detectors()
        det_signals, det_features = detectors.score(kind, features)
        features.update(det_features)
        signals = [*self.lists.signals(features), *policy.evaluate(kind, features), *det_signals]
        verdict = decide(signals, policy.thresholds(kind))
        if degraded:
            verdict = self._with_fallback(kind, verdict)

        decision_id = new_id("dec")
        response = {
            "decision_id": decision_id,
            "event_id": event.event_id,
            "kind": kind,
            "outcome": verdict.outcome.label,
            "score": verdict.score,
            "reasons": [r.to_dict() for r in verdict.reasons],
            "degraded": degraded,
            "rulepack_version": policy.version,
        }
        body = orjson.dumps(response)
        latency_us = int((time.perf_counter() - started) * 1e6)
        try:
            self._persist(
                event,
                body_hash,
                decision_id,
                verdict,
                signals,
                features,
                degraded,
                policy.version,
                detectors.versions,
                body,
                latency_us,
            )
        except self.writer.integrity_errors:
            # Decided before (a retry, or a concurrent duplicate that committed first):
            # answer with the stored decision, or 409 if the body differs.
            stored = self._stored(event.event_id, body_hash)
            if stored is None:
                raise
            return stored
        return CheckResult(body, decision_id, verdict.outcome.label, kind, False, degraded)

    def _stored(self, event_id: str, body_hash: str) -> CheckResult | None:
        # Core, not the ORM: this runs on every check and the ORM's unit of work costs
        # more than the query itself.
        with self.engine.connect() as conn:
            row = conn.execute(_STORED, {"event_id": event_id}).first()
        if row is None:
            return None
        if row.body_hash != body_hash:
            raise IdempotencyConflict(
                f"event_id {event_id!r} was already decided for a different body; "
                "use a new event_id for a new event",
                decision_id=row.id,
            )
        return CheckResult(row.response_body.encode(), row.id, row.outcome, row.kind, True, row.degraded)

    def _features(self, event: BaseEvent, limit: Limit | None = None) -> tuple[dict[str, Any], bool]:
        """Static features, then velocity and list memberships in one Redis round trip."""
        features = static_features(event)
        kind: str = event.kind  # type: ignore[attr-defined]
        for enricher in self.enrichers:
            if kind in enricher.kinds:
                features.update(enricher.features(event))
        lookups = self.lists.lookups(event)
        # reputation mirrors are read in the same round trip as velocity and lists
        reads = self.reputation.reads(event) if self.reputation is not None else []
        result = None
        if self.breaker.allow():
            result = self.velocity.observe(
                event, [(lk.key, lk.token) for lk in lookups], [(key, fld) for _, key, fld in reads], limit
            )
            if result.limited_ms is not None:
                # refused by the API key's rate limit inside the same script: nothing counted
                self.breaker.success()
                raise refused(result.limited_ms, limit)  # type: ignore[arg-type]
            if result.available:
                self.breaker.success()
            else:
                self.breaker.failure()
                result = None
        if result is None:
            features.update(self.velocity.unavailable(kind))
            features.update(self.lists.features(lookups, None))
            if self.reputation is not None:
                features.update(self.reputation.features(reads, None, event.occurred_at))
            return features, True
        features.update(result.features)
        features.update(self.lists.features(lookups, result.found))
        if self.reputation is not None:
            features.update(self.reputation.features(reads, result.hashes, event.occurred_at))
        return features, False

    def _with_fallback(self, kind: str, verdict: Verdict) -> Verdict:
        floor = self.fallback.get(kind, Outcome.ALLOW)
        if verdict.outcome >= floor:
            return verdict
        return Verdict(floor, verdict.score, verdict.reasons)

    def _persist(
        self,
        event: BaseEvent,
        body_hash: str,
        decision_id: str,
        verdict: Verdict,
        signals: Sequence[Signal],
        features: dict[str, Any],
        degraded: bool,
        rulepack_version: str,
        detector_versions: dict[str, str],
        body: bytes,
        latency_us: int,
    ) -> None:
        subject, shop, amount = subject_of(event)
        kind: str = event.kind  # type: ignore[attr-defined]
        reasons = [r.to_dict() for r in verdict.reasons]
        self.writer.write(
            Write(
                event_id=event.event_id,
                kind=kind,
                occurred_at=event.occurred_at,
                body_hash=body_hash,
                subject_id=subject,
                shop_id=shop,
                amount=amount,
                payload=redacted_payload(event, self.pseudo),
                decision_id=decision_id,
                outcome=verdict.outcome.label,
                flagged=verdict.outcome >= Outcome.REVIEW,
                score=verdict.score,
                degraded=degraded,
                rulepack_version=rulepack_version,
                detector_versions=detector_versions,
                features=features,
                signals=[s.to_dict() for s in signals],
                reasons=reasons,
                hits=[
                    {"code": s.code, "source": s.source.value, "mode": s.mode.value, "score": s.score}
                    for s in signals
                    if s.status is SignalStatus.HIT
                ],
                response_body=body.decode(),
                latency_us=latency_us,
                title=f"{kind} {verdict.outcome.label}: "
                + (verdict.reasons[0].description if verdict.reasons else "score over threshold"),
            )
        )

    # -- reads ------------------------------------------------------------------------
    def get_decision(self, decision_id: str) -> dict[str, Any]:
        with self.sessions() as session:
            d = session.get(Decision, decision_id)
            if d is None:
                raise NotFound(f"no decision {decision_id!r}")
            return decision_view(d)


def decision_view(d: Decision) -> dict[str, Any]:
    return {
        "decision_id": d.id,
        "event_id": d.event_id,
        "kind": d.kind,
        "outcome": d.outcome,
        "score": d.score,
        "degraded": d.degraded,
        "reasons": d.reasons,
        "rulepack_version": d.rulepack_version,
        "detector_versions": d.detector_versions,
        "signals": d.signals,
        "features": d.features,
        "latency_ms": round(d.latency_us / 1000, 3),
        "created_at": d.created_at.isoformat().replace("+00:00", "Z"),
    }
