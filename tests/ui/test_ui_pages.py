"""The UI through Flask's test client: login, CSRF, CSP, authorization and escaping."""

from __future__ import annotations

import re

from markupsafe import escape
from sqlalchemy import select

from api.ui import CSP
from riskctl.models import AuditEntry, Case
from riskctl.roles import Role, can
from tests.conftest import migrated
from tests.ui.conftest import csrf_token, login
from tests.ui.seed import XSS


def _cases(runtime, queue=None):
    with runtime.sessions() as s:
        q = select(Case).order_by(Case.priority.desc())
        if queue:
            q = q.where(Case.queue == queue)
        return list(s.scalars(q))


def _audit(runtime, action):
    with runtime.sessions() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_every_ui_page_needs_a_login(client, seeded, runtime):
    case_id = _cases(runtime)[0].id
    for path in (
        "/ui/",
        "/ui/queue/orders",
        f"/ui/cases/{case_id}",
        "/ui/dashboard",
        "/ui/dashboard/data.json",
        "/ui/queue/orders/next",
    ):
        r = client.get(path)
        assert r.status_code == 302 and "/ui/login" in r.headers["Location"], path
    assert client.get("/").headers["Location"].endswith("/ui/")


def test_every_ui_route_names_its_permission(app):
    """A new UI route without @needs (or an explicit public/login-only marker) fails here."""
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("ui."):
            continue
        view = app.view_functions[rule.endpoint]
        assert hasattr(view, "required_permission") or getattr(view, "public", False), rule.rule


def test_ui_route_role_matrix(app, seeded, runtime):
    """Every UI route for every role: a 403 exactly when the role lacks the route's permission."""
    case_id = _cases(runtime, "orders")[0].id
    by_role = {role: name for name, role in seeded.users.items() if name not in ("mod2", "locked")}
    assert set(by_role) == set(Role)
    checked = 0
    for role, username in by_role.items():
        client = app.test_client()
        assert login(client, username, seeded.password).status_code == 302
        token = _token_any(client)
        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith("ui."):
                continue
            perm = getattr(app.view_functions[rule.endpoint], "required_permission", None)
            path = rule.rule.replace("<case_id>", case_id).replace("<name>", "orders")
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                r = client.open(path, method=method, data={"csrf_token": token} if method == "POST" else None)
                where = f"{role} {method} {rule.rule}: {r.status_code}"
                if perm is None:
                    assert r.status_code != 403, where
                elif can(role, perm):
                    assert r.status_code not in (401, 403), where
                else:
                    assert r.status_code == 403, where
                checked += 1
                if rule.endpoint == "ui.logout":
                    assert login(client, username, seeded.password).status_code == 302
                    token = _token_any(client)
    assert checked >= 7 * 15


def _token_any(client):
    """A CSRF token from whichever page the user may open (rights holders see only errors)."""
    for path in ("/ui/queue/orders", "/ui/dashboard"):
        body = client.get(path).get_data(as_text=True)
        m = re.search(r'name="csrf_token" value="([^"]+)"', body)
        if m:
            return m.group(1)
    raise AssertionError("no page with a CSRF token")


def test_login_logs_in_audits_and_refuses_a_wrong_password(client, seeded, runtime):
    r = login(client, "mod", "wrong password!!")
    assert r.status_code == 401 and "Wrong username or password" in r.get_data(as_text=True)
    assert [a.actor for a in _audit(runtime, "login.failed")] == ["mod"]
    r = login(client, "mod", seeded.password)
    assert r.status_code == 302 and r.headers["Location"] == "/ui/"
    assert [a.actor for a in _audit(runtime, "login")] == ["mod"]
    assert "mod · moderator" in client.get("/ui/queue/orders").get_data(as_text=True)


def test_logins_are_rate_limited_per_username(client, seeded, runtime):
    for _ in range(5):
        assert login(client, "locked", "not the password").status_code == 401
    r = login(client, "locked", seeded.password)  # even the right password waits now
    assert r.status_code == 429
    assert len(_audit(runtime, "login.rate_limited")) == 1
    assert login(client, "mod", seeded.password).status_code == 302  # other users unaffected


def test_state_changes_without_a_csrf_token_are_refused(as_user, runtime):
    mod = as_user("mod")
    case_id = _cases(runtime, "orders")[0].id
    r = mod.post(f"/ui/cases/{case_id}/claim")
    assert r.status_code == 400
    assert _cases(runtime, "orders")[0].status == "open"
    r = mod.post(f"/ui/cases/{case_id}/claim", headers={"X-CSRFToken": "forged"})
    assert r.status_code == 400
    token = csrf_token(mod, "/ui/queue/orders")
    assert mod.post(f"/ui/cases/{case_id}/claim", headers={"X-CSRFToken": token}).status_code == 302
    assert _cases(runtime, "orders")[0].status == "claimed"


def test_login_form_needs_csrf_too(client, seeded):
    r = client.post("/ui/login", data={"username": "mod", "password": seeded.password})
    assert r.status_code == 400


def test_pages_send_a_strict_csp_and_carry_no_inline_script(app, as_user, runtime):
    mod = as_user("mod")
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP and "script-src 'self'" in CSP
    case_id = _cases(runtime)[0].id
    for client, path in (
        (mod, "/ui/queue/reviews"),
        (mod, f"/ui/cases/{case_id}"),
        (mod, "/ui/dashboard"),
        (app.test_client(), "/ui/login"),
    ):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["Content-Security-Policy"] == CSP
        body = r.get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", body):
            assert 'src="/static/' in tag, tag  # every script is a static file
        assert not re.search(r"\son[a-z]+\s*=", body), path  # no inline event handlers


def test_session_cookie_is_httponly_and_lax(client, seeded):
    r = login(client, "mod", seeded.password)
    cookie = next(c for c in r.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_moderator_is_refused_bulk_resolve_and_senior_is_not(as_user, runtime):
    ids = [c.id for c in _cases(runtime, "coupons")[:3]]
    assert len(ids) == 3
    mod = as_user("mod")
    assert 'name="case_id"' not in mod.get("/ui/queue/coupons").get_data(as_text=True)
    token = csrf_token(mod, "/ui/queue/coupons")
    r = mod.post(
        "/ui/bulk-resolve", data={"case_id": ids, "resolution": "false_positive", "csrf_token": token}
    )
    assert r.status_code == 403
    assert {c.status for c in _cases(runtime, "coupons") if c.id in ids} == {"open"}
    senior = as_user("senior")
    page = senior.get("/ui/queue/coupons").get_data(as_text=True)
    assert 'name="case_id"' in page
    token = csrf_token(senior, "/ui/queue/coupons")
    r = senior.post(
        "/ui/bulk-resolve", data={"case_id": ids, "resolution": "false_positive", "csrf_token": token}
    )
    assert r.status_code == 302
    done = {c.id: (c.status, c.resolution, c.resolved_by) for c in _cases(runtime, "coupons")}
    assert all(done[i] == ("resolved", "false_positive", "senior") for i in ids)


def test_roles_without_the_permission_get_403(as_user, runtime):
    case_id = _cases(runtime, "orders")[0].id
    analyst = as_user("analyst")
    assert analyst.get(f"/ui/cases/{case_id}").status_code == 200  # analysts read cases
    token = csrf_token(analyst, f"/ui/cases/{case_id}")
    assert analyst.post(f"/ui/cases/{case_id}/claim", data={"csrf_token": token}).status_code == 403
    holder = as_user("holder")
    assert holder.get("/ui/queue/orders").status_code == 403
    assert holder.get("/ui/dashboard").status_code == 403
    viewer = as_user("viewer")
    token = csrf_token(viewer, "/ui/queue/orders")
    assert (
        viewer.post(f"/ui/cases/{case_id}/notes", data={"csrf_token": token, "body": "x"}).status_code == 403
    )


def test_claim_resolve_and_an_illegal_move_is_409(as_user, runtime):
    case_id = _cases(runtime, "orders")[0].id
    mod, mod2 = as_user("mod"), as_user("mod2")
    t = csrf_token(mod, f"/ui/cases/{case_id}")
    assert mod.post(f"/ui/cases/{case_id}/claim", data={"csrf_token": t}).status_code == 302
    t2 = csrf_token(mod2, f"/ui/cases/{case_id}")
    r = mod2.post(f"/ui/cases/{case_id}/claim", data={"csrf_token": t2})
    assert r.status_code == 409 and "claimed by mod" in r.get_data(as_text=True)
    r = mod.post(
        f"/ui/cases/{case_id}/resolve",
        data={"csrf_token": t, "resolution": "confirmed_abuse", "action": ["cancel_order"]},
    )
    assert r.status_code == 302
    page = mod.get(f"/ui/cases/{case_id}").get_data(as_text=True)
    assert "confirmed_abuse" in page and "cancel_order" in page and "facts_and_circumstances" in page
    r = mod.post(f"/ui/cases/{case_id}/claim", data={"csrf_token": t})
    assert r.status_code == 409


def test_user_text_is_escaped_on_case_pages(app, seeded_xss, runtime):
    mod = app.test_client()
    assert login(mod, "mod", seeded_xss.password).status_code == 302
    shown = 0
    for queue in ("reviews", "ip"):
        for c in _cases(runtime, queue):
            body = mod.get(f"/ui/cases/{c.id}").get_data(as_text=True)
            for payload in XSS:
                if str(escape(payload)) in body:
                    shown += 1
                assert payload not in body or ("<" not in payload and '"' not in payload)
    assert shown >= 2 * len(XSS)  # each payload appears, escaped, in a review and a listing


def test_notes_are_escaped(as_user, runtime):
    mod = as_user("mod")
    case_id = _cases(runtime, "orders")[0].id
    token = csrf_token(mod, f"/ui/cases/{case_id}")
    for payload in XSS[:4]:
        assert (
            mod.post(f"/ui/cases/{case_id}/notes", data={"csrf_token": token, "body": payload}).status_code
            == 302
        )
    body = mod.get(f"/ui/cases/{case_id}").get_data(as_text=True)
    for payload in XSS[:4]:
        assert str(escape(payload)) in body
        assert payload not in body or ("<" not in payload and '"' not in payload)


def test_open_redirect_after_login_is_refused(client, seeded):
    token = csrf_token(client)
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        r = client.post(
            "/ui/login",
            data={"username": "mod", "password": seeded.password, "csrf_token": token, "next": target},
        )
        assert r.headers["Location"] == "/ui/", target
        client.post("/ui/logout", data={"csrf_token": csrf_token(client, "/ui/queue/orders")})
        token = csrf_token(client)


def test_dashboard_data(as_user, runtime):
    analyst = as_user("analyst")
    data = analyst.get("/ui/dashboard/data.json").get_json()
    assert set(data) == {"cases_per_day", "decisions_per_day", "outcomes", "rule_precision"}
    opened = sum(sum(d["data"]) for d in data["cases_per_day"]["datasets"])
    assert opened == len(_cases(runtime))
    assert {d["label"] for d in data["decisions_per_day"]["datasets"]} >= {"review"}


def test_cookies_are_secure_in_production(settings):
    from dataclasses import replace

    from api import create_app

    prod = create_app(migrated(replace(settings, env="production", secret_key="s" * 40)))
    try:
        assert prod.config["SESSION_COOKIE_SECURE"] and prod.config["REMEMBER_COOKIE_SECURE"]
        assert prod.config["SESSION_COOKIE_HTTPONLY"] and prod.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    finally:
        prod.extensions["riskctl"].close()
