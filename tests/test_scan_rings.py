"""``riskctl scan rings`` over stored order events: real checks into SQLite, then the scan."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from api.cli import main
from detectors.rings import Order
from riskctl.models import Case, EventRecord
from riskctl.ring_scan import load_orders, scan_rings
from riskctl.scans import record_findings
from tests import factories
from tests.detectors.ring_traffic import Traffic, inject_ring, member_scores, normal_traffic

DAY = "2026-11-20"


def _event(order: Order, i: int, *, day: str = DAY, **over) -> dict:
    return factories.order(
        occurred_at=f"{day}T{(i // 60) % 24:02d}:{i % 60:02d}:00Z",
        buyer_id=order.buyer,
        shop_id=order.shop,
        device_id=order.device,
        shipping_address_hash=f"addrhash-{order.address}",
        payment={"method": "card", "fingerprint": f"cardfp-{order.payment}"}
        if order.payment
        else {"method": "wallet"},
        amount=order.amount,
        **over,
    )


def _store(runtime, orders: list[Order], *, day: str = DAY) -> None:
    for i, order in enumerate(orders):
        runtime.checks.check(orjson.dumps(_event(order, i, day=day)))


def _traffic(seed: int, *, ring: bool) -> Traffic:
    rng = np.random.default_rng(seed)
    traffic = normal_traffic(rng, n_orders=300, n_shops=25)
    if ring:
        inject_ring(
            rng, traffic, name="ring", n_buyers=10, n_devices=2, n_addresses=1, n_cards=2, camouflage=1
        )
    return traffic


def _scan_cases(runtime) -> list[Case]:
    with runtime.sessions() as s:
        return list(s.scalars(select(Case).where(Case.source == "scan:rings")))


def test_a_stored_ring_opens_one_case_and_a_rerun_opens_none(runtime):
    traffic = _traffic(1, ring=True)
    _store(runtime, traffic.orders)
    result = scan_rings(runtime.engine)
    assert result.orders == len(traffic.orders)
    assert len(result.findings) == 1
    finding = result.findings[0]
    ring_buyers, ring_shop = traffic.rings[0]
    buyers = {m.removeprefix("buyer:") for m in finding.members if m.startswith("buyer:")}
    precision, recall = member_scores([buyers], set(ring_buyers))
    assert precision >= 0.9 and recall >= 0.9
    assert (finding.kind, finding.subject_id, finding.shop_id) == ("order", ring_shop, ring_shop)
    assert f"shop:{ring_shop}" in finding.members
    assert finding.key == f"rings:{result.rings[0].ring_id}"
    expected = sum(o.amount for o in traffic.orders if o.shop == ring_shop and o.buyer in buyers)
    assert finding.money == pytest.approx(expected, abs=0.01)
    # shared entities are the stored tokens, never the raw identifiers
    shared = finding.evidence["shared_entities"]
    pseudo = runtime.pseudonymizer
    raw_devices = {o.device for o in traffic.orders if o.buyer in ring_buyers}
    assert set(shared["device"]["tokens"]) <= {pseudo.token("device", d) for d in raw_devices}
    assert not set(shared["device"]["tokens"]) & raw_devices
    assert shared["address"]["tokens"] == [pseudo.token("address", "addrhash-ring-addr-0")]
    assert finding.evidence["density_ratio"] >= 2.0

    first = record_findings(runtime.engine, runtime.checks.routing, result.findings)
    assert first.opened == 1
    again = record_findings(runtime.engine, runtime.checks.routing, scan_rings(runtime.engine).findings)
    assert (again.opened, again.joined, again.unchanged) == (0, 0, 1)
    cases = _scan_cases(runtime)
    assert len(cases) == 1
    assert cases[0].subject_id == ring_shop and cases[0].queue == "orders"
    assert cases[0].money_at_stake == pytest.approx(expected, abs=0.01)
    assert cases[0].evidence["findings"][0]["members"] == list(finding.members)


def test_normal_traffic_with_a_family_at_one_address_opens_no_case(runtime):
    traffic = _traffic(2, ring=False)
    family = [
        Order(f"fam-{i}", "shop-3", f"fam-dev-{i}", "fam-addr", f"fam-card-{i}", 20.0) for i in range(5)
    ]
    _store(runtime, traffic.orders + family)
    result = scan_rings(runtime.engine)
    assert result.orders == len(traffic.orders) + 5
    assert result.findings == []
    assert record_findings(runtime.engine, runtime.checks.routing, result.findings).opened == 0


def test_load_orders_reads_tokens_honours_the_window_and_counts_a_retry_once(runtime):
    orders = [Order(f"b{i}", "s1", f"dev-{i}", f"a{i:04d}", f"c{i:04d}", 10.0 + i) for i in range(4)]
    _store(runtime, orders[:2], day="2026-11-20")
    _store(runtime, orders[2:], day="2026-11-22")
    retry = _event(orders[0], 0, day="2026-11-20", order_id="ord-retried")
    runtime.checks.check(orjson.dumps(retry))
    runtime.checks.check(orjson.dumps({**retry, "event_id": "evt-retry-2"}))
    loaded = load_orders(runtime.engine)
    assert len(loaded) == 5  # 4 + the retried order once
    assert {o.buyer for o in loaded} == {"b0", "b1", "b2", "b3"}
    assert not {o.device for o in loaded} & {f"dev-{i}" for i in range(4)}
    assert loaded[0].device == runtime.pseudonymizer.token("device", "dev-0")
    assert loaded[0].payment == runtime.pseudonymizer.token("payment", "cardfp-c0000")
    window = load_orders(
        runtime.engine, since=datetime(2026, 11, 21, tzinfo=UTC), until=datetime(2026, 11, 23, tzinfo=UTC)
    )
    assert sorted(o.buyer for o in window) == ["b2", "b3"]
    assert sum(o.amount for o in window) == pytest.approx(25.0)


def _cli_env(monkeypatch, settings) -> None:
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", settings.instance_path)
    monkeypatch.setenv("RISKCTL_REDIS_URL", settings.redis_url)
    if settings.database_url:
        monkeypatch.setenv("RISKCTL_DATABASE_URL", settings.database_url)


def test_cli_scan_rings_dry_run_then_record_then_rerun(runtime, settings, monkeypatch):
    traffic = _traffic(3, ring=True)
    _store(runtime, traffic.orders)
    _cli_env(monkeypatch, settings)
    runner = CliRunner()

    dry = runner.invoke(main, ["scan", "rings", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    data = orjson.loads(dry.stdout)
    assert data["summary"]["rings_reported"] == 1 and data["summary"]["dry_run"] is True
    assert data["rings"][0]["shops"][0] == traffic.rings[0][1]
    assert data["rings"][0]["case_id"] is None
    assert _scan_cases(runtime) == []

    table = runner.invoke(main, ["scan", "rings"])
    assert table.exit_code == 0, table.output
    text = " ".join(table.stdout.split())  # rich wraps to the terminal width
    assert "brushing rings" in text and "opened 1," in text and "rings reported 1" in text
    cases = _scan_cases(runtime)
    assert len(cases) == 1

    rerun = runner.invoke(main, ["scan", "rings", "--json"])
    data = orjson.loads(rerun.stdout)
    assert data["summary"]["opened"] == 0 and data["summary"]["unchanged"] == 1
    assert data["rings"][0]["case_id"] == cases[0].id

    high = orjson.loads(runner.invoke(main, ["scan", "rings", "--json", "--min-score", "99"]).stdout)
    assert high["summary"]["rings_reported"] == 0 and high["rings"][0]["reported"] is False

    empty = orjson.loads(runner.invoke(main, ["scan", "rings", "--json", "--since", "2027-01-01"]).stdout)
    assert empty["summary"]["orders"] == 0 and empty["rings"] == []


def test_cli_scan_rings_rejects_bad_options(runtime, settings, monkeypatch):
    _cli_env(monkeypatch, settings)
    runner = CliRunner()
    assert runner.invoke(main, ["scan", "rings", "--since", "yesterday"]).exit_code == 2
    assert (
        runner.invoke(main, ["scan", "rings", "--since", "2026-11-02", "--until", "2026-11-01"]).exit_code
        == 2
    )
    assert runner.invoke(main, ["scan", "rings", "--min-score", "101"]).exit_code == 2
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(EventRecord)) == 0
