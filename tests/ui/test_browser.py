"""The moderator UI in a real browser: Debian's Chromium driven by Playwright, against the app
served on loopback with cases opened through POST /v1/checks (see tests/ui/seed.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from riskctl.models import Case, OutboxAction
from tests.ui.seed import XSS

pytestmark = pytest.mark.slow


class Session:
    """One browser context (its own cookies) with XSS tripwires on every page it opens."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.context = browser.new_context(base_url=base)
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.page = self.context.new_page()
        self.page.on("dialog", self._dialog)
        self.page.on("console", lambda m: self.console.append(m.text))
        self.page.set_default_timeout(15000)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def login(self, username: str, password: str) -> None:
        p = self.page
        p.goto("/ui/")
        assert "/ui/login" in p.url
        p.fill("input[name=username]", username)
        p.fill("input[name=password]", password)
        p.click("button[type=submit]")
        p.wait_for_selector("[data-testid=whoami]")

    def xss_fired(self) -> list[str]:
        fired = list(self.dialogs)
        if self.page.evaluate("typeof window.__xss !== 'undefined'"):
            fired.append("window.__xss set")
        fired += [m for m in self.console if "xss-" in m]
        return fired

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_session(browser, live) -> Iterator[Any]:
    server, _data = live
    sessions: list[Session] = []

    def make(username: str | None = None) -> Session:
        s = Session(browser, server.url)
        sessions.append(s)
        if username:
            s.login(username, _data.password)
        return s

    yield make
    for s in sessions:
        s.close()


def _cases(live, queue: str) -> list[Case]:
    server, _ = live
    with server.app.extensions["riskctl"].sessions() as s:
        return list(s.scalars(select(Case).where(Case.queue == queue).order_by(Case.priority.desc())))


def _case(live, case_id: str) -> Case:
    server, _ = live
    with server.app.extensions["riskctl"].sessions() as s:
        return s.get(Case, case_id)


def test_log_in_see_the_queue_and_log_out(open_session, live):
    s = open_session()
    s.page.goto("/ui/queue/orders")
    assert "/ui/login" in s.page.url  # not logged in: sent to the login page
    s.page.fill("input[name=username]", "mod")
    s.page.fill("input[name=password]", "wrong password!!")
    s.page.click("button[type=submit]")
    assert "Wrong username or password" in s.page.inner_text(".error")
    s.login("mod", live[1].password)
    assert s.page.inner_text("[data-testid=whoami]") == "mod · moderator"
    rows = s.page.locator("table.cases tbody tr[data-case-id]")
    assert rows.count() == len([c for c in _cases(live, "orders") if c.status in ("open", "claimed")]) >= 2
    s.page.fill("input[name=q]", "ring-b")  # the filter form swaps the table in through htmx
    s.page.wait_for_function("() => document.querySelectorAll('tr[data-case-id]').length === 1")
    assert "ring-b-buyer" in s.page.inner_text("table.cases tbody")
    assert "q=ring-b" in s.page.url  # the filter is in the address bar (hx-push-url)
    s.page.select_option("select[name=status]", "resolved")
    s.page.wait_for_function("() => document.querySelectorAll('tr[data-case-id]').length === 0")
    s.page.click("button.link")  # log out
    s.page.wait_for_url("**/ui/login")
    s.page.goto("/ui/queue/orders")
    assert "/ui/login" in s.page.url
    assert s.xss_fired() == []


def test_claim_a_case_and_resolve_it_with_key_presses(open_session, live):
    s = open_session("mod")
    case = next(c for c in _cases(live, "orders") if c.subject_id == "ring-a-buyer")
    s.page.goto(f"/ui/cases/{case.id}")
    assert s.page.inner_text("[data-testid=case-status]") == "open"
    s.page.keyboard.press("c")
    s.page.wait_for_selector("[data-testid=case-status]:text-is('claimed')")
    assert _case(live, case.id).assignee == "mod"
    s.page.keyboard.press("1")  # confirmed_abuse, with the pre-selected cancel_order action
    s.page.wait_for_selector("[data-testid=case-resolution]:text-is('confirmed_abuse')")
    done = _case(live, case.id)
    assert (done.status, done.resolution, done.resolved_by) == ("resolved", "confirmed_abuse", "mod")
    with live[0].app.extensions["riskctl"].sessions() as db:
        actions = list(db.scalars(select(OutboxAction).where(OutboxAction.case_id == case.id)))
    assert [a.type for a in actions] and {a.type for a in actions} == {"cancel_order"}
    assert "cancel_order" in s.page.inner_text(".statement")  # the statement of reasons is shown
    assert s.xss_fired() == []


def test_bulk_resolve_as_a_senior_moderator(open_session, live):
    s = open_session("senior")
    s.page.goto("/ui/queue/coupons")
    boxes = s.page.locator("input[name=case_id]")
    assert boxes.count() >= 3
    chosen = [boxes.nth(i).get_attribute("value") for i in range(3)]
    for i in range(3):
        boxes.nth(i).check()
    s.page.click("button.bulk-false_positive")
    s.page.wait_for_selector(".flash")
    assert "Resolved 3 case(s) as false_positive" in s.page.inner_text(".flash")
    for case_id in chosen:
        c = _case(live, case_id)
        assert (c.status, c.resolution, c.resolved_by) == ("resolved", "false_positive", "senior")
    assert s.xss_fired() == []


def test_a_moderator_is_refused_bulk_resolve(open_session, live):
    s = open_session("mod2")
    s.page.goto("/ui/queue/coupons")
    assert s.page.locator("input[name=case_id]").count() == 0  # no checkboxes offered
    assert s.page.locator("button.bulk-false_positive").count() == 0
    target = next(c for c in _cases(live, "coupons") if c.status == "open")
    # The server refuses even a well-formed request with a valid CSRF token.
    status = s.page.evaluate(
        """async (id) => {
            const token = document.querySelector('input[name=csrf_token]').value;
            const body = new URLSearchParams({case_id: id, resolution: 'false_positive', csrf_token: token});
            const r = await fetch('/ui/bulk-resolve', {method: 'POST', body});
            return r.status;
        }""",
        target.id,
    )
    assert status == 403
    assert _case(live, target.id).status == "open"


def test_xss_payloads_never_execute_on_any_page(open_session, live):
    s = open_session("senior")
    p = s.page
    pages = ["/ui/queue/reviews", "/ui/queue/ip", "/ui/dashboard"]
    pages += [f"/ui/cases/{c.id}" for q in ("reviews", "ip") for c in _cases(live, q)]
    # notes: typed into the case page's form and posted through htmx (three payloads a note)
    notes = ["\n".join(XSS[i : i + 3]) for i in range(0, len(XSS), 3)]
    note_case = _cases(live, "reviews")[0].id
    p.goto(f"/ui/cases/{note_case}")
    for n, note in enumerate(notes, start=1):
        p.fill("form.add-note textarea", note)
        p.click("form.add-note button")
        p.wait_for_function("n => document.querySelectorAll('.note .note-body').length === n", arg=n)
    shown = 0
    for path in pages:
        p.goto(path)
        p.wait_for_load_state("load")
        if path == "/ui/dashboard":
            p.wait_for_selector("#dashboard[data-ready='1']")
        text = p.evaluate("document.body.innerText")
        shown += sum(1 for payload in XSS if payload in text)  # shown as the literal text typed
        injected = p.evaluate(
            "document.querySelectorAll('[onerror],[onload],[onfocus],[ontoggle],[onmouseover],"
            "main iframe,main object,main svg,main script,main [hx-post]:not(form),main [hx-get]:not(form)').length"
        )
        assert injected == 0, path
        assert s.xss_fired() == [], path
    p.goto(f"/ui/cases/{note_case}")
    assert p.locator(".note .note-body").all_inner_texts() == notes  # shown exactly as typed
    assert shown >= 2 * len(XSS)
    assert p.inner_text("[data-testid=whoami]") == "senior · senior_moderator"  # no htmx-injected logout
    # htmx and Chart.js run under the strict CSP without tripping it (no inline style or eval)
    assert [m for m in s.console if "Content Security Policy" in m] == []
    assert s.xss_fired() == []
