"""Reputation: a Bayesian Beta(alpha, beta) estimate per buyer, shop, device and complainant.

Good outcomes add to alpha, bad ones to beta; a score is the posterior mean
``(alpha0 + alpha) / (alpha0 + alpha + beta0 + beta)`` over a configurable prior. Evidence decays exponentially
with a configurable half-life, so an old mistake weighs less than a recent one:
``alpha(t) = sum dalpha_i * 2^(-(t - t_i) / half_life)`` (and the same for beta). Because decay is linear
in the evidence, the stored ``(alpha, beta, updated_at)`` is just the sum of the history decayed to
``updated_at``, and every score can be explained term by term from its events.

What moves a score (weights in :data:`WEIGHTS`): decisions a little; resolved cases, complaint
outcomes and appeals a lot. An upheld appeal *reverses* what the wrong decision took: a
reversing event subtracts the original bad evidence, decayed to the moment of reversal, so
from then on the subject stands exactly where it would have stood without it.

Checks read scores as features (``reputation.buyer``, ...) in the velocity script's single
Redis round trip: current ``alpha|beta|ms`` triples are mirrored into one Redis hash per subject
type, keyed by the subject's keyed-hash token (:mod:`riskctl.pseudonym`), and decayed to the
event's time in-process. The database stays the record; ``riskctl reputation sync`` rebuilds
the mirror.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import Connection, Engine, and_, false, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from riskctl.casestate import CaseStatus, Resolution
from riskctl.errors import ValidationFailed
from riskctl.events import BaseEvent, CouponRedemptionEvent, ListingEvent, OrderEvent, ReviewEvent
from riskctl.features import FeatureSpec, FeatureType
from riskctl.models import (
    Case,
    CaseDecision,
    Decision,
    EventRecord,
    ReputationEvent,
    ReputationScore,
    utcnow,
)
from riskctl.pseudonym import Pseudonymizer

log = logging.getLogger(__name__)

SUBJECT_TYPES = ("buyer", "shop", "device", "complainant")
# Subjects whose reputation rules read, per event kind (complainants only matter to complaints).
FEATURE_SUBJECTS = ("buyer", "shop", "device")
KEY_PREFIX = "rk:rep:"

# (dalpha good, dbeta bad) per reason. Decisions are weak evidence (a machine's guess); a person's
# conclusion on a case or a complaint is strong evidence.
WEIGHTS: dict[str, tuple[float, float]] = {
    "decision_allow": (0.1, 0.0),
    "decision_review": (0.0, 0.1),
    "decision_block": (0.0, 0.25),
    "case_confirmed_abuse": (0.0, 3.0),
    "case_false_positive": (2.0, 0.0),
    "case_device_confirmed_abuse": (0.0, 1.0),
    "complaint_upheld_seller": (0.0, 3.0),
    "complaint_rejected_seller": (1.0, 0.0),
    "complaint_upheld_complainant": (1.0, 0.0),
    "complaint_rejected_complainant": (0.0, 1.0),
}


@dataclass(frozen=True)
class ReputationConfig:
    half_life_days: float = 90.0
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    weights: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(WEIGHTS))

    @property
    def half_life_s(self) -> float:
        return self.half_life_days * 86400.0


def decay(age_s: float, half_life_s: float) -> float:
    """The weight left after ``age_s`` seconds (1 now, 1/2 after one half-life)."""
    return 1.0 if age_s <= 0 else math.exp(-math.log(2) * age_s / half_life_s)


@dataclass(frozen=True)
class Beta:
    """Evidence (prior excluded) as of ``at``."""

    alpha: float
    beta: float
    at: datetime

    def decayed(self, now: datetime, half_life_s: float) -> Beta:
        f = decay((now - self.at).total_seconds(), half_life_s)
        return Beta(self.alpha * f, self.beta * f, max(now, self.at))

    def add(self, d_alpha: float, d_beta: float, now: datetime, half_life_s: float) -> Beta:
        b = self.decayed(now, half_life_s)
        # reversals subtract exactly what is left; float noise must not go below zero
        return Beta(max(0.0, b.alpha + d_alpha), max(0.0, b.beta + d_beta), b.at)

    def score(self, cfg: ReputationConfig) -> float:
        a, b = cfg.prior_alpha + self.alpha, cfg.prior_beta + self.beta
        return a / (a + b)

    def n(self) -> float:
        return self.alpha + self.beta


def subject_key(pseudo: Pseudonymizer, subject_type: str, subject_id: str) -> str:
    """The keyed-hash token a subject is stored under (devices: the token velocity uses)."""
    if subject_type not in SUBJECT_TYPES:
        raise ValidationFailed(f"subject_type must be one of {', '.join(SUBJECT_TYPES)}")
    if not subject_id or len(subject_id) > 200:
        raise ValidationFailed("subject_id: between 1 and 200 characters")
    return pseudo.token(subject_type, subject_id)


def redis_key(subject_type: str) -> bytes:
    return f"{KEY_PREFIX}{subject_type}".encode()


def encode(b: Beta) -> str:
    return f"{b.alpha!r}|{b.beta!r}|{int(b.at.timestamp() * 1000)}"


def decode(raw: bytes | str | None) -> Beta | None:
    if not raw:
        return None
    from datetime import UTC

    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        a, b, ms = text.split("|")
        return Beta(float(a), float(b), datetime.fromtimestamp(int(ms) / 1000, UTC))
    except ValueError:
        return None


def event_subjects(event: BaseEvent) -> dict[str, str | None]:
    """Raw ids of the subjects of an event whose reputation a check reads."""
    if isinstance(event, OrderEvent):
        buyer, shop = event.buyer_id, event.shop_id
    elif isinstance(event, ReviewEvent):
        buyer, shop = event.reviewer_id, event.shop_id
    elif isinstance(event, CouponRedemptionEvent):
        buyer, shop = event.account_id, None
    elif isinstance(event, ListingEvent):
        buyer, shop = None, event.shop_id
    else:  # pragma: no cover - every kind is listed above
        buyer, shop = None, None
    return {"buyer": buyer, "shop": shop, "device": event.device_id}


_KINDS = {
    "buyer": frozenset({"order", "review", "coupon_redemption"}),
    "shop": frozenset({"order", "review", "listing"}),
    "device": frozenset(),
}


def schema() -> list[FeatureSpec]:
    """``reputation.<type>`` (posterior mean, 0 bad .. 1 good) and ``reputation.<type>_n``
    (decayed number of outcomes behind it) for buyers, shops and devices."""
    out = []
    for t in FEATURE_SUBJECTS:
        out.append(
            FeatureSpec(
                f"reputation.{t}",
                FeatureType.FLOAT,
                f"the {t}'s reputation: Beta posterior mean of good vs bad outcomes, decayed (0 bad, 1 good)",
                _KINDS[t],
            )
        )
        out.append(
            FeatureSpec(
                f"reputation.{t}_n",
                FeatureType.FLOAT,
                f"decayed number of outcomes behind the {t}'s reputation (0 = no record)",
                _KINDS[t],
            )
        )
    return out


@dataclass(frozen=True)
class Update:
    subject_type: str
    subject_key: str
    reason: str
    ref: str
    d_alpha: float = 0.0
    d_beta: float = 0.0
    reverses: int | None = None


class ReputationStore:
    """Writes go to the database (the record) and then to the Redis mirror checks read."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: redis.Redis | None,
        pseudo: Pseudonymizer,
        config: ReputationConfig | None = None,
    ) -> None:
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        self.client = client
        self.pseudo = pseudo
        self.config = config or ReputationConfig()

    # -- writing ----------------------------------------------------------------------
    def weighted(
        self, subject_type: str, subject_key: str, reason: str, ref: str, scale: float = 1.0
    ) -> Update:
        try:
            da, db = self.config.weights[reason]
        except KeyError:
            raise ValidationFailed(f"unknown reputation reason {reason!r}") from None
        return Update(subject_type, subject_key, reason, ref, da * scale, db * scale)

    def apply_in(
        self, conn: Connection, updates: Iterable[Update], *, actor: str, now: datetime | None = None
    ) -> list[tuple[str, str, Beta]]:
        """Apply updates inside the caller's transaction; returns the new evidence to mirror
        (call :meth:`mirror` after the commit)."""
        now = now or utcnow()
        hl = self.config.half_life_s
        changed: dict[tuple[str, str], Beta] = {}
        for u in updates:
            if u.d_alpha == 0 and u.d_beta == 0:
                continue
            row = conn.execute(
                select(ReputationScore).where(
                    ReputationScore.subject_type == u.subject_type,
                    ReputationScore.subject_key == u.subject_key,
                )
            ).first()
            if row is None:
                new = Beta(0.0, 0.0, now).add(u.d_alpha, u.d_beta, now, hl)
                conn.execute(
                    insert(ReputationScore),
                    {
                        "subject_type": u.subject_type,
                        "subject_key": u.subject_key,
                        "alpha": new.alpha,
                        "beta": new.beta,
                        "events": 1,
                        "updated_at": new.at,
                    },
                )
            else:
                new = Beta(row.alpha, row.beta, row.updated_at).add(u.d_alpha, u.d_beta, now, hl)
                conn.execute(
                    update(ReputationScore)
                    .where(
                        ReputationScore.subject_type == u.subject_type,
                        ReputationScore.subject_key == u.subject_key,
                    )
                    .values(alpha=new.alpha, beta=new.beta, events=row.events + 1, updated_at=new.at)
                )
            conn.execute(
                insert(ReputationEvent),
                {
                    "subject_type": u.subject_type,
                    "subject_key": u.subject_key,
                    "delta_alpha": u.d_alpha,
                    "delta_beta": u.d_beta,
                    "reason": u.reason[:64],
                    "ref": u.ref[:200],
                    "actor": actor[:100],
                    "reverses": u.reverses,
                    "at": now,
                },
            )
            changed[(u.subject_type, u.subject_key)] = new
        return [(t, k, b) for (t, k), b in changed.items()]

    def reversals(
        self, conn: Connection, ref: str, new_ref: str, *, now: datetime | None = None
    ) -> list[Update]:
        """Updates that take back every not-yet-reversed bad event recorded under ``ref``,
        at what is left of it now (so the subject stands where it would have without it)."""
        now = now or utcnow()
        rows = conn.execute(
            select(ReputationEvent).where(ReputationEvent.ref == ref, ReputationEvent.delta_beta > 0)
        ).all()
        reversed_ids = set(
            conn.execute(
                select(ReputationEvent.reverses).where(ReputationEvent.reverses.in_([r.id for r in rows]))
            ).scalars()
        )
        out = []
        for r in rows:
            if r.id in reversed_ids:
                continue
            left = decay((now - r.at).total_seconds(), self.config.half_life_s)
            out.append(
                Update(
                    r.subject_type, r.subject_key, "appeal_reversal", new_ref, 0.0, -r.delta_beta * left, r.id
                )
            )
        return out

    def apply(self, updates: Sequence[Update], *, actor: str, now: datetime | None = None) -> None:
        with self.engine.begin() as conn:
            changed = self.apply_in(conn, updates, actor=actor, now=now)
        self.mirror(changed)

    def mirror(self, changed: Iterable[tuple[str, str, Beta]]) -> bool:
        """Copy new evidence to Redis; False (logged) when Redis is down: ``sync`` repairs it."""
        if self.client is None:
            return False
        try:
            pipe = self.client.pipeline(transaction=False)
            for t, k, b in changed:
                pipe.hset(redis_key(t), k, encode(b))
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("reputation mirror not updated (run `riskctl reputation sync`): %s", exc)
            return False
        return True

    def sync(self) -> int:
        """Rebuild the Redis mirror from the database; returns the number of subjects."""
        assert self.client is not None
        n = 0
        with self.engine.connect() as conn:
            pipe = self.client.pipeline(transaction=False)
            for t in SUBJECT_TYPES:
                pipe.delete(redis_key(t))
            for r in conn.execute(select(ReputationScore)):
                pipe.hset(
                    redis_key(r.subject_type), r.subject_key, encode(Beta(r.alpha, r.beta, r.updated_at))
                )
                n += 1
            pipe.execute()
        return n

    # -- reading ----------------------------------------------------------------------
    def score_of(self, subject_type: str, key: str, now: datetime | None = None) -> float:
        now = now or utcnow()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ReputationScore).where(
                    ReputationScore.subject_type == subject_type, ReputationScore.subject_key == key
                )
            ).first()
        b = Beta(row.alpha, row.beta, row.updated_at) if row else Beta(0.0, 0.0, now)
        return b.decayed(now, self.config.half_life_s).score(self.config)

    def explain(
        self, subject_type: str, subject_id: str, *, now: datetime | None = None, limit: int = 200
    ) -> dict[str, Any]:
        """Score, alpha, beta (prior included), n and the history, each event with what is left of it now."""
        now = now or utcnow()
        key = subject_key(self.pseudo, subject_type, subject_id)
        hl = self.config.half_life_s
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ReputationScore).where(
                    ReputationScore.subject_type == subject_type, ReputationScore.subject_key == key
                )
            ).first()
            events = conn.execute(
                select(ReputationEvent)
                .where(ReputationEvent.subject_type == subject_type, ReputationEvent.subject_key == key)
                .order_by(ReputationEvent.id.desc())
                .limit(limit)
            ).all()
            total = conn.execute(
                select(func.count())
                .select_from(ReputationEvent)
                .where(ReputationEvent.subject_type == subject_type, ReputationEvent.subject_key == key)
            ).scalar_one()
        b = (Beta(row.alpha, row.beta, row.updated_at) if row else Beta(0.0, 0.0, now)).decayed(now, hl)
        cfg = self.config
        return {
            "subject_type": subject_type,
            "subject_id": subject_id,
            "score": round(b.score(cfg), 6),
            "alpha": round(cfg.prior_alpha + b.alpha, 6),
            "beta": round(cfg.prior_beta + b.beta, 6),
            "n": round(b.n(), 6),
            "prior": {"alpha": cfg.prior_alpha, "beta": cfg.prior_beta},
            "half_life_days": cfg.half_life_days,
            "events": total,
            "history": [
                {
                    "id": e.id,
                    "at": e.at.isoformat().replace("+00:00", "Z"),
                    "reason": e.reason,
                    "ref": e.ref,
                    "actor": e.actor,
                    "delta_alpha": e.delta_alpha,
                    "delta_beta": e.delta_beta,
                    "reverses": e.reverses,
                    # what is left of this event now: the history sums to alpha - alpha0, beta - beta0
                    "weight_now": round(decay((now - e.at).total_seconds(), hl), 6),
                }
                for e in events
            ],
        }

    # -- checks ------------------------------------------------------------------------
    def reads(self, event: BaseEvent) -> list[tuple[str, bytes, str]]:
        """(subject type, Redis hash key, field) for the subjects a check of ``event`` reads."""
        kind: str = event.kind  # type: ignore[attr-defined]
        out = []
        for t, raw in event_subjects(event).items():
            kinds = _KINDS[t]
            if raw is None or (kinds and kind not in kinds):
                continue
            out.append((t, redis_key(t), self.pseudo.token(t, raw)))
        return out

    def features(
        self, reads: Sequence[tuple[str, bytes, str]], raw: Sequence[Any] | None, at: datetime
    ) -> dict[str, Any]:
        """Feature values from the mirror's replies (``None`` = Redis unavailable)."""
        out: dict[str, Any] = {}
        for i, (t, _, _) in enumerate(reads):
            if raw is None:
                out[f"reputation.{t}"] = None
                out[f"reputation.{t}_n"] = None
                continue
            b = decode(raw[i]) or Beta(0.0, 0.0, at)
            b = b.decayed(at, self.config.half_life_s)
            out[f"reputation.{t}"] = round(b.score(self.config), 6)
            out[f"reputation.{t}_n"] = round(b.n(), 6)
        return out

    # -- batch: decisions, cases and appeals -------------------------------------------
    def ingest(
        self,
        *,
        now: datetime | None = None,
        batch: int = 5000,
        actor: str = "reputation",
        chunk: int = 200,
    ) -> dict[str, int]:
        """Fold new decisions, resolved cases and decided appeals into reputation, once each.

        Idempotent: every update carries a ref (``decision:<id>``, ``case:<id>``,
        ``appeal:<id>``) and a ref already recorded is skipped. Decisions are read past a
        cursor (the last one folded in) so a run costs what is new.

        At most ``batch`` decisions per run, committed ``chunk`` at a time, and on SQLite a
        pause as long as the chunk took before the next: SQLite has one write lock, which
        waiting writers only poll for, so the checks of the web workers must find it free
        well within their busy timeout, or they fail with "database is locked".
        """
        now = now or utcnow()
        counts = {"decisions": 0, "cases": 0, "appeals": 0}
        changed: list[tuple[str, str, Beta]] = []
        folded = (
            select(ReputationEvent.id)
            .where(ReputationEvent.ref == literal("decision:") + Decision.id)
            .exists()
        )
        with self.engine.connect() as conn:  # what is stored now: a run does not chase new traffic
            upto = conn.execute(select(func.max(Decision.created_at))).scalar()
        q = (
            select(Decision.id, Decision.outcome, Decision.kind, Decision.created_at, EventRecord.payload)
            .join(EventRecord, EventRecord.id == Decision.event_pk)
            .where(~folded, Decision.created_at <= upto if upto is not None else false())
            .order_by(Decision.created_at, Decision.id)
        )
        after = q
        yield_lock = self.engine.dialect.name == "sqlite"
        while counts["decisions"] < batch:
            started = time.monotonic()
            with self.engine.begin() as conn:
                rows = conn.execute(after.limit(min(chunk, batch - counts["decisions"]))).all()
                updates: list[Update] = []
                for d in rows:
                    ref = f"decision:{d.id}"
                    reason = f"decision_{d.outcome}"
                    for t, key in self._payload_subjects(d.kind, d.payload):
                        updates.append(self.weighted(t, key, reason, ref))
                    counts["decisions"] += 1
                changed += self.apply_in(conn, updates, actor=actor, now=now)
            if len(rows) < chunk:
                break
            if yield_lock:
                time.sleep(min(1.0, time.monotonic() - started))
            # on past the last one read: a decision that moved nothing is not read again
            last = rows[-1]
            after = q.where(
                or_(
                    Decision.created_at > last.created_at,
                    and_(Decision.created_at == last.created_at, Decision.id > last.id),
                )
            )
        with self.engine.begin() as conn:
            changed += self._ingest_cases(conn, counts, actor, now)
        self.mirror(changed)
        return counts

    def _payload_subjects(self, kind: str, payload: dict[str, Any]) -> list[tuple[str, str]]:
        tok = self.pseudo.token
        out = []
        buyer = payload.get("buyer_id") or payload.get("reviewer_id") or payload.get("account_id")
        if buyer and kind != "listing":
            out.append(("buyer", tok("buyer", buyer)))
        if payload.get("shop_id") and kind in _KINDS["shop"]:
            out.append(("shop", tok("shop", payload["shop_id"])))
        if payload.get("device_id"):  # stored as its token already (riskctl.checks.redacted_payload)
            out.append(("device", payload["device_id"]))
        return out

    def _ingest_cases(
        self, conn: Connection, counts: dict[str, int], actor: str, now: datetime
    ) -> list[tuple[str, str, Beta]]:
        seen = set(
            conn.execute(
                select(ReputationEvent.ref).where(
                    ReputationEvent.ref.like("case:%") | ReputationEvent.ref.like("appeal:%")
                )
            ).scalars()
        )
        from riskctl.models import Complaint

        rows = conn.execute(
            select(
                Case.id,
                Case.kind,
                Case.subject_id,
                Case.status,
                Case.resolution,
                select(Complaint.id).where(Complaint.case_id == Case.id).scalar_subquery().label("complaint"),
            ).where(Case.resolution.in_([Resolution.CONFIRMED_ABUSE.value, Resolution.FALSE_POSITIVE.value]))
        ).all()
        changed: list[tuple[str, str, Beta]] = []
        for c in rows:
            ref = f"case:{c.id}"
            # a complaint's case moved reputation when the complaint concluded (same ref)
            if ref not in seen and c.complaint is None:
                changed += self.apply_in(conn, self.case_updates(conn, c), actor=actor, now=now)
                counts["cases"] += 1
            if c.status == CaseStatus.APPEAL_UPHELD.value and f"appeal:{c.id}" not in seen:
                changed += self.apply_in(
                    conn, self.reversals(conn, ref, f"appeal:{c.id}", now=now), actor=actor, now=now
                )
                counts["appeals"] += 1
        return changed

    def case_updates(self, conn: Connection, case: Any) -> list[Update]:
        """What a resolved case says about its subject (and, for abuse, the devices used)."""
        t = "shop" if case.kind == "listing" else "buyer"
        ref = f"case:{case.id}"
        key = self.pseudo.token(t, case.subject_id)
        if case.resolution == Resolution.FALSE_POSITIVE.value:
            return [self.weighted(t, key, "case_false_positive", ref)]
        ups = [self.weighted(t, key, "case_confirmed_abuse", ref)]
        devices = conn.execute(
            select(EventRecord.payload)
            .join(Decision, Decision.event_pk == EventRecord.id)
            .join(CaseDecision, CaseDecision.decision_id == Decision.id)
            .where(CaseDecision.case_id == case.id)
        ).scalars()
        for dev in sorted({p.get("device_id") for p in devices if p.get("device_id")}):
            ups.append(self.weighted("device", dev, "case_device_confirmed_abuse", ref))
        return ups
