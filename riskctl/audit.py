"""The audit log: append-only and hash-chained.

Each row stores the hash of the row before it and its own hash over a canonical JSON of
its fields (seq, time, actor, action, subject, detail, prev_hash). Editing a row breaks
its own hash; deleting or reordering rows breaks the chain (a row's ``prev_hash`` no
longer names its predecessor, or the sequence has a gap). ``riskctl audit verify`` walks
the chain and names the first bad row.

Appends take the tail under the caller's transaction, serialised by SQLite's write lock or
a PostgreSQL transaction-scoped advisory lock, so concurrent appenders cannot fork the
chain (the unique hash and the ``seq`` primary key would refuse a fork anyway).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, text

from riskctl.models import AuditEntry, utcnow

GENESIS = "0" * 64


def canonical(
    seq: int, at: datetime, actor: str, action: str, subject: str, detail: dict[str, Any], prev_hash: str
) -> bytes:
    return orjson.dumps(
        {
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject": subject,
            "detail": detail,
            "prev_hash": prev_hash,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def row_hash(*fields: Any) -> str:
    return hashlib.sha256(canonical(*fields)).hexdigest()


def append(
    conn: Connection, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None
) -> str:
    """Append one row inside the caller's transaction; returns its hash."""
    detail = orjson.loads(orjson.dumps(detail or {}))  # what is stored is what is hashed
    if conn.dialect.name == "sqlite":
        # Take SQLite's write lock before reading the tail, so two appenders cannot fork it.
        conn.execute(text("UPDATE audit_log SET seq = seq WHERE 0"))
    elif conn.dialect.name == "postgresql":
        # One appender at a time (until this transaction ends): the tail read below is then current.
        conn.execute(text("SELECT pg_advisory_xact_lock(7260114)"))
    tail = conn.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev = (tail.seq + 1, tail.hash) if tail else (1, GENESIS)
    at = utcnow()
    actor, action, subject = actor[:100], action[:64], subject[:200]
    digest = row_hash(seq, at, actor, action, subject, detail, prev)
    conn.execute(
        insert(AuditEntry),
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "subject": subject,
            "detail": detail,
            "prev_hash": prev,
            "hash": digest,
        },
    )
    return digest


@dataclass
class VerifyReport:
    rows: int = 0
    ok: bool = True
    first_bad_seq: int | None = None
    problem: str = ""
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.ok:
            return f"audit log intact: {self.rows} rows"
        return f"audit log broken at row {self.first_bad_seq}: {self.problem}"


def verify(engine: Engine) -> VerifyReport:
    """Walk the chain from the first row; report the first edited, missing or moved row."""
    report = VerifyReport()
    expected_seq, prev = 1, GENESIS
    with engine.connect() as conn:
        for row in conn.execute(select(AuditEntry).order_by(AuditEntry.seq)).mappings():
            report.rows += 1
            problem = ""
            if row["seq"] != expected_seq:
                problem = f"row {expected_seq} is missing (next row is {row['seq']})"
            elif row["prev_hash"] != prev:
                problem = "its prev_hash does not match the row before it (deleted or reordered)"
            elif row["hash"] != row_hash(
                row["seq"],
                row["at"],
                row["actor"],
                row["action"],
                row["subject"],
                row["detail"],
                row["prev_hash"],
            ):
                problem = "its content does not match its hash (edited)"
            if problem:
                report.problems.append(f"row {row['seq']}: {problem}")
                if report.ok:
                    report.ok, report.first_bad_seq, report.problem = False, row["seq"], problem
            expected_seq, prev = row["seq"] + 1, row["hash"]
    return report


def recent(engine: Engine, subject: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        q = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
        if subject is not None:
            q = q.where(AuditEntry.subject == subject)
        return [dict(r) for r in conn.execute(q).mappings()]
