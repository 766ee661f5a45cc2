"""What the cheaper per-request Flask layer must keep: the UI session, the metrics, the log line,
the headers (api.auth.CookieSessionInterface, api.observability's bound label children)."""

from __future__ import annotations

import json
import logging
import re
import urllib.request
import uuid

import pytest
from flask.sessions import SecureCookieSessionInterface

from tests import factories
from tests.conftest import make_key
from tests.live import start_server

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery staple"
PAGE = "/ui/queue/orders"  # a page that needs a login


@pytest.fixture
def moderator(app, monkeypatch):  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher

    from riskctl.users import create_user

    monkeypatch.setattr("riskctl.users._HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    create_user(app.extensions["riskctl"].sessions, "mod", PASSWORD, "moderator")
    return "mod"


def _token(client, path="/ui/login"):  # type: ignore[no-untyped-def]
    m = _TOKEN.search(client.get(path).get_data(as_text=True))
    assert m, f"no CSRF token on {path}"
    return m.group(1)


def _login(client, username):  # type: ignore[no-untyped-def]
    return client.post(
        "/ui/login", data={"username": username, "password": PASSWORD, "csrf_token": _token(client)}
    )


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for m in re.finditer(rf"^{name}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def test_the_signing_serializer_is_built_once_per_key(app, client, moderator):
    # Flask's own interface builds a new one on every call; ours keeps it while the key stays
    assert _login(client, moderator).status_code == 302
    first = app.session_interface.get_signing_serializer(app)
    assert client.get(PAGE).status_code == 200
    assert app.session_interface.get_signing_serializer(app) is first


def test_ui_login_session_and_csrf_still_work(app, client, moderator, pipeline_headers):
    assert client.get(PAGE).status_code == 302  # no session: to the login page
    r = _login(client, moderator)
    assert r.status_code == 302, r.get_data(as_text=True)
    assert "session=" in r.headers.get("Set-Cookie", "")
    assert client.get(PAGE).status_code == 200  # the signed cookie opens the session again
    # an API call from a client carrying the session cookie neither needs nor disturbs it
    r = client.post("/v1/checks", json=factories.order(), headers=pipeline_headers)
    assert r.status_code == 200
    assert "Set-Cookie" not in r.headers
    assert client.get(PAGE).status_code == 200
    # CSRF: a forged token is refused, the session's token is accepted
    assert client.post("/ui/logout", headers={"X-CSRFToken": "forged"}).status_code == 400
    assert client.post("/ui/logout", headers={"X-CSRFToken": _token(client, PAGE)}).status_code in (302, 303)
    assert client.get(PAGE).status_code == 302  # logged out


def test_session_cookies_are_flasks_own(app, moderator):
    """A cookie signed here opens under Flask's stock interface and the other way round, so
    workers of either kind (a rolling restart) read each other's sessions."""
    client = app.test_client()
    assert _login(client, moderator).status_code == 302
    cookie = client.get_cookie("session")
    assert cookie is not None
    stock = SecureCookieSessionInterface()
    with app.test_request_context(PAGE, headers={"Cookie": f"session={cookie.value}"}) as ctx:
        opened = stock.open_session(app, ctx.request)
        assert opened is not None and opened.get("_user_id")
        ours = app.session_interface.open_session(app, ctx.request)
        assert dict(ours) == dict(opened)
    signed = stock.get_signing_serializer(app).dumps({"probe": 1})  # type: ignore[union-attr]
    with app.test_request_context(PAGE, headers={"Cookie": f"session={signed}"}) as ctx:
        assert dict(app.session_interface.open_session(app, ctx.request)) == {"probe": 1}


def test_a_new_secret_key_is_honoured_with_its_fallbacks(app, moderator):
    client = app.test_client()
    assert _login(client, moderator).status_code == 302
    assert client.get(PAGE).status_code == 200
    cookie = client.get_cookie("session").value  # type: ignore[union-attr]
    old = app.secret_key
    app.secret_key = "another-secret-key-of-at-least-32-characters"
    assert client.get(PAGE).status_code == 302  # the cached serializer is not the old key's
    app.config["SECRET_KEY_FALLBACKS"] = [old]
    client.set_cookie("session", cookie)  # the refusal above replaced it (the login page's flash)
    assert client.get(PAGE).status_code == 200


def test_api_responses_keep_their_headers(client, pipeline_headers):
    r = client.post("/v1/checks", json=factories.order(), headers=pipeline_headers)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.headers["Vary"] == "Cookie"  # as Flask adds it: Flask-Login reads the session on every response
    assert "Set-Cookie" not in r.headers
    rid = r.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid) and uuid.UUID(rid).version == 4
    r = client.post(
        "/v1/checks",
        json=factories.order(),
        headers={**pipeline_headers, "X-Request-ID": "pipeline-req-0001"},
    )
    assert r.headers["X-Request-ID"] == "pipeline-req-0001"
    r = client.post("/v1/checks", data=b"{}", headers={**pipeline_headers, "Content-Type": "text/plain"})
    assert (r.status_code, r.mimetype) == (415, "application/problem+json")
    assert r.json["request_id"] == r.headers["X-Request-ID"]
    assert "not text/plain" in r.json["detail"]
    r = client.post(
        "/v1/checks",
        data=json.dumps(factories.order()),
        headers={**pipeline_headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200


def test_metrics_count_requests_by_route_and_status(app, client, pipeline_headers):
    metrics = {"Authorization": f"Bearer {make_key(app, 'metrics')}"}
    before = client.get("/metrics", headers=metrics).get_data(as_text=True)
    event = factories.order()
    for _ in range(2):
        assert client.post("/v1/checks", json=factories.order(), headers=pipeline_headers).status_code == 200
    assert client.post("/v1/checks", json=event, headers=pipeline_headers).status_code == 200
    assert client.post("/v1/checks", json=event, headers=pipeline_headers).status_code == 200  # a replay
    client.post("/v1/checks", data=b"x", headers={**pipeline_headers, "Content-Type": "text/plain"})
    client.post("/v1/checks", json=event)  # no key
    client.get("/v1/nothing-here", headers=pipeline_headers)
    after = client.get("/metrics", headers=metrics).get_data(as_text=True)

    def delta(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    http = "riskctl_http_requests_total"
    assert delta(http, method="POST", endpoint="/v1/checks", status="200") == 4
    assert delta(http, method="POST", endpoint="/v1/checks", status="415") == 1
    assert delta(http, method="POST", endpoint="/v1/checks", status="401") == 1
    assert delta(http, method="GET", endpoint="unmatched", status="404") == 1
    assert delta(http, method="GET", endpoint="/metrics", status="200") == 1  # the first scrape
    # the replay answers but is not a new decision
    assert delta("riskctl_decisions_total", kind="order", degraded="false") == 3
    assert delta("riskctl_check_duration_seconds_count", kind="order") == 3


def test_the_access_log_line_keeps_its_fields(client, pipeline_headers, caplog):
    with caplog.at_level(logging.INFO, logger="riskctl.access"):
        r = client.post("/v1/checks", json=factories.order(), headers=pipeline_headers)
        client.post("/v1/checks", json=factories.order())  # no key: 401
    ok, denied = [rec for rec in caplog.records if rec.name == "riskctl.access"][-2:]
    assert ok.getMessage() == "request"
    assert (ok.method, ok.path, ok.status) == ("POST", "/v1/checks", 200)
    assert ok.request_id == r.headers["X-Request-ID"]
    assert ok.decision_id == r.json["decision_id"] and ok.outcome == r.json["outcome"]
    assert isinstance(ok.key_id, int) and isinstance(ok.duration_ms, float) and ok.duration_ms > 0
    assert (denied.status, denied.key_id, denied.decision_id, denied.outcome) == (401, None, None, None)


@pytest.mark.live
def test_http_request_metrics_add_up_across_workers(tmp_path):
    """Multiprocess mode (gunicorn, PROMETHEUS_MULTIPROC_DIR): each worker's bound children
    write to its own files, and /metrics sums them per route and status."""
    live = start_server(tmp_path / "instance", workers=2)
    try:
        key = live.cli("keys", "create", "--scope", "pipeline").strip()
        metrics_key = live.cli("keys", "create", "--scope", "metrics").strip()
        n = 30
        for i in range(n):  # a new connection each time: gunicorn spreads them over both workers
            req = urllib.request.Request(
                f"{live.url}/v1/checks",
                data=json.dumps(factories.order()).encode(),
                method="POST",
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "application/json" if i % 3 else "text/plain",
                },
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    assert r.status == 200
            except urllib.error.HTTPError as e:
                assert e.code == 415
        req = urllib.request.Request(
            f"{live.url}/metrics", headers={"Authorization": f"Bearer {metrics_key}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
    finally:
        live.stop()
    http = "riskctl_http_requests_total"
    assert _metric(text, http, method="POST", endpoint="/v1/checks", status="200") == 20
    assert _metric(text, http, method="POST", endpoint="/v1/checks", status="415") == 10
    assert _metric(text, "riskctl_decisions_total", kind="order") == 20
    assert _metric(text, "riskctl_check_duration_seconds_count", kind="order") == 20
