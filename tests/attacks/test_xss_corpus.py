"""A corpus of XSS payloads (xss_payloads.txt) through every user-text field, checked in a real
browser (Debian's Chromium via Playwright) on every UI page: queues, case pages, the dashboard,
the complaint pages. No dialog opens, ``window.__xss`` stays unset, no element is injected, and
every payload is shown as the literal text that was sent."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from riskctl.apikeys import create_key
from riskctl.models import Case
from tests import factories
from tests.ui.conftest import LiveApp, browser, module_app  # noqa: F401 - the browser fixture, reused
from tests.ui.seed import seed

pytestmark = pytest.mark.slow

CORPUS = [
    line
    for line in (Path(__file__).parent / "xss_payloads.txt").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("# ")
]
# ids are restricted to [A-Za-z0-9._:@/+=-] and must start alphanumeric: these are what fits
ID_ALPHABET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]*")
ID_PAYLOADS = ["javascript:window.__xss=101", "javascript:alert/xss-102", "data:text/html+xss-103"]
INJECTED = (
    "document.querySelectorAll('[onerror],[onload],[onfocus],[ontoggle],[onmouseover],[onbegin],"
    "[onstart],[onblur],[srcdoc],[formaction],main iframe,main object,main embed,main svg,main math,"
    "main script,main img,main video,main audio,main marquee,main meta,main base,main link,"
    "main [hx-post]:not(form),main [hx-get]:not(form),main [hx-vals],[hx-on\\\\:htmx\\\\:load],"
    "a[href^=javascript i],a[href^=data i],form[action^=javascript i],[style*=expression i],"
    "main style').length"
)


def chunks(items: list[str], limit: int, sep: str = " ") -> list[str]:
    """Pack payloads into as few strings of at most ``limit`` characters as fit."""
    out: list[str] = []
    cur = ""
    for item in items:
        nxt = f"{cur}{sep}{item}" if cur else item
        if len(nxt) > limit and cur:
            out.append(cur)
            nxt = item
        cur = nxt
    return [*out, cur] if cur else out


def _norm(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def planted(
    tmp_path_factory: pytest.TempPathFactory, redis_server
) -> Iterator[tuple[LiveApp, dict[str, Any]]]:
    with module_app(tmp_path_factory.mktemp("xss-corpus"), redis_server.url) as app:
        data = seed(app, xss=False)  # the users, and ordinary cases next to the hostile ones
        runtime = app.extensions["riskctl"]
        client = app.test_client()
        pipeline = {"Authorization": f"Bearer {create_key(runtime.sessions, 'xss', ['pipeline', 'admin'])}"}
        holder = {"Authorization": f"Bearer {create_key(runtime.sessions, 'holder', ['rights_holder'])}"}
        # every payload as an id: refused at the edge unless it fits the id alphabet (then it is
        # planted as an id below, like the hand-made ones)
        for payload in CORPUS:
            r1 = client.post("/v1/checks", json=factories.order(shop_id=payload), headers=pipeline)
            assert r1.status_code == (200 if ID_ALPHABET.fullmatch(payload) else 422), payload

        def check(ev: dict[str, Any]) -> None:
            resp = client.post("/v1/checks", json=ev, headers=pipeline)
            assert resp.status_code == 200, resp.get_data(as_text=True)

        for i, text in enumerate(chunks(CORPUS, 4800)):  # review text
            check(
                factories.review(
                    reviewer_id=ID_PAYLOADS[i % 3],
                    shop_id=ID_PAYLOADS[(i + 1) % 3],
                    order_id=None,
                    rating=5,
                    text=f"{text} see https://spam.example/{i}",
                )
            )
        titles = chunks(CORPUS, 480)
        brands = chunks(CORPUS, 200)
        for i, title in enumerate(titles):  # listing title, description and brand
            check(
                factories.listing(
                    shop_id=ID_PAYLOADS[i % 3],
                    title=f"{title} replica AAA",
                    brand=brands[i] if i < len(brands) and i % 2 else "Gucci",
                    description=" ".join(CORPUS),
                    seller_created_at="2026-11-20T12:30:00Z",
                )
            )
        for i in range(3):  # ids in the order queue
            for j in range(4):
                check(
                    factories.order(
                        buyer_id=ID_PAYLOADS[i],
                        shop_id=ID_PAYLOADS[(i + 1) % 3],
                        device_id=f"xss-dev-{i}",
                        occurred_at=f"2026-11-21T11:{j * 5:02d}:00Z",
                    )
                )
        with runtime.sessions() as s:
            cases = [tuple(row) for row in s.execute(select(Case.id, Case.queue)).all()]
        target = next(cid for cid, q in cases if q == "reviews")
        for note in chunks(CORPUS, 4900, "\n"):  # case notes
            resp = client.post(f"/v1/cases/{target}/notes", json={"body": note}, headers=pipeline)
            assert resp.status_code == 201, resp.get_data(as_text=True)
        appealed = next(cid for cid, q in cases if q == "orders")
        reason = chunks(CORPUS, 4900, "\n")[0]
        for move, body in (("claim", {}), ("resolve", {"resolution": "confirmed_abuse"})):
            resp = client.post(f"/v1/cases/{appealed}/{move}", json=body, headers=pipeline)
            assert resp.status_code == 200, resp.get_data(as_text=True)
        resp = client.post(f"/v1/cases/{appealed}/appeal", json={"reason": reason}, headers=pipeline)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        complaints = []
        for evidence in chunks(CORPUS, 9000, "\n"):  # complaint evidence
            resp = client.post(
                "/v1/complaints",
                json={
                    "right": "trademark",
                    "listings": [{"listing_id": "lst-x", "shop_id": ID_PAYLOADS[0]}],
                    "evidence": evidence,
                },
                headers=holder,
            )
            assert resp.status_code == 201, resp.get_data(as_text=True)
            complaints.append(resp.get_json()["id"])
        info = {
            "password": data.password,
            "cases": cases,
            "complaints": complaints,
            "appeal": reason,
            "appeal_case": appealed,
        }
        with LiveApp(app) as server:
            yield server, info


class Tab:
    def __init__(self, chromium: Any, base: str, user: str, password: str) -> None:
        self.context = chromium.new_context(base_url=base)
        self.page = self.context.new_page()
        self.fired: list[str] = []
        self.page.on("dialog", lambda d: (self.fired.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.fired.append(m.text) if "xss" in m.text else None)
        self.page.set_default_timeout(15000)
        self.page.goto("/ui/login")
        self.page.fill("input[name=username]", user)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(lambda url: "/ui/login" not in url)

    def visit(self, path: str) -> str:
        p = self.page
        p.goto(path)
        p.wait_for_load_state("load")
        if path == "/ui/dashboard":
            p.wait_for_selector("#dashboard[data-ready='1']")
        p.wait_for_timeout(50)  # let load/autofocus handlers and htmx triggers run, if any got in
        assert p.evaluate(INJECTED) == 0, path
        assert p.evaluate("typeof window.__xss === 'undefined'"), path
        assert self.fired == [], (path, self.fired)
        return _norm(p.evaluate("document.body.innerText"))


def test_every_payload_in_every_field_is_inert_and_literal_on_every_page(browser, planted):  # noqa: F811
    server, info = planted
    seen: set[str] = set()
    ids_seen: set[str] = set()
    tabs = []
    try:
        senior = Tab(browser, server.url, "senior", info["password"])
        tabs.append(senior)
        pages = ["/ui/", "/ui/dashboard", *(f"/ui/queue/{q}" for q in ("orders", "reviews", "coupons", "ip"))]
        pages += [f"/ui/cases/{cid}" for cid, _q in info["cases"]]
        for path in pages:
            text = senior.visit(path)
            seen |= {p for p in CORPUS if _norm(p) in text}
            ids_seen |= {i for i in ID_PAYLOADS if i in text}
        # the appeal reason, shown literally on its case; and no htmx-injected logout ran
        appeal = senior.visit(f"/ui/cases/{info['appeal_case']}")
        assert _norm(info["appeal"]) in appeal
        assert senior.page.inner_text("[data-testid=whoami]") == "senior · senior_moderator"
        compliance = Tab(browser, server.url, "compliance", info["password"])
        tabs.append(compliance)
        holder = Tab(browser, server.url, "holder", info["password"])
        tabs.append(holder)
        complaint_text = ""
        for tab, paths in (
            (compliance, ["/ui/complaints", *(f"/ui/complaints/{c}" for c in info["complaints"])]),
            (holder, ["/ui/my/complaints", *(f"/ui/my/complaints/{c}" for c in info["complaints"])]),
        ):
            for path in paths:
                text = tab.visit(path)
                complaint_text += text
                ids_seen |= {i for i in ID_PAYLOADS if i in text}
        assert all(_norm(p) in complaint_text for p in CORPUS)  # evidence shown literally
    finally:
        for tab in tabs:
            tab.context.close()
    assert seen == set(CORPUS), sorted(set(CORPUS) - seen)[:5]
    assert ids_seen == set(ID_PAYLOADS)
