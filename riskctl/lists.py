"""Allow and block lists: the database is the record, Redis answers on the check path.

Each (list, entity type) is a Redis sorted set of keyed-hash tokens scored by expiry time
(ms; ``+inf`` for none), so a membership read is one ``ZSCORE`` inside the check's single
round trip and expired entries stop matching without a sweeper. Allow-list hits become
``list`` signals that short-circuit the decision to ``allow``; block-list membership is a
feature (``list.block.device``...) that rules turn into outcomes, with their own reasons.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from riskctl import audit
from riskctl.decisions import Outcome, Signal, SignalStatus, Source
from riskctl.errors import Conflict, NotFound, ValidationFailed
from riskctl.events import BaseEvent, CouponRedemptionEvent, ListingEvent, OrderEvent, ReviewEvent
from riskctl.features import FeatureSpec, FeatureType
from riskctl.models import ListEntry, utcnow
from riskctl.pseudonym import Pseudonymizer

log = logging.getLogger(__name__)

SYNC_MARK = b"rk:l:synced"
LIST_NAMES = ("allow", "block")
ENTITY_TYPES = ("account", "shop", "device", "ip", "payment", "address", "brand")
# Values of these types are personal data: stored only as keyed hashes, shown masked.
PRIVATE_TYPES = frozenset({"device", "ip", "payment", "address"})


def list_key(list_name: str, entity_type: str) -> bytes:
    return f"rk:l:{list_name}:{entity_type}".encode()


def feature_name(list_name: str, entity_type: str) -> str:
    return f"list.{list_name}.{entity_type}"


def schema() -> list[FeatureSpec]:
    return [
        FeatureSpec(feature_name(n, t), FeatureType.BOOL, f"the event's {t} is on the {n} list")
        for n in LIST_NAMES
        for t in ENTITY_TYPES
    ]


def normalise(entity_type: str, value: str) -> str:
    value = value.strip()
    return value.casefold() if entity_type == "brand" else value


def mask(entity_type: str, value: str) -> str:
    if entity_type not in PRIVATE_TYPES:
        return value[:200]
    return f"{entity_type} …{value[-2:]}" if len(value) > 6 else f"{entity_type} (hidden)"


def event_entities(event: BaseEvent) -> dict[str, str | None]:
    """The list-checkable entities of an event (accounts under one name, whatever the kind)."""
    out: dict[str, str | None] = {"device": event.device_id, "ip": event.ip}
    if isinstance(event, OrderEvent):
        out |= {
            "account": event.buyer_id,
            "shop": event.shop_id,
            "payment": event.payment.fingerprint,
            "address": event.shipping_address_hash,
        }
    elif isinstance(event, ReviewEvent):
        out |= {"account": event.reviewer_id, "shop": event.shop_id}
    elif isinstance(event, CouponRedemptionEvent):
        out |= {
            "account": event.account_id,
            "payment": event.payment_fingerprint,
            "address": event.shipping_address_hash,
        }
    elif isinstance(event, ListingEvent):
        out |= {"account": event.shop_id, "shop": event.shop_id, "brand": event.brand}
    return out


@dataclass(frozen=True, slots=True)
class Lookup:
    list_name: str
    entity_type: str
    key: bytes
    token: str


class ListStore:
    def __init__(self, sessions: sessionmaker[Session], client: redis.Redis, pseudo: Pseudonymizer) -> None:
        self.sessions = sessions
        self.redis = client
        self.pseudo = pseudo

    def token(self, entity_type: str, value: str) -> str:
        return self.pseudo.token(f"list:{entity_type}", normalise(entity_type, value))

    # -- check path ---------------------------------------------------------------------
    def lookups(self, event: BaseEvent) -> list[Lookup]:
        out = []
        for etype, raw in event_entities(event).items():
            if not raw:
                continue
            tok = self.token(etype, raw)
            for name in LIST_NAMES:
                out.append(Lookup(name, etype, list_key(name, etype), tok))
        return out

    @staticmethod
    def features(lookups: list[Lookup], found: tuple[bool, ...] | None) -> dict[str, Any]:
        """List features; ``found=None`` (Redis unavailable) makes them all unavailable."""
        if found is None:
            return {feature_name(n, t): None for n in LIST_NAMES for t in ENTITY_TYPES}
        out: dict[str, Any] = {feature_name(n, t): False for n in LIST_NAMES for t in ENTITY_TYPES}
        for lookup, hit in zip(lookups, found, strict=True):
            if hit:
                out[feature_name(lookup.list_name, lookup.entity_type)] = True
        return out

    @staticmethod
    def signals(features: dict[str, Any]) -> list[Signal]:
        return [
            Signal(
                Source.LIST,
                f"allowlist.{etype}",
                SignalStatus.HIT,
                f"{etype} is on the allow list",
                forced=Outcome.ALLOW,
            )
            for etype in ENTITY_TYPES
            if features.get(feature_name("allow", etype))
        ]

    # -- management -----------------------------------------------------------------------
    def add(
        self,
        list_name: str,
        entity_type: str,
        value: str,
        *,
        reason: str,
        actor: str,
        expires_at: datetime | None = None,
        source: str = "manual",
    ) -> ListEntry:
        if list_name not in LIST_NAMES:
            raise ValidationFailed(f"list must be one of {', '.join(LIST_NAMES)}")
        if entity_type not in ENTITY_TYPES:
            raise ValidationFailed(f"entity_type must be one of {', '.join(ENTITY_TYPES)}")
        if not value.strip():
            raise ValidationFailed("value must not be empty")
        if expires_at is not None and expires_at <= utcnow():
            raise ValidationFailed("expires_at must be in the future")
        entry = ListEntry(
            list_name=list_name,
            entity_type=entity_type,
            token=self.token(entity_type, value),
            label=mask(entity_type, normalise(entity_type, value)),
            reason=reason[:500],
            source=source[:32],
            created_by=actor[:100],
            expires_at=expires_at,
        )
        try:
            with self.sessions.begin() as session:
                session.add(entry)
                session.flush()
                audit.append(
                    session.connection(),
                    actor,
                    "list.add",
                    f"list:{list_name}:{entity_type}",
                    {"entry_id": entry.id, "label": entry.label, "reason": entry.reason, "source": entry.source},
                )
        except IntegrityError:
            raise Conflict(f"this {entity_type} is already on the {list_name} list") from None
        self._publish(entry)
        return entry

    def remove(self, entry_id: int, *, actor: str = "-") -> ListEntry:
        with self.sessions.begin() as session:
            entry = session.get(ListEntry, entry_id)
            if entry is None:
                raise NotFound(f"no list entry {entry_id}")
            session.execute(delete(ListEntry).where(ListEntry.id == entry_id))
            audit.append(
                session.connection(),
                actor,
                "list.remove",
                f"list:{entry.list_name}:{entry.entity_type}",
                {"entry_id": entry_id, "label": entry.label},
            )
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.zrem(list_key(entry.list_name, entry.entity_type), entry.token)
            pipe.set(SYNC_MARK, self._fingerprint())
            pipe.execute()
        except redis.RedisError:
            log.warning("list entry %s removed but still in redis until the next sync", entry_id)
        return entry

    def entries(
        self, list_name: str | None = None, entity_type: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[ListEntry], int]:
        query = select(ListEntry)
        count = select(func.count()).select_from(ListEntry)
        if list_name:
            query = query.where(ListEntry.list_name == list_name)
            count = count.where(ListEntry.list_name == list_name)
        if entity_type:
            query = query.where(ListEntry.entity_type == entity_type)
            count = count.where(ListEntry.entity_type == entity_type)
        with self.sessions() as session:
            rows = list(session.scalars(query.order_by(ListEntry.id).limit(limit).offset(offset)))
            total = session.scalar(count) or 0
        return rows, total

    def contains(self, list_name: str, entity_type: str, value: str) -> bool:
        with self.sessions() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(ListEntry)
                    .where(
                        ListEntry.list_name == list_name,
                        ListEntry.entity_type == entity_type,
                        ListEntry.token == self.token(entity_type, value),
                    )
                )
                or 0
            ) > 0

    def sync(self) -> int:
        """Rebuild every Redis list set from the database (after a Redis loss, or at start)."""
        with self.sessions() as session:
            rows = list(session.scalars(select(ListEntry)))
        pipe = self.redis.pipeline(transaction=True)
        for name in LIST_NAMES:
            for etype in ENTITY_TYPES:
                pipe.delete(list_key(name, etype))
        for row in rows:
            pipe.zadd(list_key(row.list_name, row.entity_type), {row.token: _score(row.expires_at)})
        pipe.set(SYNC_MARK, self._fingerprint())
        pipe.execute()
        return len(rows)

    def sync_if_needed(self) -> bool:
        """Sync when Redis's view differs from the database (cheap: two aggregates)."""
        if self.redis.get(SYNC_MARK) == self._fingerprint():
            return False
        self.sync()
        return True

    def _fingerprint(self) -> bytes:
        with self.sessions() as session:
            count, top = session.execute(select(func.count(), func.max(ListEntry.id))).one()
        return f"{count}:{top or 0}".encode()

    def _publish(self, entry: ListEntry) -> None:
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.zadd(list_key(entry.list_name, entry.entity_type), {entry.token: _score(entry.expires_at)})
            pipe.set(SYNC_MARK, self._fingerprint())
            pipe.execute()
        except redis.RedisError:
            # The entry is recorded; Redis catches up when a start-up sync sees the
            # database's fingerprint differ from the one Redis last saw.
            log.warning("list entry %s saved but not yet in redis", entry.id)


def _score(expires_at: datetime | None) -> float:
    return math.inf if expires_at is None else expires_at.timestamp() * 1000
