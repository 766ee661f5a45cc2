"""Infringement complaints: rights holders' brands, the complaint workflow, its deadlines.

The workflow is an explicit state machine; an illegal move is a 409::

    received ──review──▶ under_review ──send_notice──▶ notice_sent ──counter_notice──▶ counter_notice
       │                    │                            │                                │
       └──reject────────────┴──reject──▶ rejected        └─take_down─▶ taken_down ◀──take_down┤
                                                                                           restore ▶ restored
    (received | under_review | notice_sent | counter_notice) ──withdraw──▶ withdrawn

Deadlines are business days (weekends and the marketplace's holidays skipped), per
marketplace: the seller's response window starts when the notice is sent (no counter-notice
by then: taken down), the restore window when a counter-notice arrives (the rights holder
does not act by then: restored). ``riskctl complaints tick`` acts on the ones that passed.
A marketplace that takes listings down on notice (DMCA style) removes them when the notice
is sent and puts them back when the complaint ends any way but ``taken_down``.

Every complaint has a case in the ``ip`` queue, so its takedowns are outbox actions with
statements of reasons, appealable like any other. The outcome moves reputation (the shop's,
and the complainant's accuracy), gives the shop a strike and tells the rights holder.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from detectors.listing_match import Brand as MatcherBrand
from detectors.listing_match import BrandRegistry, ListingMatcher
from riskctl import audit, casework, outbox, strikes
from riskctl.casestate import CaseStatus, Move, Resolution
from riskctl.errors import ConfigError, Conflict, Forbidden, NotFound, ValidationFailed
from riskctl.ids import new_id
from riskctl.models import Brand, Case, Complaint, ComplaintEvent, OutboxAction, utcnow
from riskctl.reputation import Beta, ReputationStore, Update

log = logging.getLogger(__name__)


class Status(enum.StrEnum):
    RECEIVED = "received"
    UNDER_REVIEW = "under_review"
    NOTICE_SENT = "notice_sent"
    COUNTER_NOTICE = "counter_notice"
    TAKEN_DOWN = "taken_down"
    RESTORED = "restored"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ComplaintMove(enum.StrEnum):
    REVIEW = "review"
    SEND_NOTICE = "send_notice"
    COUNTER_NOTICE = "counter_notice"
    TAKE_DOWN = "take_down"
    RESTORE = "restore"
    REJECT = "reject"
    WITHDRAW = "withdraw"


S, M = Status, ComplaintMove
MOVES: dict[tuple[Status, ComplaintMove], Status] = {
    (S.RECEIVED, M.REVIEW): S.UNDER_REVIEW,
    (S.RECEIVED, M.REJECT): S.REJECTED,
    (S.UNDER_REVIEW, M.REJECT): S.REJECTED,
    (S.UNDER_REVIEW, M.SEND_NOTICE): S.NOTICE_SENT,
    (S.NOTICE_SENT, M.COUNTER_NOTICE): S.COUNTER_NOTICE,
    (S.NOTICE_SENT, M.TAKE_DOWN): S.TAKEN_DOWN,
    (S.COUNTER_NOTICE, M.TAKE_DOWN): S.TAKEN_DOWN,
    (S.COUNTER_NOTICE, M.RESTORE): S.RESTORED,
    (S.COUNTER_NOTICE, M.REJECT): S.REJECTED,
    **{(s, M.WITHDRAW): S.WITHDRAWN for s in (S.RECEIVED, S.UNDER_REVIEW, S.NOTICE_SENT, S.COUNTER_NOTICE)},
}
TERMINAL = frozenset({S.TAKEN_DOWN, S.RESTORED, S.REJECTED, S.WITHDRAWN})
UPHELD, NOT_UPHELD = frozenset({S.TAKEN_DOWN}), frozenset({S.RESTORED, S.REJECTED})
# Who may make a move: the rights holder only withdraws; staff (compliance) make the rest.
OWNER_MOVES = frozenset({M.WITHDRAW})
RIGHTS = ("trademark", "copyright", "design", "patent", "counterfeit")
MAX_LISTINGS = 500


def legal_moves(status: Status) -> list[ComplaintMove]:
    return [m for (s, m) in MOVES if s is status]


def transition(status: Status, move: ComplaintMove) -> Status:
    target = MOVES.get((status, move))
    if target is None:
        allowed = ", ".join(m.value for m in legal_moves(status)) or "none"
        raise Conflict(f"cannot {move.value} a complaint that is {status.value}; allowed: {allowed}")
    return target


# -- business days -----------------------------------------------------------------------------
def is_business_day(d: date, holidays: frozenset[date] = frozenset()) -> bool:
    return d.weekday() < 5 and d not in holidays


def add_business_days(start: datetime, days: int, holidays: frozenset[date] = frozenset()) -> datetime:
    """The same time of day ``days`` business days after ``start`` (weekends and holidays
    skipped; a start on a day off counts from the next business day)."""
    if days < 0:
        raise ValueError("days must be >= 0")
    d = start.date()
    n = 0
    while n < days:
        d += timedelta(days=1)
        if is_business_day(d, holidays):
            n += 1
    if days == 0:
        while not is_business_day(d, holidays):
            d += timedelta(days=1)
    return datetime.combine(d, start.timetz())


def business_days_between(a: date, b: date, holidays: frozenset[date] = frozenset()) -> int:
    """Business days in (a, b]."""
    return sum(1 for i in range(1, (b - a).days + 1) if is_business_day(a + timedelta(days=i), holidays))


@dataclass(frozen=True)
class Marketplace:
    name: str
    response_days: int = 3  # the seller's window to answer a notice
    restore_days: int = 10  # after a counter-notice, the rights holder's window to act
    takedown_on_notice: bool = False  # DMCA style: listings come down when the notice is sent
    holidays: frozenset[date] = frozenset()


DEFAULT_MARKETPLACES = {
    "default": Marketplace("default", 3, 10, False),
    "dmca": Marketplace("dmca", 10, 10, True),
}


@dataclass(frozen=True)
class Calendar:
    marketplaces: dict[str, Marketplace] = field(default_factory=lambda: dict(DEFAULT_MARKETPLACES))

    def get(self, name: str) -> Marketplace:
        try:
            return self.marketplaces[name]
        except KeyError:
            raise ValidationFailed(
                f"marketplace: unknown {name!r}; one of {', '.join(sorted(self.marketplaces))}"
            ) from None


def load_calendar(path: str | Path | None) -> Calendar:
    """``{marketplaces: {name: {response_days, restore_days, takedown_on_notice, holidays}}}``."""
    if not path:
        return Calendar()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
        out = dict(DEFAULT_MARKETPLACES)
        for name, spec in (data.get("marketplaces") or {}).items():
            unknown = set(spec) - {"response_days", "restore_days", "takedown_on_notice", "holidays"}
            if unknown:
                raise ValueError(f"{name}: unknown keys {sorted(unknown)}")
            out[str(name)] = Marketplace(
                str(name),
                int(spec.get("response_days", 3)),
                int(spec.get("restore_days", 10)),
                bool(spec.get("takedown_on_notice", False)),
                frozenset(date.fromisoformat(str(h)) for h in spec.get("holidays") or ()),
            )
        return Calendar(out)
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise ConfigError(f"complaint calendar {path}: {exc}") from None


# -- brands -------------------------------------------------------------------------------------
def brand_view(b: Brand) -> dict[str, Any]:
    return {
        "id": b.id,
        "owner": b.owner,
        "name": b.name,
        "aliases": b.aliases,
        "protected_terms": b.protected_terms,
        "reference_prices": b.reference_prices,
        "image_phashes": b.image_phashes,
        "authorised_shops": b.authorised_shops,
        "proof_documents": b.proof_documents,
        "created_at": _iso(b.created_at),
        "updated_at": _iso(b.updated_at),
    }


def create_brand(
    sessions: sessionmaker[Session], owner: str, data: dict[str, Any], *, actor: str
) -> dict[str, Any]:
    now = utcnow()
    with sessions.begin() as session:
        conn = session.connection()
        taken = conn.execute(select(Brand.id).where(func.lower(Brand.name) == data["name"].lower())).first()
        if taken is not None:
            raise Conflict(f"a brand named {data['name']!r} is already registered")
        brand_id = new_id("brd")
        try:
            _insert_brand(conn, brand_id, owner, data, now)
        except IntegrityError:
            # SQL lower() folds ASCII only, so "Ölmark" and "ölmark" pass the check above and
            # meet the unique index here (as does a concurrent registration of the same name)
            raise Conflict(f"a brand named {data['name']!r} is already registered") from None
        audit.append(conn, actor, "brand.create", f"brand:{brand_id}", {"name": data["name"], "owner": owner})
        return brand_view(session.get_one(Brand, brand_id))


def _insert_brand(conn: Connection, brand_id: str, owner: str, data: dict[str, Any], now: datetime) -> None:
    conn.execute(
        insert(Brand),
        {
            "id": brand_id,
            "owner": owner,
            "name": data["name"],
            "aliases": list(data.get("aliases", [])),
            "protected_terms": list(data.get("protected_terms", [])),
            "reference_prices": dict(data.get("reference_prices", {})),
            "image_phashes": list(data.get("image_phashes", [])),
            "authorised_shops": list(data.get("authorised_shops", [])),
            "proof_documents": list(data.get("proof_documents", [])),
            "created_at": now,
            "updated_at": now,
        },
    )


def list_brands(sessions: sessionmaker[Session], owner: str | None) -> list[dict[str, Any]]:
    with sessions() as session:
        q = select(Brand).order_by(Brand.name)
        if owner is not None:
            q = q.where(Brand.owner == owner)
        return [brand_view(b) for b in session.scalars(q)]


def db_brands(conn: Connection) -> list[MatcherBrand]:
    """The registered brands as the listing matcher sees them (categories: where they have prices)."""
    return [
        MatcherBrand(
            name=b.name,
            aliases=tuple(b.aliases),
            protected_terms=tuple(b.protected_terms),
            categories=frozenset(b.reference_prices),
            reference_prices={k: float(v) for k, v in b.reference_prices.items()},
            image_hashes=tuple(b.image_phashes),
            authorised_shops=frozenset(b.authorised_shops),
            owner=b.owner,
        )
        for b in conn.execute(select(Brand).order_by(Brand.name))
    ]


def merge_registry(base: BrandRegistry, extra: Sequence[MatcherBrand], version: str) -> BrandRegistry:
    """The file registry plus registered brands; a registered brand replaces a fixture of the same name."""
    names = {b.name.casefold() for b in extra}
    brands = tuple(b for b in base.brands if b.name.casefold() not in names) + tuple(extra)
    return BrandRegistry(
        brands, base.reference_currency, base.fx, base.ordinary_words, f"{base.version}+{version}"
    )


class MergedRegistry:
    """The file registry (hot-reloaded by ``inner``) merged with the brands registered in the
    database; the database is re-read at most every ``interval_s`` (a count and the newest
    update tell whether it changed), so a listing check costs no query."""

    def __init__(self, inner: Any, sessions: sessionmaker[Session], interval_s: float = 1.0) -> None:
        import threading
        import time

        self.inner = inner
        self.sessions = sessions
        self.interval_s = interval_s
        self._clock = time.monotonic
        self._lock = threading.Lock()
        self._next = 0.0
        self._key: tuple[Any, ...] | None = None
        self._matcher: ListingMatcher | None = None
        self._base: ListingMatcher | None = None

    @property
    def last_error(self) -> str | None:
        return getattr(self.inner, "last_error", None)

    @property
    def version(self) -> str:
        return self.current.registry.version

    def maybe_reload(self) -> bool:
        return bool(self.inner.maybe_reload())

    def refresh(self) -> None:
        self._next = 0.0

    @property
    def current(self) -> ListingMatcher:
        base = self.inner.current
        now = self._clock()
        if (now >= self._next or self._base is not base) and self._lock.acquire(blocking=False):
            try:
                self._next = now + self.interval_s
                self._rebuild(base)
            finally:
                self._lock.release()
        m = self._matcher
        return m if m is not None and self._base is base else base

    def _rebuild(self, base: ListingMatcher) -> None:
        try:
            with self.sessions.kw["bind"].connect() as conn:
                count, newest = conn.execute(select(func.count(Brand.id), func.max(Brand.updated_at))).one()
                key = (count, newest)
                if base is self._base and key == self._key:
                    return
                extra = db_brands(conn) if count else []
        except SQLAlchemyError as exc:  # the file registry (or the last merge) keeps serving
            log.warning("registered brands not read: %s", exc)
            return
        try:
            merged = ListingMatcher(merge_registry(base.registry, extra, f"db{count}")) if extra else base
        except ValueError as exc:
            log.error("registered brands not merged, the previous registry keeps serving: %s", exc)
            return
        self._matcher, self._base, self._key = merged, base, key


# -- complaints --------------------------------------------------------------------------------
def _iso(t: datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t else None


@dataclass(frozen=True)
class ComplaintService:
    sessions: sessionmaker[Session]
    reputation: ReputationStore
    calendar: Calendar = field(default_factory=Calendar)
    ladder: strikes.Ladder = field(default_factory=strikes.Ladder)

    # -- the complainant's record --------------------------------------------------------
    def accuracy(self, conn: Connection, owner: str) -> dict[str, Any]:
        rows = dict(
            conn.execute(
                select(Complaint.status, func.count())
                .where(Complaint.owner == owner)
                .group_by(Complaint.status)
            ).all()
        )
        upheld = sum(rows.get(s.value, 0) for s in UPHELD)
        decided = upheld + sum(rows.get(s.value, 0) for s in NOT_UPHELD)
        key = self.reputation.pseudo.token("complainant", owner)
        score = self._score(conn, key)
        lane = "standard"
        if decided >= 5 and score >= 0.8:
            lane = "fast"
        elif decided >= 3 and score < 0.4:
            lane = "scrutiny"
        return {
            "upheld": upheld,
            "decided": decided,
            "accuracy": round(upheld / decided, 4) if decided else None,
            "reputation": round(score, 4),
            "lane": lane,
        }

    def _score(self, conn: Connection, key: str) -> float:
        from riskctl.models import ReputationScore

        row = conn.execute(
            select(ReputationScore).where(
                ReputationScore.subject_type == "complainant", ReputationScore.subject_key == key
            )
        ).first()
        b = Beta(row.alpha, row.beta, row.updated_at) if row else Beta(0.0, 0.0, utcnow())
        return b.decayed(utcnow(), self.reputation.config.half_life_s).score(self.reputation.config)

    # -- filing ---------------------------------------------------------------------------
    def file(
        self,
        owner: str,
        *,
        listings: Sequence[dict[str, str]],
        right: str,
        evidence: str,
        brand_id: str | None = None,
        marketplace: str = "default",
        actor: str,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """A rights holder files a complaint over one or many listings (bulk)."""
        now = now or utcnow()
        if right not in RIGHTS:
            raise ValidationFailed(f"right: one of {', '.join(RIGHTS)}")
        if not 1 <= len(listings) <= MAX_LISTINGS:
            raise ValidationFailed(f"listings: between 1 and {MAX_LISTINGS}")
        if not evidence.strip():
            raise ValidationFailed("evidence: describe the right and why the listings infringe it")
        self.calendar.get(marketplace)
        seen: dict[str, dict[str, str]] = {}
        for item in listings:
            seen.setdefault(
                item["listing_id"], {"listing_id": item["listing_id"], "shop_id": item["shop_id"]}
            )
        items = list(seen.values())
        with self.sessions.begin() as session:
            conn = session.connection()
            brand_name = None
            if brand_id is not None:
                brand = conn.execute(select(Brand.owner, Brand.name).where(Brand.id == brand_id)).first()
                if brand is None or brand.owner != owner:
                    raise NotFound(f"no brand {brand_id!r}")  # another's brand is not even there
                brand_name = brand.name
                shops_ok = set(
                    conn.execute(select(Brand.authorised_shops).where(Brand.id == brand_id)).scalar_one()
                )
                licensed = [i["listing_id"] for i in items if i["shop_id"] in shops_ok]
                if licensed:
                    raise ValidationFailed(
                        f"listings: {', '.join(licensed[:10])} are sold by shops authorised for this brand"
                    )
            record = self.accuracy(conn, owner)
            # fast lane: accurate complainants first; careless ones wait (and get a closer look)
            priority = round(100.0 * record["reputation"], 2)
            complaint_id, case_id = new_id("cmp"), new_id("case")
            shop = items[0]["shop_id"]
            conn.execute(
                insert(Case),
                {
                    "id": case_id,
                    "queue": "ip",
                    "kind": "listing",
                    "subject_id": shop,
                    "shop_id": shop,
                    "status": CaseStatus.OPEN.value,
                    "priority": priority,
                    "sla_due_at": now + timedelta(hours=72),
                    "decision_count": 0,
                    "money_at_stake": 0.0,
                    "max_score": 0.0,
                    # reported by a person, not detected: statements of reasons say so
                    "source": "manual",
                    "title": f"Complaint {complaint_id}: {right} ({brand_name or 'unregistered brand'}) "
                    f"over {len(items)} listing(s)"[:300],
                    "evidence": {
                        "complaint_id": complaint_id,
                        "listings": items[:50],
                        "lane": record["lane"],
                    },
                    "opened_at": now,
                    "updated_at": now,
                },
            )
            conn.execute(
                insert(Complaint),
                {
                    "id": complaint_id,
                    "owner": owner,
                    "brand_id": brand_id,
                    "case_id": case_id,
                    "right": right,
                    "status": S.RECEIVED.value,
                    "marketplace": marketplace,
                    "listings": items,
                    "evidence": evidence,
                    "priority": priority,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            self._event(conn, complaint_id, actor, "", S.RECEIVED, f"{len(items)} listing(s)", now)
            audit.append(
                conn,
                actor,
                "complaint.file",
                f"complaint:{complaint_id}",
                {"case_id": case_id, "listings": len(items), "lane": record["lane"]},
            )
        return self.get(complaint_id, owner=owner)

    # -- reading ---------------------------------------------------------------------------
    def get(self, complaint_id: str, *, owner: str | None) -> dict[str, Any]:
        """One complaint; ``owner`` set = a rights holder, who sees only their own (else 404)."""
        with self.sessions() as session:
            c = session.get(Complaint, complaint_id)
            if c is None or (owner is not None and c.owner != owner):
                raise NotFound(f"no complaint {complaint_id!r}")
            events = session.scalars(
                select(ComplaintEvent).where(ComplaintEvent.complaint_id == c.id).order_by(ComplaintEvent.id)
            ).all()
            view = self._view(c)
            view["history"] = [
                {"at": _iso(e.at), "actor": e.actor, "from": e.from_status, "to": e.to_status, "note": e.note}
                for e in events
            ]
            if owner is None:  # staff also see the complainant's record and the case
                view["complainant"] = self.accuracy(session.connection(), c.owner)
                view["case_id"] = c.case_id
            return view

    def _view(self, c: Complaint) -> dict[str, Any]:
        return {
            "id": c.id,
            "owner": c.owner,
            "brand_id": c.brand_id,
            "right": c.right,
            "status": c.status,
            "marketplace": c.marketplace,
            "listings": c.listings,
            "evidence": c.evidence,
            "priority": c.priority,
            "due_at": _iso(c.due_at),
            "outcome": c.outcome,
            "created_at": _iso(c.created_at),
            "updated_at": _iso(c.updated_at),
            "decided_at": _iso(c.decided_at),
            "legal_moves": [m.value for m in legal_moves(Status(c.status))],
        }

    def list_complaints(
        self, *, owner: str | None, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        with self.sessions() as session:
            q = select(Complaint)
            if owner is not None:
                q = q.where(Complaint.owner == owner)
            if status is not None:
                q = q.where(Complaint.status == status)
            total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = session.scalars(
                q.order_by(Complaint.priority.desc(), Complaint.created_at).limit(limit).offset(offset)
            ).all()
            return {"items": [self._view(c) for c in rows], "total": total, "limit": limit, "offset": offset}

    # -- moves -----------------------------------------------------------------------------
    def move(
        self,
        complaint_id: str,
        move: ComplaintMove | str,
        *,
        actor: str,
        owner: str | None = None,
        note: str = "",
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Apply one move. ``owner`` set = the rights holder acting (only withdraw, only theirs)."""
        now = now or utcnow()
        try:
            move = ComplaintMove(move)
        except ValueError:
            raise ValidationFailed(f"move: one of {', '.join(ComplaintMove)}") from None
        changed: list[tuple[str, str, Beta]] = []
        with self.sessions.begin() as session:
            conn = session.connection()
            c = conn.execute(select(Complaint).where(Complaint.id == complaint_id)).first()
            if c is None or (owner is not None and c.owner != owner):
                raise NotFound(f"no complaint {complaint_id!r}")
            if owner is not None and move not in OWNER_MOVES:
                raise Forbidden(f"a rights holder can only {', '.join(OWNER_MOVES)} a complaint")
            changed = self._apply(conn, c, move, actor, note, now)
        self.reputation.mirror(changed)
        return self.get(complaint_id, owner=owner)

    def _apply(
        self, conn: Connection, c: Any, move: ComplaintMove, actor: str, note: str, now: datetime
    ) -> list[tuple[str, str, Beta]]:
        old = Status(c.status)
        new = transition(old, move)
        market = self.calendar.get(c.marketplace)
        due = None
        if new is S.NOTICE_SENT:
            due = add_business_days(now, market.response_days, market.holidays)
        elif new is S.COUNTER_NOTICE:
            due = add_business_days(now, market.restore_days, market.holidays)
        values: dict[str, Any] = {"status": new.value, "updated_at": now, "due_at": due}
        if new in TERMINAL:
            values |= {"outcome": new.value, "decided_at": now}
        n = conn.execute(
            update(Complaint).where(Complaint.id == c.id, Complaint.status == c.status).values(**values)
        ).rowcount
        if n != 1:
            raise Conflict(f"complaint {c.id} changed while you were working on it; reload and try again")
        detail: dict[str, Any] = {"from": old.value, "to": new.value}
        if due is not None:
            detail["due_at"] = _iso(due)
        self._event(conn, c.id, actor, old.value, new, note, now)
        audit.append(conn, actor, f"complaint.{move.value}", f"complaint:{c.id}", detail)
        shops = sorted({i["shop_id"] for i in c.listings})
        if new is S.NOTICE_SENT:
            for shop in shops:
                outbox.enqueue(
                    conn,
                    case_id=c.case_id,
                    type="notify_seller",
                    target=shop,
                    actor=actor,
                    payload={
                        "complaint_id": c.id,
                        "right": c.right,
                        "listings": [i["listing_id"] for i in c.listings if i["shop_id"] == shop][:100],
                        "respond_by": _iso(due),
                    },
                    now=now,
                )
            if market.takedown_on_notice:
                self._take_down(
                    conn, c, actor, note or "taken down on notice, pending the seller's answer", now
                )
        changed: list[tuple[str, str, Beta]] = []
        if new in TERMINAL:
            changed = self._conclude(conn, c, new, actor, note, now, market)
        return changed

    def _take_down(self, conn: Connection, c: Any, actor: str, note: str, now: datetime) -> None:
        down = set(
            conn.execute(
                select(OutboxAction.target).where(
                    OutboxAction.case_id == c.case_id,
                    OutboxAction.type == "take_down_listing",
                    OutboxAction.reverses.is_(None),
                )
            ).scalars()
        )
        todo = [i["listing_id"] for i in c.listings if i["listing_id"] not in down]
        if not todo:
            return
        row = casework._load(conn, c.case_id)
        why = (
            f"Infringement complaint {c.id} ({c.right}) by the rights holder {c.owner}. "
            f"Evidence: {c.evidence[:600]} {note}".strip()
        )
        casework._emit_actions(
            conn,
            row,
            actor,
            [casework.ActionRequest("take_down_listing", lid, {"complaint_id": c.id}) for lid in todo],
            why,
            now,
        )

    def _restore(self, conn: Connection, c: Any, actor: str, reason: str, now: datetime) -> None:
        originals = conn.execute(
            select(OutboxAction.id, OutboxAction.target).where(
                OutboxAction.case_id == c.case_id,
                OutboxAction.type == "take_down_listing",
                OutboxAction.reverses.is_(None),
            )
        ).all()
        done = set(
            conn.execute(
                select(OutboxAction.reverses).where(
                    OutboxAction.case_id == c.case_id, OutboxAction.reverses.is_not(None)
                )
            ).scalars()
        )
        for a in originals:
            if a.id in done:
                continue
            outbox.enqueue(
                conn,
                case_id=c.case_id,
                type="reinstate_listing",
                target=a.target,
                actor=actor,
                payload={"complaint_id": c.id, "reason": reason},
                reverses=a.id,
                now=now,
            )

    def _conclude(
        self, conn: Connection, c: Any, new: Status, actor: str, note: str, now: datetime, market: Marketplace
    ) -> list[tuple[str, str, Beta]]:
        upheld = new is S.TAKEN_DOWN
        if upheld:
            self._take_down(conn, c, actor, note, now)
        else:
            self._restore(conn, c, actor, new.value, now)
        # the case in the ip queue follows: confirmed abuse (appealable) or not
        row = casework._load(conn, c.case_id)
        if row.status == CaseStatus.OPEN.value:
            casework._move(conn, row, Move.CLAIM, actor, {"complaint": c.id}, assignee=actor, now=now)
            row = casework._load(conn, c.case_id)
        if row.status == CaseStatus.CLAIMED.value:
            resolution = Resolution.CONFIRMED_ABUSE if upheld else Resolution.FALSE_POSITIVE
            casework._move(
                conn,
                row,
                Move.RESOLVE,
                actor,
                {"complaint": c.id, "outcome": new.value},
                resolution=resolution.value,
                resolved_at=now,
                resolved_by=actor,
                claim_expires_at=None,
                now=now,
            )
        outbox.enqueue(
            conn,
            case_id=c.case_id,
            type="notify_complainant",
            target=c.owner,
            actor=actor,
            payload={"complaint_id": c.id, "outcome": new.value, "note": note[:500]},
            now=now,
        )
        if new is S.WITHDRAWN:
            return []
        rep = self.reputation
        tok = rep.pseudo.token
        ref = f"case:{c.case_id}"  # an upheld appeal of the case reverses the seller's penalty
        shops = sorted({i["shop_id"] for i in c.listings})
        ups: list[Update] = [
            rep.weighted(
                "complainant",
                tok("complainant", c.owner),
                "complaint_upheld_complainant" if upheld else "complaint_rejected_complainant",
                f"complaint:{c.id}",
            )
        ]
        for shop in shops:
            ups.append(
                rep.weighted(
                    "shop",
                    tok("shop", shop),
                    "complaint_upheld_seller" if upheld else "complaint_rejected_seller",
                    ref,
                )
            )
        changed = rep.apply_in(conn, ups, actor=actor, now=now)
        if upheld:
            for shop in shops:
                strikes.add(conn, shop, "complaint_upheld", ref, now=now)
                strikes.evaluate(
                    conn, shop, self.ladder, actor=actor, now=now, case_id=c.case_id, why=f"complaint {c.id}"
                )
        return changed

    def _event(
        self, conn: Connection, cid: str, actor: str, old: str, new: Status, note: str, now: datetime
    ) -> None:
        conn.execute(
            insert(ComplaintEvent),
            {
                "complaint_id": cid,
                "at": now,
                "actor": actor[:100],
                "from_status": old,
                "to_status": new.value,
                "note": note[:2000],
            },
        )

    # -- the scheduler -------------------------------------------------------------------------
    def tick(self, *, now: datetime | None = None, actor: str = "scheduler") -> dict[str, int]:
        """Act on every deadline that passed: no answer to a notice → taken down; no action
        on a counter-notice → restored. Then strikes decay (the ladder steps down)."""
        now = now or utcnow()
        counts = {"taken_down": 0, "restored": 0, "strikes": 0, "reinstated": 0}
        with self.sessions.begin() as session:
            conn = session.connection()
            due = conn.execute(
                select(Complaint)
                .where(
                    Complaint.status.in_([S.NOTICE_SENT.value, S.COUNTER_NOTICE.value]),
                    Complaint.due_at <= now,
                )
                .order_by(Complaint.due_at)
            ).all()
            changed = []
            for c in due:
                if c.status == S.NOTICE_SENT.value:
                    changed += self._apply(
                        conn, c, M.TAKE_DOWN, actor, "the seller did not answer the notice in time", now
                    )
                    counts["taken_down"] += 1
                else:
                    changed += self._apply(
                        conn,
                        c,
                        M.RESTORE,
                        actor,
                        "the rights holder did not act on the counter-notice in time",
                        now,
                    )
                    counts["restored"] += 1
            # strikes whose case was overturned on appeal are taken back
            from riskctl.models import Strike

            overturned = (
                conn.execute(
                    select(Case.id)
                    .join(Strike, Strike.ref == literal("case:") + Case.id)
                    .where(Case.status == CaseStatus.APPEAL_UPHELD.value, Strike.reversed_at.is_(None))
                    .distinct()
                )
                .scalars()
                .all()
            )
            appeal_reversals(conn, overturned, actor=actor, now=now)
            # confirmed abuse by a shop (listing cases not from complaints) is a strike too
            struck = select(Strike.id).where(Strike.ref == literal("case:") + Case.id).exists()
            from_complaint = select(Complaint.id).where(Complaint.case_id == Case.id).exists()
            abuse = conn.execute(
                select(Case.id, Case.subject_id).where(
                    Case.kind == "listing",
                    Case.status.in_([CaseStatus.RESOLVED.value, CaseStatus.APPEAL_REJECTED.value]),
                    Case.resolution == Resolution.CONFIRMED_ABUSE.value,
                    ~struck,
                    ~from_complaint,
                )
            ).all()
            for case in abuse:
                strikes.add(conn, case.subject_id, "confirmed_abuse", f"case:{case.id}", now=now)
                strikes.evaluate(
                    conn,
                    case.subject_id,
                    self.ladder,
                    actor=actor,
                    now=now,
                    case_id=case.id,
                    why="confirmed abuse",
                )
            counts["strikes"] = len(abuse)
            counts["reinstated"] = len(strikes.tick(conn, self.ladder, actor=actor, now=now))
        self.reputation.mirror(changed)
        return counts


def appeal_reversals(conn: Connection, case_ids: Iterable[str], *, actor: str, now: datetime) -> list[str]:
    """Strikes behind upheld appeals are taken back; returns the shops to re-evaluate."""
    shops: set[str] = set()
    for cid in case_ids:
        shops.update(strikes.reverse(conn, f"case:{cid}", actor=actor, now=now))
    return sorted(shops)
