"""The check path's DBAPI writer stores exactly what the SQLAlchemy Core reference stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from riskctl.cases import DEFAULT_QUEUES, DEFAULT_SLA_HOURS, Routing
from riskctl.db import make_engine
from riskctl.migrate import upgrade
from riskctl.models import Case, CaseDecision, Decision, DecisionHit, EventRecord
from riskctl.persist import CoreWriter, DriverWriter, Write
from tests.conftest import fresh_database_url

T0 = datetime(2026, 11, 3, 10, 0, 0, 123456, tzinfo=UTC)
ROUTING = Routing(DEFAULT_QUEUES, DEFAULT_SLA_HOURS)


def write(i: int, **over: Any) -> Write:
    fields: dict[str, Any] = {
        "event_id": f"evt-{i}",
        "kind": "order",
        "occurred_at": T0 - timedelta(seconds=i),
        "body_hash": f"{i:064x}",
        "subject_id": "buyer-1",
        "shop_id": "shop-1",
        "amount": 12.5 * i,
        "payload": {"order_id": f"o{i}", "items": [{"product_id": "p", "quantity": 1}], "note": "héllo ✓"},
        "decision_id": f"dec-{i}",
        "outcome": "review",
        "flagged": True,
        "score": 40.0 + i,
        "degraded": i % 2 == 0,
        "rulepack_version": "sha256:abc",
        "detector_versions": {"order": "iforest-1"},
        "features": {"amount": 12.5 * i, "velocity.buyer.orders_1h": i, "list.block.device": False, "x": None},
        "signals": [{"code": "ORD-001", "source": "rule", "status": "hit", "score": 40}],
        "reasons": [{"code": "ORD-001", "source": "rule", "description": "many orders"}],
        "hits": [{"code": "ORD-001", "source": "rule", "mode": "live", "score": 40.0}],
        "response_body": '{"outcome":"review"}',
        "latency_us": 900 + i,
        "title": "order review: many orders",
    }
    fields.update(over)
    return Write(**fields)


SCENARIO = [
    write(1),  # opens buyer-1's case
    write(2, amount=None),  # joins it, no money
    write(3, subject_id="buyer-2", outcome="block", score=100.0),  # opens another
    write(4, outcome="allow", flagged=False, hits=[]),  # no case, no hits
    write(5, kind="review", subject_id="buyer-1", shop_id="shop-9", amount=None),  # another queue
]


def row(r: Any, *drop: str) -> dict[str, Any]:
    return {k: v for k, v in r._mapping.items() if k not in drop}


def snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every stored row, with generated ids replaced by what they point at."""
    with engine.connect() as conn:
        events = {r.id: r.event_id for r in conn.execute(select(EventRecord.id, EventRecord.event_id))}
        cases = conn.execute(select(Case).order_by(Case.opened_at, Case.subject_id, Case.queue)).all()
        case_key = {c.id: (c.queue, c.subject_id) for c in cases}
        return {
            "events": [row(r, "id") for r in conn.execute(select(EventRecord).order_by(EventRecord.event_id))],
            "decisions": [
                {**row(r, "event_pk"), "event": events[r.event_pk]}
                for r in conn.execute(select(Decision).order_by(Decision.id))
            ],
            "hits": [row(r, "id") for r in conn.execute(select(DecisionHit).order_by(DecisionHit.decision_id))],
            "cases": [row(c, "id") for c in cases],
            "case_decisions": [
                {**row(r, "id", "case_id"), "case": case_key[r.case_id]}
                for r in conn.execute(select(CaseDecision).order_by(CaseDecision.decision_id))
            ],
        }


def run(writer_cls: type, tmp_path: Path, name: str) -> dict[str, list[dict[str, Any]]]:
    url = fresh_database_url(tmp_path) or f"sqlite:///{tmp_path / name}.db"
    engine = make_engine(url)
    try:
        upgrade(engine)
        writer = writer_cls(engine, ROUTING)
        for n, w in enumerate(SCENARIO):
            writer.write(w, now=T0 + timedelta(milliseconds=n))
        return snapshot(engine)
    finally:
        engine.dispose()


def test_driver_writer_stores_what_core_stores(tmp_path: Path) -> None:
    core = run(CoreWriter, tmp_path, "core")
    driver = run(DriverWriter, tmp_path, "driver")
    assert len(core["events"]) == 5 and len(core["hits"]) == 4
    assert [(c["queue"], c["subject_id"]) for c in core["cases"]] == [
        ("orders", "buyer-1"),
        ("orders", "buyer-2"),
        ("reviews", "buyer-1"),
    ]
    assert core["cases"][0]["decision_count"] == 2  # two decisions joined buyer-1's order case
    assert core["cases"][0]["money_at_stake"] == 12.5  # the second brought no money
    for table in core:
        assert driver[table] == core[table], table


def test_stored_values_read_back_typed(tmp_path: Path) -> None:
    url = fresh_database_url(tmp_path) or f"sqlite:///{tmp_path / 'typed'}.db"
    engine = make_engine(url)
    try:
        upgrade(engine)
        DriverWriter(engine, ROUTING).write(SCENARIO[0], now=T0)
        with engine.connect() as conn:
            d = conn.execute(select(Decision)).one()
            e = conn.execute(select(EventRecord)).one()
        assert d.created_at == T0 and d.created_at.tzinfo is not None
        assert d.features == SCENARIO[0].features and d.degraded is False
        assert e.payload["note"] == "héllo ✓" and e.occurred_at == SCENARIO[0].occurred_at
    finally:
        engine.dispose()


def test_a_repeated_event_is_an_integrity_error_and_stores_nothing(tmp_path: Path) -> None:
    url = fresh_database_url(tmp_path) or f"sqlite:///{tmp_path / 'dup'}.db"
    engine = make_engine(url)
    try:
        upgrade(engine)
        writer = DriverWriter(engine, ROUTING)
        writer.write(SCENARIO[0], now=T0)
        with pytest.raises(writer.integrity_errors):
            writer.write(write(1, decision_id="dec-other"), now=T0)
        after = snapshot(engine)
        assert len(after["events"]) == 1 and len(after["decisions"]) == 1
        assert len(after["case_decisions"]) == 1 and after["cases"][0]["decision_count"] == 1
    finally:
        engine.dispose()
