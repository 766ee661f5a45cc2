"""Backtests replay stored decisions, with their recorded features, through a candidate pack."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main
from riskctl.backtest import backtest
from riskctl.rulepack import load_pack
from tests import factories

RULES = Path(__file__).resolve().parent.parent / "rules"


@pytest.fixture
def history(client, pipeline_headers):
    """Two buyers hammering one shop (brushing) and ordinary orders; returns event ids by group."""
    groups: dict[str, list[str]] = {"ring": [], "normal": []}
    for i in range(4):
        ev = factories.order(
            buyer_id="ring-a",
            shop_id="s-ring",
            device_id="ring-dev",
            amount=5.0,
            occurred_at=f"2026-11-21T09:{i * 5:02d}:00Z",
        )
        groups["ring"].append(ev["event_id"])
        assert client.post("/v1/checks", json=ev, headers=pipeline_headers).status_code == 200
    for i in range(6):
        ev = factories.order(
            buyer_id=f"n-{i}",
            shop_id=f"s-{i}",
            device_id=f"d-{i}",
            ip=f"198.51.100.{i + 1}",
            payment={"method": "card", "fingerprint": f"card-n-{i:05d}"},
            shipping_address_hash=f"addr-n-{i:05d}",
            amount=20.0,
            occurred_at=f"2026-11-21T10:{i:02d}:00Z",
        )
        groups["normal"].append(ev["event_id"])
        assert client.post("/v1/checks", json=ev, headers=pipeline_headers).status_code == 200
    return groups


def candidate(tmp_path: Path, old: str, new: str) -> Path:
    target = tmp_path / "candidate"
    shutil.copytree(RULES, target)
    orders = target / "orders.yaml"
    text = orders.read_text()
    assert old in text
    orders.write_text(text.replace(old, new))
    return target


def test_unchanged_pack_changes_nothing(runtime, history):
    report = backtest(runtime.engine, runtime.policy.current)
    assert report.events == 10
    assert report.changed == 0


def test_stricter_rule_shows_transitions_money_and_quality(runtime, history, tmp_path):
    path = candidate(
        tmp_path,
        "expression: velocity.buyer_shop.orders_1h >= 3\n    score: 50",
        "expression: velocity.buyer_shop.orders_1h >= 2\n    outcome: block",
    )
    pack = load_pack(path, runtime.policy.schema)
    labels = {e: True for e in history["ring"]} | {e: False for e in history["normal"]}
    data = backtest(runtime.engine, pack, labels=labels).as_dict()
    assert data["changed"] == 3  # the 2nd, 3rd and 4th ring orders now block
    assert {(t["from"], t["to"]) for t in data["transitions"]} <= {("allow", "block"), ("review", "block")}
    assert data["money"]["newly_blocked"] == pytest.approx(15.0)
    rule = data["rules"]["ORD-001"]
    assert rule["hits"] == 3 and rule["precision"] == 1.0 and rule["recall"] == 0.75
    assert data["outcomes"]["block"]["precision"] == 1.0


def test_backtest_cli_json_and_table(settings, app, history, tmp_path, monkeypatch):
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", settings.instance_path)
    if settings.database_url:
        monkeypatch.setenv("RISKCTL_DATABASE_URL", settings.database_url)
    path = candidate(
        tmp_path,
        "expression: velocity.buyer_shop.orders_1h >= 3\n    score: 50",
        "expression: velocity.buyer_shop.orders_1h >= 2\n    outcome: block",
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("event_id,label\n" + "".join(f"{e},1\n" for e in history["ring"]))
    result = CliRunner().invoke(
        main, ["rules", "backtest", "--pack", str(path), "--labels", str(labels), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["changed"] == 3 and data["positives"] == 4
    table = CliRunner().invoke(
        main, ["rules", "backtest", "--pack", str(path), "--since", "2026-11-21", "--until", "2026-11-22"]
    )
    assert table.exit_code == 0, table.output
    assert "decisions that would" in table.stdout and "15.00 newly blocked" in table.stdout
    none = CliRunner().invoke(
        main, ["rules", "backtest", "--pack", str(path), "--since", "2026-12-01", "--json"]
    )
    assert json.loads(none.stdout)["events"] == 0
