"""Complaint pages: a rights holder files a bulk complaint through the form, compliance sends
the notice and records a counter-notice, the restore deadline passes, the listings are
restored -- each step visible on the pages and in the audit log."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from riskctl.models import utcnow
from riskctl.users import create_user
from tests.ui.conftest import login

PASSWORD = "correct horse battery staple 42"


def _client(app: Flask, name: str, role: str) -> FlaskClient:
    create_user(app.extensions["riskctl"].sessions, name, PASSWORD, role)
    client = app.test_client()
    assert login(client, name, PASSWORD).status_code == 302
    return client


def _token(client: FlaskClient, path: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert m, path
    return m.group(1)


def _status(client: FlaskClient, path: str) -> str:
    body = client.get(path).get_data(as_text=True)
    m = re.search(r'data-testid="complaint-status">([a-z_]+)<', body)
    assert m, body[:500]
    return m.group(1)


def test_bulk_complaint_through_the_form_to_restoration(app: Flask, runtime: Any) -> None:
    acme = _client(app, "acme", "rights_holder")
    alice = _client(app, "alice", "compliance")
    globex = _client(app, "globex", "rights_holder")
    r = acme.post(
        "/ui/my/complaints",
        data={
            "csrf_token": _token(acme, "/ui/my/complaints"),
            "right": "trademark",
            "marketplace": "dmca",
            "listings": "lst-1 shop-9\nlst-2, shop-9\n\nlst-3;shop-7\n",
            "evidence": "<script>alert(1)</script> our registered mark",
        },
    )
    assert r.status_code == 302
    mine = r.headers["Location"]
    cid = mine.rsplit("/", 1)[1]
    page = acme.get(mine).get_data(as_text=True)
    assert "lst-3" in page and "received" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page  # escaped
    assert globex.get(mine).status_code == 404  # not theirs: not there
    assert acme.get(f"/ui/complaints/{cid}").status_code == 403  # the staff page is staff-only
    assert cid in alice.get("/ui/complaints").get_data(as_text=True)

    staff = f"/ui/complaints/{cid}"
    for move, status in (
        ("review", "under_review"),
        ("send_notice", "notice_sent"),
        ("counter_notice", "counter_notice"),
    ):
        r = alice.post(
            f"{staff}/move", data={"csrf_token": _token(alice, staff), "move": move, "note": f"{move} ok"}
        )
        assert r.status_code == 302
        assert _status(alice, staff) == status
    illegal = alice.post(f"{staff}/move", data={"csrf_token": _token(alice, staff), "move": "review"})
    assert illegal.status_code == 409
    assert alice.post(f"{staff}/move", data={"move": "restore"}).status_code == 400  # no CSRF token

    # the restore deadline (10 business days) passes; the scheduler restores the listings
    counts = runtime.extras["complaints"].tick(now=utcnow() + timedelta(days=20))
    assert counts["restored"] == 1
    assert _status(acme, mine) == "restored"
    body = alice.get(staff).get_data(as_text=True)
    for action in (
        "complaint.file",
        "complaint.review",
        "complaint.send_notice",
        "complaint.counter_notice",
        "complaint.restore",
    ):
        assert action in body, action
    history = acme.get(mine).get_data(as_text=True)
    assert history.count('class="pill ') >= 5 and "scheduler" in history
    case_id = runtime.extras["complaints"].get(cid, owner=None)["case_id"]
    case_page = alice.get(f"/ui/cases/{case_id}").get_data(as_text=True)
    assert "reinstate_listing" in case_page and "take_down_listing" in case_page


def test_each_role_lands_on_its_own_home(app: Flask) -> None:
    acme = _client(app, "acme-home", "rights_holder")
    r = acme.get("/ui/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/ui/my/complaints")
    assert acme.get(r.headers["Location"]).status_code == 200
    assert acme.get("/ui/queue/orders").status_code == 403  # the queues stay closed to them
    mod = _client(app, "mod-home", "moderator")
    r = mod.get("/ui/")
    assert r.status_code == 302 and "/ui/queue/" in r.headers["Location"]
