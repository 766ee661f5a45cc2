"""The moderator UI's pages: a few lines each, calling into ``riskctl.casework``.

Every view is login-required and names its permission with :func:`needs`; state changes
are POSTs (CSRF-checked in :func:`_csrf`) that redirect back (PRG), so they work the same
with and without htmx.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError

from api.ui import csrf
from api.ui.access import LoginLimiter, UiUser, needs
from riskctl import audit, casework, dashboard, statements
from riskctl.casestate import Resolution
from riskctl.errors import Forbidden, RiskctlError
from riskctl.models import utcnow
from riskctl.roles import Permission, can
from riskctl.users import authenticate

bp = Blueprint("ui", __name__, url_prefix="/ui")

QUEUES = ("orders", "reviews", "coupons", "ip")
STATUSES = ("open", "claimed", "active", "resolved", "appealed", "all")
SORTS = ("priority", "sla", "opened")
# The action a confirmed case of each kind usually ends in (pre-selected on the case page).
DEFAULT_ACTION = {
    "order": "cancel_order",
    "review": "hide_review",
    "coupon_redemption": "revoke_coupon",
    "listing": "take_down_listing",
}


def _runtime() -> Any:
    return current_app.extensions["riskctl"]


def _limiter() -> LoginLimiter:
    rt = _runtime()
    limiter = rt.extras.get("ui_login_limiter")
    if limiter is None:
        limiter = LoginLimiter(rt.redis, lambda s: rt.pseudonymizer.token("ui-login", s))
        rt.extras["ui_login_limiter"] = limiter
    return limiter  # type: ignore[no-any-return]


@bp.before_request
def _csrf() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


@bp.context_processor
def _context() -> dict[str, Any]:
    return {"queues": QUEUES, "Permission": Permission, "resolutions": list(Resolution)}


@bp.app_template_global("now")
def _now() -> datetime:
    return utcnow()


@bp.app_template_filter("due")
def _due(at: datetime | None) -> str:
    """``in 3h 20m`` / ``2h 5m late``: the server's rendering of the SLA countdown."""
    if at is None:
        return "-"
    seconds = int((at - utcnow()).total_seconds())
    h, m = divmod(abs(seconds) // 60, 60)
    span = f"{h // 24}d {h % 24}h" if h >= 48 else f"{h}h {m:02d}m"
    return f"in {span}" if seconds >= 0 else f"{span} late"


@bp.app_template_filter("hhmm")
def _hhmm(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "-"


@bp.errorhandler(RiskctlError)
def _error(exc: RiskctlError) -> tuple[str, int]:
    return render_template("ui/error.html", status=exc.status, title=exc.title, detail=exc.detail), exc.status


@bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> tuple[str, int]:
    detail = "The form expired or did not come from this site; reload the page and try again."
    return render_template("ui/error.html", status=400, title="Bad request", detail=detail), 400


@bp.errorhandler(404)
def _not_found(exc: Exception) -> tuple[str, int]:
    return render_template("ui/error.html", status=404, title="Not found", detail="No such page."), 404


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no ``//``): no open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("ui.index")


# -- login ---------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(url_for("ui.index"))
        return render_template("ui/login.html", next=request.args.get("next", ""))
    username = (request.form.get("username") or "").strip()[:64]
    password = request.form.get("password") or ""
    address = request.remote_addr or "-"
    limiter = _limiter()
    if limiter.blocked(address, username):
        with _runtime().sessions.begin() as s:
            audit.append(s.connection(), username or "-", "login.rate_limited", "user:-", {})
        msg = "Too many failed attempts. Wait a few minutes and try again."
        return render_template("ui/login.html", error=msg, username=username), 429
    info = authenticate(_runtime().sessions, username, password)  # audits success and failure
    if info is None:
        limiter.failed(address, username)
        return render_template("ui/login.html", error="Wrong username or password.", username=username), 401
    limiter.succeeded(username)
    session.clear()  # nothing from before the login (CSRF token included) carries over
    login_user(UiUser(info))
    return redirect(_safe_next(request.form.get("next")))


login.public = True  # type: ignore[attr-defined]


@bp.post("/logout")
@login_required
def logout() -> Any:
    with _runtime().sessions.begin() as s:
        audit.append(s.connection(), current_user.username, "logout", f"user:{current_user.id}", {})
    logout_user()
    return redirect(url_for("ui.login"))


logout.required_permission = None  # type: ignore[attr-defined]


# -- queue ---------------------------------------------------------------------------------
@bp.get("/")
@login_required
def index() -> Any:
    """Each role's home: the queues for staff, their own complaints for a rights holder."""
    if can(current_user.role, Permission.CASE_VIEW):
        return redirect(url_for("ui.queue", name=QUEUES[0]))
    if can(current_user.role, Permission.COMPLAINTS_FILE):
        return redirect(url_for("ui.complaints.my_complaints"))
    raise Forbidden(f"your role ({current_user.role}) has no page here")


index.required_permission = None  # type: ignore[attr-defined]


def _queue_args(name: str) -> dict[str, Any]:
    status = request.args.get("status", "active")
    sort = request.args.get("sort", "priority")
    mine = request.args.get("mine") == "1"
    return {
        "queue": name,
        "status": status if status in STATUSES else "active",
        "sort": sort if sort in SORTS else "priority",
        "mine": mine,
        "q": (request.args.get("q") or "").strip()[:128],
    }


@bp.get("/queue/<name>")
@needs(Permission.CASE_VIEW)
def queue(name: str) -> Any:
    if name not in QUEUES:
        abort(404)
    args = _queue_args(name)
    cases = casework.list_queue(
        _runtime().sessions,
        name,
        status=args["status"],
        sort=args["sort"],
        assignee=current_user.username if args["mine"] else None,
        search=args["q"] or None,
    )
    counts = casework.queue_counts(_runtime().sessions)
    return render_template("ui/queue.html", name=name, cases=cases, args=args, counts=counts)


@bp.get("/queue/<name>/next")
@needs(Permission.CASE_VIEW)
def next_case(name: str) -> Any:
    if name not in QUEUES:
        abort(404)
    cases = casework.list_queue(_runtime().sessions, name, status="open", sort="priority")
    if not cases:
        flash(f"The {name} queue has no open case.")
        return redirect(url_for("ui.queue", name=name))
    return redirect(url_for("ui.case", case_id=cases[0].id))


@bp.post("/bulk-resolve")
@needs(Permission.CASE_BULK_RESOLVE)
def bulk_resolve() -> Any:
    ids = [i for i in request.form.getlist("case_id") if i][:500]
    resolution = _resolution(request.form.get("resolution"))
    back = _safe_next(request.form.get("next"))
    if not ids:
        flash("Select at least one case.")
        return redirect(back)
    n = casework.bulk_resolve(_runtime().sessions, ids, resolution, actor=current_user.username)
    flash(f"Resolved {n} case(s) as {resolution.value}.")
    return redirect(back)


def _resolution(value: str | None) -> Resolution:
    try:
        return Resolution(value or "")
    except ValueError:
        abort(400)


# -- one case ------------------------------------------------------------------------------
@bp.get("/cases/<case_id>")
@needs(Permission.CASE_VIEW)
def case(case_id: str) -> Any:
    view = casework.get_case(_runtime().sessions, case_id)
    return render_template(
        "ui/case.html", case=view, actions=statements.ACTIONS, default_action=DEFAULT_ACTION.get(view.kind)
    )


def _back(case_id: str) -> Any:
    return redirect(url_for("ui.case", case_id=case_id))


@bp.post("/cases/<case_id>/claim")
@needs(Permission.CASE_CLAIM)
def claim(case_id: str) -> Any:
    ttl = timedelta(minutes=_runtime().settings.case_claim_minutes)
    casework.claim(_runtime().sessions, case_id, current_user.username, ttl)
    return _back(case_id)


@bp.post("/cases/<case_id>/release")
@needs(Permission.CASE_CLAIM)
def release(case_id: str) -> Any:
    # Senior staff may take a case back from someone else's claim.
    force = current_user.can(Permission.CASE_BULK_RESOLVE)
    casework.release(_runtime().sessions, case_id, current_user.username, force=force)
    return _back(case_id)


@bp.post("/cases/<case_id>/resolve")
@needs(Permission.CASE_RESOLVE)
def resolve(case_id: str) -> Any:
    resolution = _resolution(request.form.get("resolution"))
    actions: list[str] = []
    if resolution is Resolution.CONFIRMED_ABUSE and current_user.can(Permission.ACTION_EXECUTE):
        actions = [a for a in request.form.getlist("action") if a in statements.ACTIONS][:20]
    note = (request.form.get("note") or "").strip()[:5000] or None
    casework.resolve(_runtime().sessions, case_id, current_user.username, resolution, note, actions)
    flash(f"Case resolved: {resolution.value}" + (f" ({', '.join(actions)})." if actions else "."))
    return _back(case_id)


@bp.post("/cases/<case_id>/reopen")
@needs(Permission.CASE_RESOLVE)
def reopen(case_id: str) -> Any:
    casework.reopen(_runtime().sessions, case_id, current_user.username)
    return _back(case_id)


@bp.post("/cases/<case_id>/appeal")
@needs(Permission.CASE_APPEAL)
def appeal(case_id: str) -> Any:
    casework.appeal(_runtime().sessions, case_id, current_user.username, request.form.get("reason") or "")
    return _back(case_id)


@bp.post("/cases/<case_id>/appeal-decision")
@needs(Permission.CASE_APPEAL_DECIDE)
def decide_appeal(case_id: str) -> Any:
    decision = request.form.get("decision")
    if decision not in ("uphold", "reject"):
        abort(400)
    note = (request.form.get("note") or "").strip()[:5000] or None
    casework.decide_appeal(_runtime().sessions, case_id, current_user.username, decision == "uphold", note)
    return _back(case_id)


@bp.post("/cases/<case_id>/notes")
@needs(Permission.CASE_NOTE)
def add_note(case_id: str) -> Any:
    body = (request.form.get("body") or "").strip()
    if not body:
        flash("A note needs some text.")
        return _back(case_id)
    casework.add_note(_runtime().sessions, case_id, current_user.username, body[:5000])
    return _back(case_id)


# -- dashboard -----------------------------------------------------------------------------
@bp.get("/dashboard")
@needs(Permission.DASHBOARD_VIEW)
def dashboard_page() -> Any:
    return render_template("ui/dashboard.html", summary=dashboard.summary(_runtime().engine))


@bp.get("/dashboard/data.json")
@needs(Permission.DASHBOARD_VIEW)
def dashboard_data() -> Response:
    return jsonify(dashboard.series(_runtime().engine))
