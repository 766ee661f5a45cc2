"""Complaint pages: rights holders file and follow their own (``/ui/my/complaints``);
compliance staff work every complaint in their own queue (``/ui/complaints``), with the
listings, the brand's registry entry and the complaint's audit trail side by side.

Nested in the UI blueprint, so login, CSRF and the error pages are the UI's own.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from api.ui import CSP
from api.ui.access import needs
from riskctl import audit
from riskctl.complaints import RIGHTS, ComplaintMove, ComplaintService, list_brands
from riskctl.errors import ValidationFailed
from riskctl.roles import Permission

bp = Blueprint("complaints", __name__)
_LINE = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127})[\s,;]+([A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127})\s*$"
)
STAFF_MOVES = tuple(m for m in ComplaintMove if m is not ComplaintMove.WITHDRAW)


def _svc() -> ComplaintService:
    return current_app.extensions["riskctl"].extras["complaints"]  # type: ignore[no-any-return]


@bp.after_request
def _headers(response: Response) -> Response:
    # the UI blueprint's security headers (its after_request looks at the top blueprint only)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def parse_listings(text: str) -> list[dict[str, str]]:
    """One ``listing_id shop_id`` pair per line (comma, semicolon or spaces between)."""
    out, bad = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            bad.append(n)
        else:
            out.append({"listing_id": m.group(1), "shop_id": m.group(2)})
    if bad:
        raise ValidationFailed(
            f"listings: line(s) {', '.join(map(str, bad[:10]))} are not 'listing_id shop_id'"
        )
    return out


# -- rights holders ------------------------------------------------------------------------------
@bp.get("/my/complaints")
@needs(Permission.COMPLAINTS_FILE)
def my_complaints() -> Any:
    sessions = current_app.extensions["riskctl"].sessions
    return render_template(
        "ui/complaints_mine.html",
        items=_svc().list_complaints(owner=current_user.username, limit=200)["items"],
        brands=list_brands(sessions, current_user.username),
        rights=RIGHTS,
        marketplaces=sorted(_svc().calendar.marketplaces),
    )


@bp.post("/my/complaints")
@needs(Permission.COMPLAINTS_FILE)
def file_complaint() -> Any:
    form = request.form
    view = _svc().file(
        current_user.username,
        listings=parse_listings(form.get("listings", "")[:60_000]),
        right=form.get("right", ""),
        evidence=form.get("evidence", "")[:10_000],
        brand_id=form.get("brand_id") or None,
        marketplace=form.get("marketplace") or "default",
        actor=current_user.username,
    )
    flash(f"Complaint {view['id']} filed over {len(view['listings'])} listing(s).")
    return redirect(url_for("ui.complaints.my_complaint", complaint_id=view["id"]))


@bp.get("/my/complaints/<complaint_id>")
@needs(Permission.COMPLAINTS_FILE)
def my_complaint(complaint_id: str) -> Any:
    c = _svc().get(complaint_id, owner=current_user.username)
    return render_template("ui/complaint.html", c=c, staff=False, moves=[], trail=[], brand=None)


@bp.post("/my/complaints/<complaint_id>/withdraw")
@needs(Permission.COMPLAINTS_FILE)
def withdraw(complaint_id: str) -> Any:
    _svc().move(
        complaint_id, ComplaintMove.WITHDRAW, actor=current_user.username, owner=current_user.username
    )
    flash("Complaint withdrawn.")
    return redirect(url_for("ui.complaints.my_complaint", complaint_id=complaint_id))


# -- compliance staff ----------------------------------------------------------------------------
@bp.get("/complaints")
@needs(Permission.COMPLAINTS_WORK)
def queue() -> Any:
    status = request.args.get("status") or None
    items = _svc().list_complaints(owner=None, status=status if status else None, limit=200)["items"]
    return render_template("ui/complaints_queue.html", items=items, status=status)


@bp.get("/complaints/<complaint_id>")
@needs(Permission.COMPLAINTS_WORK)
def complaint(complaint_id: str) -> Any:
    rt = current_app.extensions["riskctl"]
    c = _svc().get(complaint_id, owner=None)
    brand = None
    if c["brand_id"]:
        brand = next((b for b in list_brands(rt.sessions, None) if b["id"] == c["brand_id"]), None)
    trail = list(reversed(audit.recent(rt.engine, subject=f"complaint:{complaint_id}", limit=100)))
    moves = [m for m in c["legal_moves"] if m in {s.value for s in STAFF_MOVES}]
    return render_template("ui/complaint.html", c=c, staff=True, moves=moves, trail=trail, brand=brand)


@bp.post("/complaints/<complaint_id>/move")
@needs(Permission.COMPLAINTS_WORK)
def move(complaint_id: str) -> Any:
    name = request.form.get("move", "")
    if name == ComplaintMove.WITHDRAW.value:
        raise ValidationFailed("move: only the rights holder withdraws a complaint")
    view = _svc().move(
        complaint_id, name, actor=current_user.username, note=(request.form.get("note") or "")[:2000]
    )
    flash(f"Complaint {complaint_id}: {view['status']}.")
    return redirect(url_for("ui.complaints.complaint", complaint_id=complaint_id))


def _nest() -> None:
    from api.ui import views

    views.bp.register_blueprint(bp)  # once, at import: endpoints are ui.complaints.*


_nest()
