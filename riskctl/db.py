"""Engine and sessions. SQLite gets WAL, a busy timeout and foreign keys on every connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from riskctl.instruments import DB_COMMITS


def make_engine(url: str, *, busy_timeout_ms: int = 5000, synchronous: str = "NORMAL") -> Engine:
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
            pool_size=8,
            max_overflow=8,
            json_serializer=_dumps,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (what the fault tests do);
            # only an OS crash or power loss can drop the last commits. FULL fsyncs each.
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return _count_commits(engine)
    return _count_commits(
        create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_serializer=_dumps)
    )


def _dumps(value: Any) -> str:
    # orjson: the features and signals of a decision are serialised on every check.
    return orjson.dumps(value).decode()


def _count_commits(engine: Engine) -> Engine:
    @event.listens_for(engine, "commit")
    def _commit(_conn: Any) -> None:
        DB_COMMITS.inc()

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
