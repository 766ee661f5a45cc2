"""The enforcement outbox: actions written in the transaction that decided them, delivered
at least once to the marketplace as HMAC-signed webhooks.

Delivery contract (what a receiver implements):

- ``POST <RISKCTL_WEBHOOK_URL>`` with a JSON body ``{id, type, target, case_id, reverses,
  payload, statement, created_at}``; the body of one action is byte-identical on every
  redelivery.
- ``Idempotency-Key: <action id>``: the same on every redelivery; a receiver that has seen
  it answers 2xx and does nothing.
- ``X-Riskctl-Timestamp: <unix seconds>`` and ``X-Riskctl-Signature: v1=<hex>`` where hex is
  HMAC-SHA256(secret, ``<timestamp>.<body>``). Reject old timestamps to stop replays.
- Any 2xx is delivered. Anything else (or no answer) is retried with exponential backoff and
  full jitter until ``RISKCTL_OUTBOX_MAX_ATTEMPTS``, then the action is ``dead``.

A worker leases a batch (``claimed_until``) before sending; a worker killed mid-delivery
leaves its lease to lapse, and the next worker sends the same action again with the same
idempotency key. That is why delivery is at-least-once and receivers must deduplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import requests
from sqlalchemy import Connection, Engine, and_, exists, insert, or_, select, update
from sqlalchemy.orm import aliased

from riskctl import audit
from riskctl.ids import new_id
from riskctl.models import OutboxAction, Statement, utcnow

log = logging.getLogger(__name__)

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
SIGNATURE_HEADER = "X-Riskctl-Signature"
TIMESTAMP_HEADER = "X-Riskctl-Timestamp"


def enqueue(
    conn: Connection,
    *,
    case_id: str,
    type: str,
    target: str,
    actor: str,
    payload: dict[str, Any] | None = None,
    statement_id: str | None = None,
    reverses: str | None = None,
    now: datetime | None = None,
) -> str:
    """Write one action in the caller's transaction (with its audit row); returns its id."""
    now = now or utcnow()
    action_id = new_id("act")
    conn.execute(
        insert(OutboxAction),
        {
            "id": action_id,
            "case_id": case_id,
            "type": type,
            "target": target[:200],
            "payload": payload or {},
            "statement_id": statement_id,
            "reverses": reverses,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_by": actor[:100],
            "created_at": now,
        },
    )
    audit.append(
        conn,
        actor,
        "action.enqueue",
        f"case:{case_id}",
        {"action_id": action_id, "type": type, "target": target, "reverses": reverses},
    )
    return action_id


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def verify_signature(
    secret: str, headers: Any, body: bytes, *, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """What a receiver runs: a valid signature over a recent timestamp."""
    try:
        ts = int(headers.get(TIMESTAMP_HEADER, ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), headers.get(SIGNATURE_HEADER, ""))


def backoff(
    attempts: int, *, base_s: float = 2.0, cap_s: float = 3600.0, rng: random.Random | None = None
) -> float:
    """Seconds before attempt ``attempts + 1``: exponential, capped, with jitter in [50%, 100%]."""
    delay = min(cap_s, base_s * 2 ** max(0, attempts - 1))
    return delay * (0.5 + 0.5 * (rng or random).random())


@dataclass
class Deliverer:
    url: str
    secret: str
    timeout_s: float = 5.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        self.http = requests.Session()

    @classmethod
    def from_settings(cls, settings: Any) -> Deliverer:
        return cls(
            settings.webhook_url,
            settings.webhook_secret,
            settings.webhook_timeout_s,
            settings.outbox_max_attempts,
        )

    def send(self, action_id: str, body: bytes) -> str | None:
        """None when delivered; otherwise what went wrong."""
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": action_id,
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(self.secret, ts, body),
            "User-Agent": "riskctl-outbox/1",
        }
        try:
            r = self.http.post(
                self.url, data=body, headers=headers, timeout=self.timeout_s, allow_redirects=False
            )
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= r.status_code < 300:
            return None
        return f"HTTP {r.status_code}: {r.text[:200]}"

    def close(self) -> None:
        self.http.close()


def body_of(conn: Connection, action: OutboxAction | Any) -> bytes:
    statement = None
    if action.statement_id:
        statement = conn.execute(
            select(Statement.body).where(Statement.id == action.statement_id)
        ).scalar_one()
    return orjson.dumps(
        {
            "id": action.id,
            "type": action.type,
            "target": action.target,
            "case_id": action.case_id,
            "reverses": action.reverses,
            "payload": action.payload,
            "statement": statement,
            "created_at": action.created_at.isoformat(),
        },
        option=orjson.OPT_SORT_KEYS,
    )


def lease(engine: Engine, *, batch: int, lease_s: float, now: datetime) -> list[str]:
    """Take up to ``batch`` due actions for ``lease_s`` seconds; ids this worker now holds."""
    held = []
    until = now + timedelta(seconds=lease_s)
    original = aliased(OutboxAction)
    due = and_(
        OutboxAction.status == PENDING,
        OutboxAction.next_attempt_at <= now,
        or_(OutboxAction.claimed_until.is_(None), OutboxAction.claimed_until < now),
        # A reversal waits until the action it undoes has been delivered (or given up on),
        # so the marketplace never sees "reinstate" before "suspend".
        ~exists().where(original.id == OutboxAction.reverses, original.status == PENDING),
    )
    with engine.begin() as conn:
        ids = conn.execute(
            select(OutboxAction.id).where(due).order_by(OutboxAction.next_attempt_at).limit(batch)
        ).scalars()
        for action_id in list(ids):
            # Conditional update: of two workers racing for one row, exactly one wins it.
            won = conn.execute(
                update(OutboxAction)
                .where(OutboxAction.id == action_id, due)
                .values(claimed_until=until, attempts=OutboxAction.attempts + 1)
            ).rowcount
            if won:
                held.append(action_id)
    return held


def deliver_one(
    engine: Engine, deliverer: Deliverer, action_id: str, *, clock: Callable[[], datetime] = utcnow
) -> str:
    """Send one leased action and record the outcome; returns delivered / pending / dead."""
    with engine.connect() as conn:
        action = conn.execute(select(OutboxAction).where(OutboxAction.id == action_id)).first()
        assert action is not None
        body = body_of(conn, action)
    error = deliverer.send(action.id, body)
    now = clock()
    with engine.begin() as conn:
        if error is None:
            status, values = (
                DELIVERED,
                {"status": DELIVERED, "delivered_at": now, "claimed_until": None, "last_error": None},
            )
        elif action.attempts >= deliverer.max_attempts:
            status, values = DEAD, {"status": DEAD, "claimed_until": None, "last_error": error}
        else:
            status = PENDING
            values = {
                "next_attempt_at": now + timedelta(seconds=backoff(action.attempts)),
                "claimed_until": None,
                "last_error": error,
            }
        conn.execute(update(OutboxAction).where(OutboxAction.id == action_id).values(**values))
        if status != PENDING:
            audit.append(
                conn,
                "outbox",
                f"action.{status}",
                f"case:{action.case_id}",
                {"action_id": action.id, "attempts": action.attempts, "error": error},
            )
    if error is not None:
        log.warning("outbox: %s %s attempt %d failed: %s", action.type, action.id, action.attempts, error)
    return status


def work(
    engine: Engine,
    deliverer: Deliverer,
    *,
    once: bool = False,
    batch: int = 20,
    lease_s: float | None = None,
    poll_s: float = 1.0,
    clock: Callable[[], datetime] = utcnow,
    stop: threading.Event | None = None,
) -> dict[str, int]:
    """Deliver until stopped (SIGTERM/SIGINT), or with ``once`` until nothing is due."""
    stop = stop or threading.Event()
    lease_s = lease_s if lease_s is not None else max(60.0, 3 * deliverer.timeout_s)
    stats = {DELIVERED: 0, "retried": 0, DEAD: 0}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        held = lease(engine, batch=batch, lease_s=lease_s, now=clock())
        for action_id in held:
            outcome = deliver_one(engine, deliverer, action_id, clock=clock)
            stats["retried" if outcome == PENDING else outcome] += 1
        if not held:
            if once:
                break
            stop.wait(poll_s)
    return stats


def pending_count(engine: Engine) -> int:
    from sqlalchemy import func

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(OutboxAction.status == PENDING)).scalar_one())
