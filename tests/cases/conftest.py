"""A migrated database per test and a way to put cases in it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from riskctl.db import make_engine, make_sessionmaker
from riskctl.ids import new_id
from riskctl.migrate import upgrade
from riskctl.models import Case, utcnow
from tests.conftest import fresh_database_url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (migrating per test costs ~0.3 s)."""
    path = tmp_path_factory.mktemp("cases-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture
def engine(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Engine]:
    url = fresh_database_url(tmp_path)
    if url:
        engine = make_engine(url)
        upgrade(engine)
    else:
        db = tmp_path / "cases.db"
        shutil.copyfile(migrated_sqlite, db)
        engine = make_engine(f"sqlite:///{db}", synchronous="OFF")
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def add_case(sessions: sessionmaker[Session], **over: Any) -> str:
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_id("case"),
        "queue": "orders",
        "kind": "order",
        "subject_id": "buyer-1",
        "shop_id": "shop-1",
        "status": "open",
        "priority": 50.0,
        "sla_due_at": now + timedelta(hours=24),
        "decision_count": 1,
        "money_at_stake": 10.0,
        "max_score": 80.0,
        "source": "decision",
        "title": "order review: test",
        "evidence": {},
        "opened_at": now,
        "updated_at": now,
    }
    values.update(over)
    with sessions.begin() as s:
        s.add(Case(**values))
    return str(values["id"])


@pytest.fixture
def make_case(sessions: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    return lambda **over: add_case(sessions, **over)
