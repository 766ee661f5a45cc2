"""Strikes and the seller ladder: steps up with statements of reasons, steps back down as
strikes decay, on an upheld appeal and on remediation (reinstatement)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from riskctl import audit, casework, strikes
from riskctl.models import OutboxAction
from tests.cases.conftest import add_case, engine, migrated_sqlite, sessions  # noqa: F401 - fixtures

T0 = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)
LADDER = strikes.Ladder(half_life_days=30)


def _actions(engine: Any, shop: str) -> list[Any]:  # noqa: F811
    with engine.connect() as conn:
        return conn.execute(
            select(OutboxAction.id, OutboxAction.type, OutboxAction.statement_id, OutboxAction.reverses)
            .where(OutboxAction.target == shop)
            .order_by(OutboxAction.created_at, OutboxAction.id)
        ).all()


def _strike(engine: Any, case_id: str, shop: str, at: datetime) -> tuple[int, int]:  # noqa: F811
    with engine.begin() as conn:
        strikes.add(conn, shop, "confirmed_abuse", f"case:{case_id}", now=at)
        return strikes.evaluate(conn, shop, LADDER, actor="t", now=at, case_id=case_id)


def test_ladder_steps_up_and_decays_back_down(engine, sessions):  # noqa: F811
    shop = "shop-ladder"
    cases = [add_case(sessions, queue="ip", kind="listing", subject_id=shop, shop_id=shop) for _ in range(4)]
    assert _strike(engine, cases[0], shop, T0) == (0, 1)
    assert _strike(engine, cases[1], shop, T0 + DAY) == (1, 2)
    assert _strike(engine, cases[2], shop, T0 + 2 * DAY) == (2, 3)
    acts = _actions(engine, shop)
    assert [a.type for a in acts] == ["warn_seller", "take_down_listing", "restrict_account"]
    # restrictive steps carry a statement of reasons; the warning restricts nothing
    assert [bool(a.statement_id) for a in acts] == [False, True, True]
    with engine.begin() as conn:
        assert strikes.active(conn, shop, LADDER, T0 + 2 * DAY) == pytest.approx(
            2 ** (-2 / 30) + 2 ** (-1 / 30) + 1, abs=1e-9
        )
        # one half-life later about 1.4 strikes are left: back to the warning
        moved = strikes.tick(conn, LADDER, now=T0 + 32 * DAY)
    assert moved == [(shop, 3, 1)]
    acts = _actions(engine, shop)
    reversals = {a.reverses: a.type for a in acts if a.reverses}
    by_id = {a.id: a.type for a in acts}
    assert {by_id[k]: v for k, v in reversals.items()} == {
        "restrict_account": "lift_restriction",
        "take_down_listing": "reinstate_listing",
    }
    with engine.begin() as conn:
        assert strikes.tick(conn, LADDER, now=T0 + 120 * DAY) == [(shop, 1, 0)]
        assert strikes.tick(conn, LADDER, now=T0 + 400 * DAY) == []  # nothing left to do
    assert [a.type for a in _actions(engine, shop)][-1] == "withdraw_warning"
    steps = [r["action"] for r in audit.recent(engine, subject=f"shop:{shop}")]
    assert steps.count("seller.step_up") == 3 and steps.count("seller.reinstate") == 2


def test_remediation_reinstates_at_once(engine, sessions):  # noqa: F811
    shop = "shop-fixed"
    c1 = add_case(sessions, queue="ip", kind="listing", subject_id=shop, shop_id=shop)
    c2 = add_case(sessions, queue="ip", kind="listing", subject_id=shop, shop_id=shop)
    _strike(engine, c1, shop, T0)
    _strike(engine, c2, shop, T0)
    with engine.begin() as conn:
        assert strikes.remediate(conn, shop, LADDER, actor="alice", now=T0 + DAY, note="stock destroyed") == (
            2,
            0,
        )
        assert strikes.standing(conn, shop) == 0
    assert [a.type for a in _actions(engine, shop)][-2:] == ["reinstate_listing", "withdraw_warning"]


def test_an_upheld_appeal_takes_the_strike_back(runtime):
    svc = runtime.extras["complaints"]
    shop = "shop-appeal"
    c = svc.file(
        "acme",
        listings=[{"listing_id": "l-1", "shop_id": shop}],
        right="trademark",
        evidence="x",
        actor="acme",
    )
    svc.move(c["id"], "review", actor="alice")
    svc.move(c["id"], "send_notice", actor="alice")
    svc.move(c["id"], "take_down", actor="alice")
    with runtime.engine.connect() as conn:
        assert strikes.standing(conn, shop) == 1
    case_id = svc.get(c["id"], owner=None)["case_id"]
    rep = runtime.extras["reputation"]
    hit = rep.explain("shop", shop)["score"]
    casework.appeal(runtime.sessions, case_id, shop, "we hold a licence")
    casework.decide_appeal(runtime.sessions, case_id, "senior-bob", True, "licence verified")
    svc.tick()
    rep.ingest()
    with runtime.engine.connect() as conn:
        assert strikes.standing(conn, shop) == 0
        assert strikes.active(conn, shop, svc.ladder, datetime.now(UTC)) == 0
    assert rep.explain("shop", shop)["score"] > hit
    assert rep.explain("shop", shop)["score"] == pytest.approx(0.5, abs=1e-6)
    types = [a.type for a in _actions(runtime.engine, shop)]
    assert "withdraw_warning" in types


def test_ladder_thresholds_must_increase():
    with pytest.raises(ValueError):
        strikes.Ladder(steps=(strikes.Step("a", 2, "warn_seller"), strikes.Step("b", 1, "suspend_account")))
    with pytest.raises(Exception, match="unknown action"):
        strikes.Ladder(steps=(strikes.Step("a", 1, "teleport_seller"),))


def test_the_scheduler_strikes_shops_for_confirmed_abuse_once(runtime):
    svc = runtime.extras["complaints"]
    shop = "shop-abusive"
    cid = add_case(runtime.sessions, queue="ip", kind="listing", subject_id=shop, shop_id=shop)
    casework.claim(runtime.sessions, cid, "mod-a")
    casework.resolve(runtime.sessions, cid, "mod-a", "confirmed_abuse", "counterfeit")
    assert svc.tick()["strikes"] == 1
    assert svc.tick()["strikes"] == 0
    with runtime.engine.connect() as conn:
        assert strikes.standing(conn, shop) == 1
    assert [a.type for a in _actions(runtime.engine, shop)] == ["warn_seller"]
