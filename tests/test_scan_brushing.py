"""``riskctl scan brushing``: CSV in → CSV out, and stored orders → cases."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from api.cli import main
from riskctl.models import Case
from tests import factories

HAND_WORKED = """orderid,shopid,userid,event_time
1,10,900,2019-12-27 10:00:00
2,10,900,2019-12-27 10:10:00
3,10,10000,2019-12-27 10:30:00
4,10,900,2019-12-27 11:00:00
5,10,10000,2019-12-27 11:00:00
6,10,10000,2019-12-27 11:00:00
7,10,3,2019-12-27 11:40:00
8,10,10000,2019-12-27 12:00:00
9,10,4,2019-12-27 13:30:00
10,2,7,2019-12-27 10:00:00
11,2,7,2019-12-27 10:30:00
12,2,7,2019-12-27 11:00:01
13,0042,u-b,2019-12-27 23:30:00
14,0042,u-a,2019-12-28 00:10:00
15,0042,u-b,2019-12-28 00:20:00
16,0042,u-a,2019-12-28 00:30:00
17,0042,u-b,2019-12-28 00:30:00
18,0042,u-a,2019-12-28 00:30:00
"""
# shop 10: [10:00, 11:00] has 6 orders by 900 and 10000 (3 each): a tie, numeric order.
# shop 2: never 3 orders in an hour. shop 0042 (kept as written): [23:30, 00:30] across
# midnight has 6 orders by u-a and u-b (3 each), lexicographic order.
EXPECTED = [["shopid", "userid"], ["2", "0"], ["10", "900&10000"], ["0042", "u-a&u-b"]]


@pytest.fixture
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """CSV mode must not touch a database: point it at one that cannot be reached."""
    monkeypatch.setenv("RISKCTL_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")


def test_csv_in_csv_out(tmp_path, no_database):
    src, dst = tmp_path / "orders.csv", tmp_path / "out.csv"
    src.write_text(HAND_WORKED)
    result = CliRunner().invoke(main, ["scan", "brushing", "--orders", str(src), "--out", str(dst)])
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(dst.read_text()))) == EXPECTED
    assert "brushing shops" in result.output


def test_csv_to_stdout(tmp_path, no_database):
    src = tmp_path / "orders.csv"
    src.write_text(HAND_WORKED)
    result = CliRunner().invoke(main, ["scan", "brushing", "--orders", str(src), "--out", "-"])
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.stdout))) == EXPECTED  # the summary goes to stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("orderid,shopid,userid\n1,2,3\n", "missing column(s) event_time"),
        ("orderid,shopid,userid,event_time\n1,2,3,2019-12-27T10:00:00\n", "is not YYYY-MM-DD HH:MM:SS"),
        ("orderid,shopid,userid,event_time\n1,,3,2019-12-27 10:00:00\n", "empty shopid"),
        ("", "orders CSV"),
    ],
)
def test_a_bad_csv_is_refused_with_the_reason(tmp_path, no_database, body, message):
    src = tmp_path / "orders.csv"
    src.write_text(body)
    result = CliRunner().invoke(main, ["scan", "brushing", "--orders", str(src), "--out", "-"])
    assert result.exit_code == 1
    assert message in result.output


def test_csv_mode_needs_out(tmp_path, no_database):
    src = tmp_path / "orders.csv"
    src.write_text(HAND_WORKED)
    result = CliRunner().invoke(main, ["scan", "brushing", "--orders", str(src)])
    assert result.exit_code == 2 and "--out" in result.output


def _post_orders(client, headers):
    events = [
        # brush-shop: b-1 five times and b-2 once in 40 minutes -> 6 orders / 2 buyers
        *[
            factories.order(buyer_id="b-1", shop_id="brush-shop", occurred_at=f"2026-11-20T10:{m:02d}:00Z")
            for m in (0, 5, 10, 20, 30)
        ],
        factories.order(
            buyer_id="b-2", shop_id="brush-shop", occurred_at="2026-11-20T10:40:00Z", amount=50.0
        ),
        # calm-shop: three buyers, one order each
        *[
            factories.order(buyer_id=f"c-{i}", shop_id="calm-shop", occurred_at=f"2026-11-20T10:0{i}:00Z")
            for i in range(3)
        ],
    ]
    for event in events:
        assert client.post("/v1/checks", json=event, headers=headers).status_code == 200


def _env(monkeypatch, settings):
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", settings.instance_path)
    monkeypatch.setenv("RISKCTL_REDIS_URL", settings.redis_url)
    if settings.database_url:
        monkeypatch.setenv("RISKCTL_DATABASE_URL", settings.database_url)


def _shop_cases(runtime, shop):
    with runtime.sessions() as s:
        return s.scalars(select(Case).where(Case.subject_id == shop)).all()


def test_stored_orders_open_one_case_per_brushing_shop_once(
    client, runtime, settings, pipeline_headers, monkeypatch, tmp_path
):
    _post_orders(client, pipeline_headers)
    _env(monkeypatch, settings)
    out = tmp_path / "out.csv"
    runner = CliRunner()
    first = runner.invoke(main, ["scan", "brushing", "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert list(csv.reader(io.StringIO(out.read_text()))) == [
        ["shopid", "userid"],
        ["brush-shop", "b-1"],
        ["calm-shop", "0"],
    ]

    (case,) = _shop_cases(runtime, "brush-shop")
    assert (case.queue, case.kind, case.shop_id, case.status, case.source) == (
        "orders",
        "order",
        "brush-shop",
        "open",
        "scan:brushing",
    )
    assert case.money_at_stake == 5 * 25.0 + 50.0
    (finding,) = case.evidence["findings"]
    assert finding["key"].startswith("brushing:brush-shop:2026-11-20T10:00:")
    assert finding["members"] == ["b-1"]
    assert finding["brushing_orders"] == 6
    assert finding["buyer_orders"] == {"b-1": 5, "b-2": 1}
    assert finding["windows"][0]["orders"] == 6 and finding["windows"][0]["buyers"] == 2
    assert finding["top_share"] == round(5 / 6, 4)
    assert _shop_cases(runtime, "calm-shop") == []

    again = runner.invoke(main, ["scan", "brushing"])
    assert again.exit_code == 0, again.output
    assert "unchanged" in again.output
    (same,) = _shop_cases(runtime, "brush-shop")
    assert same.id == case.id and len(same.evidence["findings"]) == 1


def test_stored_scan_window_and_dry_run(client, runtime, settings, pipeline_headers, monkeypatch):
    _post_orders(client, pipeline_headers)
    _env(monkeypatch, settings)
    runner = CliRunner()
    later = runner.invoke(main, ["scan", "brushing", "--since", "2026-11-21"])
    assert later.exit_code == 0, later.output
    dry = runner.invoke(main, ["scan", "brushing", "--dry-run", "--until", "2026-11-21"])
    assert dry.exit_code == 0, dry.output
    assert "brush-shop" in dry.output
    assert _shop_cases(runtime, "brush-shop") == []


def test_block_buyers_puts_the_top_buyers_on_the_block_list(
    client, runtime, settings, pipeline_headers, monkeypatch
):
    _post_orders(client, pipeline_headers)
    _env(monkeypatch, settings)
    result = CliRunner().invoke(main, ["scan", "brushing", "--block-buyers"])
    assert result.exit_code == 0, result.output
    assert runtime.lists.contains("block", "account", "b-1")
    assert not runtime.lists.contains("block", "account", "b-2")
