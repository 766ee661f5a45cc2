"""End to end: a small simulated marketplace through a live ``riskctl serve``, scored against
its ground truth. Floors on precision and recall per abuse kind; ceilings on false positives
for the legitimate traffic that looks most like abuse (flash sales, honest 1-star reviews)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from api.demo_cli import run_demo
from fixtures.simulator import ABUSE_KINDS

pytestmark = pytest.mark.live

FLOOR = 0.8
FP_CEILING = 0.05


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo") / "instance"
    return run_demo(
        seed=5,
        size=2_000,
        days=4,
        warmup_days=1,
        concurrency=4,
        out=out,
        url=None,
        key=None,
        moderators=2,
        capacity=200,
        workers=2,
        scans=False,
        html_report=True,
        console=Console(file=io.StringIO()),
    )


def test_every_check_was_answered(run) -> None:
    assert run.report.performance["errors"] == 0
    assert run.report.eval_events > 1_200


@pytest.mark.parametrize("abuse", list(ABUSE_KINDS))
def test_decisions_catch_each_abuse_kind(run, abuse: str) -> None:
    d = run.report.decision[abuse]
    assert d["abusive"] >= 10, d
    assert d["recall"] >= FLOOR, (abuse, d)
    assert d["precision"] >= FLOOR, (abuse, d)


@pytest.mark.parametrize("abuse", list(ABUSE_KINDS))
def test_cases_name_the_abusers(run, abuse: str) -> None:
    c = run.report.cases[abuse]
    assert c["abusive_subjects"] >= 1, c
    assert c["recall"] >= FLOOR, (abuse, c)
    assert c["precision"] >= FLOOR, (abuse, c)


@pytest.mark.parametrize("tag", ["flash_sale", "honest_negative"])
def test_legitimate_lookalikes_stay_under_the_false_positive_ceiling(run, tag: str) -> None:
    t = run.report.legit_tags[tag]
    assert t["events"] >= 10, t
    assert t["false_positive_rate"] <= FP_CEILING, (tag, t)


def test_the_html_report_has_its_charts_and_escapes_nothing_raw(run) -> None:
    page = Path(run.instance / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "<script" not in page
    assert (run.instance / "report.json").exists()
