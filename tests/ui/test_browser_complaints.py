"""The complaint flow in a real browser (Chromium via Playwright): a rights holder files a bulk
complaint through the form; compliance reviews it, sends the notice and records the
counter-notice; the restore deadline passes; the listings are restored -- each step on the
pages and in the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest

from riskctl.models import utcnow
from tests.ui.test_browser import Session, open_session  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def _status(s: Session) -> str:
    return str(s.page.inner_text("[data-testid=complaint-status]"))


def test_bulk_complaint_notice_counter_notice_restored(open_session, live):  # noqa: F811
    server, _ = live
    holder = open_session("holder")
    holder.page.goto("/ui/my/complaints")
    form = "[data-testid=complaint-form]"
    holder.page.select_option(f"{form} select[name=right]", "trademark")
    holder.page.select_option(f"{form} select[name=marketplace]", "dmca")
    holder.page.fill(
        f"{form} textarea[name=listings]", "lst-br-1 shop-br-9\nlst-br-2 shop-br-9\nlst-br-3 shop-br-7"
    )
    holder.page.fill(f"{form} textarea[name=evidence]", "EU TM 0189 <img src=x onerror=alert('xss-ev')>")
    holder.page.click(f"{form} button[type=submit]")
    holder.page.wait_for_selector("[data-testid=complaint-status]")
    assert _status(holder) == "received"
    mine = holder.page.url
    cid = mine.rsplit("/", 1)[1]
    assert "lst-br-3" in holder.page.inner_text("section.complaint")

    staff = open_session("compliance")
    staff.page.goto("/ui/complaints")
    staff.page.click(f"tr[data-complaint-id='{cid}'] a")
    for move, status in (
        ("review", "under_review"),
        ("send_notice", "notice_sent"),
        ("counter_notice", "counter_notice"),
    ):
        staff.page.click(f"[data-testid=move-{move}]")
        staff.page.wait_for_selector(f"[data-testid=complaint-status]:text-is('{status}')")
    assert staff.page.inner_text("[data-testid=complaint-due]") != "-"

    counts = server.app.extensions["riskctl"].extras["complaints"].tick(now=utcnow() + timedelta(days=20))
    assert counts["restored"] >= 1
    holder.page.goto(mine)
    assert _status(holder) == "restored"
    assert holder.page.inner_text("[data-testid=complaint-outcome]") == "restored"
    history = holder.page.inner_text("[data-testid=complaint-history]")
    for step in ("received", "under_review", "notice_sent", "counter_notice", "restored"):
        assert step in history
    staff.page.reload()
    trail = staff.page.inner_text("[data-testid=complaint-audit]")
    for action in (
        "complaint.file",
        "complaint.send_notice",
        "complaint.counter_notice",
        "complaint.restore",
    ):
        assert action in trail
    assert holder.xss_fired() == [] and staff.xss_fired() == []
