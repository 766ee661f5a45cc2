"""Storing one decision: the event, the decision, its hits and its case, in one transaction.

Two writers with one contract:

- :class:`CoreWriter` states the writes with SQLAlchemy Core. It is the reference.
- :class:`DriverWriter` runs the same statements, compiled once by SQLAlchemy for the
  engine's dialect, straight on the DBAPI cursor, with each value passed through the
  column type's own bind processor. This is the check path's writer: per statement it saves
  SQLAlchemy's per-execution work (statement construction, cache lookup, execution
  context), which costs more than the insert itself (``bench/bench_persist.py`` measures
  both in one run; ``tests/test_persist.py`` holds the two to identical rows).

On SQLite the driver writer also shortens the time it holds, and waits for, the one write
lock that every gunicorn worker shares. The values are converted (JSON encoded, dates
formatted) before the transaction opens. The lock is taken up front with ``BEGIN IMMEDIATE``,
retried every 0.1 ms while another process holds it, instead of by SQLite's busy handler,
whose back-off sleeps 1, 2, 5, 10, 15, 20, 25... ms between attempts even when the holder
is done within a millisecond: with two workers under load those sleeps were the check API's
whole p99.9 (30-330 ms stalls, none with one worker).

On SQLite it writes on connections of its own (opened by the engine's pool with the
engine's pragmas, then detached from it, one per writing thread): in autocommit mode, with a
busy timeout of 0 set once, it issues ``BEGIN IMMEDIATE`` and ``COMMIT`` itself. That skips
the pool checkout, SQLAlchemy's transaction object and two ``PRAGMA busy_timeout`` round
trips per write: 309 against 177 µs per write in one A/B run of the bench writes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ClauseElement

from riskctl.cases import OPEN_STATUSES, Routing, open_or_join, priority, subject_reputation
from riskctl.casestate import CaseStatus
from riskctl.db import BUSY_TIMEOUT_INFO
from riskctl.ids import new_id
from riskctl.instruments import DB_COMMITS
from riskctl.models import Case, CaseDecision, Decision, DecisionHit, EventRecord, utcnow


@dataclass(frozen=True, slots=True)
class Write:
    """Everything one check stores."""

    event_id: str
    kind: str
    occurred_at: datetime
    body_hash: str
    subject_id: str | None
    shop_id: str | None
    amount: float | None
    payload: dict[str, Any]
    decision_id: str
    outcome: str
    flagged: bool  # review or block: opens or joins the subject's case
    score: float
    degraded: bool
    rulepack_version: str
    detector_versions: dict[str, str]
    features: dict[str, Any]
    signals: list[dict[str, Any]]
    reasons: list[dict[str, Any]]
    hits: list[dict[str, Any]]  # code, source, mode, score
    response_body: str
    latency_us: int
    title: str


class CoreWriter:
    """The reference: SQLAlchemy Core statements."""

    def __init__(self, engine: Engine, routing: Routing) -> None:
        self.engine = engine
        self.routing = routing

    def write(self, w: Write, now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.engine.begin() as conn:  # one transaction, one commit
            event_pk = conn.execute(insert(EventRecord), _event_row(w, now)).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(insert(Decision), _decision_row(w, event_pk, now))
            if w.hits:
                conn.execute(insert(DecisionHit), _hit_rows(w, now))
            if w.flagged and w.subject_id is not None:
                open_or_join(
                    conn,
                    self.routing,
                    decision_id=w.decision_id,
                    kind=w.kind,
                    subject_id=w.subject_id,
                    shop_id=w.shop_id,
                    score=w.score,
                    money=w.amount,
                    title=w.title,
                    reasons=w.reasons,
                    now=now,
                    reputation=subject_reputation(w.kind, w.features),
                )


class _Prepared:
    """One statement compiled once for a dialect, executed on a DBAPI cursor."""

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        dialect = engine.dialect
        compiled: Any = statement.compile(dialect=dialect)  # an SQLCompiler: bind names, positions
        self.sql = compiled.string
        self.positional = dialect.positional
        by_name = {name: bind for bind, name in compiled.bind_names.items()}  # as rendered in the SQL
        self.order: list[str] = list(compiled.positiontup or []) if self.positional else list(by_name)
        self.defaults: dict[str, Any] = dict(compiled.params)  # values fixed in the statement
        self.processors: dict[str, Any] = {}
        for name in self.order:
            proc = by_name[name].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                self.processors[name] = proc

    def params(self, values: dict[str, Any]) -> Any:
        procs = self.processors
        out = {}
        for name in self.order:
            v = values[name] if name in values else self.defaults[name]
            p = procs.get(name)
            out[name] = p(v) if p is not None and v is not None else v
        if self.positional:
            return tuple(out[name] for name in self.order)
        return out

    def late(self, params: Any, name: str, value: Any) -> Any:
        """``params`` with ``name`` set to ``value`` (a value known only inside the transaction)."""
        p = self.processors.get(name)
        value = p(value) if p is not None and value is not None else value
        if self.positional:
            i = self.order.index(name)
            return (*params[:i], value, *params[i + 1 :])
        return {**params, name: value}


def _insert(table: Table, columns: Sequence[str], engine: Engine, returning: str | None = None) -> _Prepared:
    stmt = insert(table).values({name: bindparam(name, type_=table.c[name].type) for name in columns})
    if returning is not None:
        stmt = stmt.returning(table.c[returning])
    return _Prepared(stmt, engine)


_EVENT_COLUMNS = (
    "event_id",
    "kind",
    "occurred_at",
    "received_at",
    "body_hash",
    "subject_id",
    "shop_id",
    "amount",
    "payload",
)
_DECISION_COLUMNS = (
    "id",
    "event_pk",
    "event_id",
    "kind",
    "outcome",
    "score",
    "degraded",
    "rulepack_version",
    "detector_versions",
    "features",
    "signals",
    "reasons",
    "response_body",
    "latency_us",
    "created_at",
)
_HIT_COLUMNS = ("decision_id", "code", "source", "mode", "score", "created_at")
_CASE_COLUMNS = (
    "id",
    "queue",
    "kind",
    "subject_id",
    "shop_id",
    "status",
    "priority",
    "sla_due_at",
    "decision_count",
    "money_at_stake",
    "max_score",
    "source",
    "title",
    "evidence",
    "opened_at",
    "updated_at",
)


class _WriterConnections:
    """The SQLite connections of one :class:`DriverWriter`, per process: one per thread that
    writes at once (a gunicorn sync worker needs one). Each is opened by the engine's pool, so
    it has the engine's pragmas, then detached from the pool and kept in autocommit mode
    with a busy timeout of 0: the writer begins, polls for the lock and commits itself."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.busy_timeout_ms = 5000
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def take(self) -> Any:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's connections are not ours to use
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        fairy = self.engine.raw_connection()
        self.busy_timeout_ms = int(fairy.info.get(BUSY_TIMEOUT_INFO, self.busy_timeout_ms))
        conn: Any = fairy.driver_connection
        fairy.detach()  # the pool forgets it: the writer closes it itself
        conn.isolation_level = None  # autocommit: BEGIN IMMEDIATE / COMMIT are the writer's
        conn.execute("PRAGMA busy_timeout=0")
        return conn

    def give(self, conn: Any, healthy: bool) -> None:
        if healthy:
            with self._lock:
                if self._pid == os.getpid() and not self._closed:
                    self._idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for conn in idle:
            conn.close()


class DriverWriter:
    """The check path's writer: the same rows as :class:`CoreWriter`, on the DBAPI cursor."""

    def __init__(self, engine: Engine, routing: Routing) -> None:
        self.engine = engine
        self.routing = routing
        self._sqlite = engine.dialect.name == "sqlite"
        self.integrity_errors: tuple[type[BaseException], ...] = (
            IntegrityError,
            engine.dialect.loaded_dbapi.IntegrityError,
        )
        self._returning = bool(engine.dialect.insert_returning)
        if self._sqlite:
            self._connections = _WriterConnections(engine)
        events: Table = EventRecord.__table__  # type: ignore[assignment]
        self._event = _insert(events, _EVENT_COLUMNS, engine, "id" if self._returning else None)
        self._decision = _insert(Decision.__table__, _DECISION_COLUMNS, engine)  # type: ignore[arg-type]
        self._hit = _insert(DecisionHit.__table__, _HIT_COLUMNS, engine)  # type: ignore[arg-type]
        self._case = _insert(Case.__table__, _CASE_COLUMNS, engine)  # type: ignore[arg-type]
        self._case_decision = _insert(
            CaseDecision.__table__,  # type: ignore[arg-type]
            ("case_id", "decision_id", "added_at"),
            engine,
        )
        self._open_case = _Prepared(
            select(Case.id, Case.priority, Case.max_score)
            .where(
                Case.queue == bindparam("queue", type_=Case.queue.type),
                Case.subject_id == bindparam("subject_id", type_=Case.subject_id.type),
                or_(*(Case.status == bindparam(f"status_{s}", s) for s in OPEN_STATUSES)),
            )
            .order_by(Case.opened_at)
            .limit(1),
            engine,
        )
        self._join_case = _Prepared(
            update(Case)
            .where(Case.id == bindparam("case_id", type_=Case.id.type))
            .values(
                decision_count=Case.decision_count + bindparam("one", 1),
                money_at_stake=Case.money_at_stake + bindparam("money", type_=Case.money_at_stake.type),
                priority=bindparam("new_priority", type_=Case.priority.type),
                max_score=bindparam("new_max_score", type_=Case.max_score.type),
                updated_at=bindparam("now", type_=Case.updated_at.type),
            ),
            engine,
        )

    def write(self, w: Write, now: datetime | None = None) -> None:
        now = now or utcnow()
        # every value converted before the transaction: the lock is held for the writes only
        ev, d, h = self._event, self._decision, self._hit
        event_params = ev.params(_event_row(w, now))
        decision_params = d.params(_decision_row(w, 0, now))  # event_pk: set once known
        hit_params = [h.params(row) for row in _hit_rows(w, now)]
        if self._sqlite:
            self._write_sqlite(w, now, event_params, decision_params, hit_params)
            return
        with self.engine.begin() as conn:  # one transaction, one commit
            cur = conn.connection.cursor()
            try:
                self._statements(cur, w, now, event_params, decision_params, hit_params)
            finally:
                cur.close()

    def _statements(
        self, cur: Any, w: Write, now: datetime, event_params: Any, decision_params: Any, hit_params: Any
    ) -> None:
        d, h = self._decision, self._hit
        cur.execute(self._event.sql, event_params)
        event_pk = self._event_pk(cur)
        cur.execute(d.sql, d.late(decision_params, "event_pk", event_pk))
        if hit_params:
            cur.executemany(h.sql, hit_params)
        if w.flagged and w.subject_id is not None:
            self._open_or_join(cur, w, now)

    def _write_sqlite(
        self, w: Write, now: datetime, event_params: Any, decision_params: Any, hit_params: Any
    ) -> None:
        """One transaction on a connection of the writer's own: no pool checkout, no
        SQLAlchemy transaction object, and a busy timeout of 0 set once (the lock is polled)."""
        conn = self._connections.take()
        cur = conn.cursor()
        try:
            self._begin_immediate(cur, self._connections.busy_timeout_ms)
            try:
                self._statements(cur, w, now, event_params, decision_params, hit_params)
                cur.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
        finally:
            cur.close()
            # kept for the next write unless a failed rollback left a transaction open
            self._connections.give(conn, healthy=not conn.in_transaction)
        DB_COMMITS.inc()  # not through SQLAlchemy: its commit event does not see this one

    def close(self) -> None:
        """Close the writer's own SQLite connections (those idle; one in use closes when given back)."""
        if self._sqlite:
            self._connections.close()

    def _event_pk(self, cur: Any) -> Any:
        if not self._returning:
            return cur.lastrowid
        row = cur.fetchone()
        if row is None:  # INSERT ... RETURNING always returns the row it inserted
            raise RuntimeError("the event insert returned no key")
        return row[0]

    def _begin_immediate(self, cur: Any, busy_timeout_ms: int) -> None:
        """Take SQLite's write lock now, polling every 0.1 ms (then 1 ms) for as long as the
        engine's busy timeout allows. The connection's own busy timeout is 0: SQLite's
        handler never sleeps in its place."""
        operational_error = self.engine.dialect.loaded_dbapi.OperationalError
        deadline = time.monotonic() + busy_timeout_ms / 1000
        tries = 0
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except operational_error as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
            tries += 1
            time.sleep(0.0001 if tries < 200 else 0.001)

    def _open_or_join(self, cur: Any, w: Write, now: datetime) -> None:
        """:func:`riskctl.cases.open_or_join`, on the cursor."""
        queue = self.routing.queue(w.kind)
        p = priority(w.score, w.amount, subject_reputation(w.kind, w.features))
        sel = self._open_case
        cur.execute(sel.sql, sel.params({"queue": queue, "subject_id": w.subject_id}))
        existing = cur.fetchone()
        if existing is not None:
            case_id, old_priority, old_max = existing
            j = self._join_case
            cur.execute(
                j.sql,
                j.params(
                    {
                        "case_id": case_id,
                        "money": w.amount or 0.0,
                        "new_priority": max(old_priority, p),
                        "new_max_score": max(old_max, w.score),
                        "now": now,
                    }
                ),
            )
        else:
            case_id = new_id("case")
            c = self._case
            cur.execute(
                c.sql,
                c.params(
                    {
                        "id": case_id,
                        "queue": queue,
                        "kind": w.kind,
                        "subject_id": w.subject_id,
                        "shop_id": w.shop_id,
                        "status": CaseStatus.OPEN.value,
                        "priority": p,
                        "sla_due_at": self.routing.due(queue, now),
                        "decision_count": 1,
                        "money_at_stake": w.amount or 0.0,
                        "max_score": w.score,
                        "source": "decision",
                        "title": w.title[:300],
                        "evidence": {"first_reasons": w.reasons[:5]},
                        "opened_at": now,
                        "updated_at": now,
                    }
                ),
            )
        cd = self._case_decision
        cur.execute(cd.sql, cd.params({"case_id": case_id, "decision_id": w.decision_id, "added_at": now}))


def _event_row(w: Write, now: datetime) -> dict[str, Any]:
    return {
        "event_id": w.event_id,
        "kind": w.kind,
        "occurred_at": w.occurred_at,
        "received_at": now,
        "body_hash": w.body_hash,
        "subject_id": w.subject_id,
        "shop_id": w.shop_id,
        "amount": w.amount,
        "payload": w.payload,
    }


def _decision_row(w: Write, event_pk: int, now: datetime) -> dict[str, Any]:
    return {
        "id": w.decision_id,
        "event_pk": event_pk,
        "event_id": w.event_id,
        "kind": w.kind,
        "outcome": w.outcome,
        "score": w.score,
        "degraded": w.degraded,
        "rulepack_version": w.rulepack_version,
        "detector_versions": w.detector_versions,
        "features": w.features,
        "signals": w.signals,
        "reasons": w.reasons,
        "response_body": w.response_body,
        "latency_us": w.latency_us,
        "created_at": now,
    }


def _hit_rows(w: Write, now: datetime) -> Sequence[dict[str, Any]]:
    return [{"decision_id": w.decision_id, **hit, "created_at": now} for hit in w.hits]
