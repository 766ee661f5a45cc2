"""Per-key rate limits: exactly L requests per window, then 429 problem+json with Retry-After.

In-process against the real Redis, and against a live gunicorn server with two workers and
concurrent clients (the count is shared through Redis, not per worker).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import func, select

from api import create_app
from riskctl.instruments import REDIS_ROUNDTRIPS
from riskctl.models import Decision
from tests import factories
from tests.conftest import make_key, migrated
from tests.live import start_server

LIMIT = 5


@pytest.fixture
def limited_app(settings):
    settings.rate_limit_requests = LIMIT
    settings.rate_limit_window_s = 600
    app = create_app(migrated(settings))
    yield app
    app.extensions["riskctl"].close()


def _check(client, key, event=None):
    return client.post(
        "/v1/checks",
        data=orjson.dumps(event or factories.order()),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


def _assert_limited(resp):
    assert resp.status_code == 429
    assert resp.mimetype == "application/problem+json"
    assert resp.json["type"] == "urn:riskctl:problem:rate-limited"
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= 600


def test_exactly_the_limit_of_checks_then_429_with_retry_after(limited_app):
    client = limited_app.test_client()
    key = make_key(limited_app, "pipeline")
    statuses = [_check(client, key).status_code for _ in range(LIMIT)]
    assert statuses == [200] * LIMIT
    _assert_limited(_check(client, key))
    _assert_limited(_check(client, key))


def test_a_limited_check_stores_and_counts_nothing(limited_app, redis_client):
    client = limited_app.test_client()
    runtime = limited_app.extensions["riskctl"]
    key = make_key(limited_app, "pipeline")
    for _ in range(LIMIT):
        assert _check(client, key, factories.order(buyer_id="rl-buyer")).status_code == 200
    before = {k: redis_client.dump(k) for k in redis_client.scan_iter() if not k.startswith(b"rk:rl:")}
    event = factories.order(buyer_id="rl-buyer")
    _assert_limited(_check(client, key, event))
    after = {k: redis_client.dump(k) for k in redis_client.scan_iter() if not k.startswith(b"rk:rl:")}
    assert after == before  # no velocity counter, dedupe key or list touched
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Decision)) == LIMIT
        assert session.scalar(select(Decision).where(Decision.event_id == event["event_id"])) is None


def test_each_check_is_still_one_redis_round_trip_allowed_or_refused(limited_app):
    client = limited_app.test_client()
    key = make_key(limited_app, "pipeline")
    before = REDIS_ROUNDTRIPS._value.get()
    for _ in range(LIMIT + 3):
        _check(client, key, factories.coupon())
    assert REDIS_ROUNDTRIPS._value.get() - before == LIMIT + 3


def test_limits_are_per_key(limited_app):
    client = limited_app.test_client()
    first, second = make_key(limited_app, "pipeline"), make_key(limited_app, "pipeline")
    for _ in range(LIMIT):
        assert _check(client, first).status_code == 200
    _assert_limited(_check(client, first))
    assert _check(client, second).status_code == 200


def test_other_routes_share_the_key_limit(limited_app):
    client = limited_app.test_client()
    key = make_key(limited_app, "analyst", "pipeline")
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(LIMIT - 1):
        assert client.get("/v1/lists", headers=headers).status_code == 200
    assert _check(client, key).status_code == 200  # the L-th request of the key
    _assert_limited(client.get("/v1/lists", headers=headers))
    _assert_limited(_check(client, key))


def test_routes_with_their_own_key_check_count_too(limited_app):
    client = limited_app.test_client()
    headers = {"Authorization": f"Bearer {make_key(limited_app, 'compliance')}"}
    for _ in range(LIMIT):
        assert client.get("/v1/complaints", headers=headers).status_code == 200
    _assert_limited(client.get("/v1/complaints", headers=headers))
    _assert_limited(client.get("/v1/cases/export.csv", headers=headers))


def test_zero_means_no_limit(settings):
    settings.rate_limit_requests = 0
    app = create_app(migrated(settings))
    try:
        client = app.test_client()
        key = make_key(app, "pipeline")
        assert all(_check(client, key).status_code == 200 for _ in range(12))
    finally:
        app.extensions["riskctl"].close()


def test_limit_settings_are_validated(settings):
    from riskctl.config import Settings
    from riskctl.errors import ConfigError

    with pytest.raises(ConfigError, match="RATE_LIMIT"):
        Settings.from_env({"RISKCTL_RATE_LIMIT_REQUESTS": "-1"})
    with pytest.raises(ConfigError, match="RATE_LIMIT"):
        Settings.from_env({"RISKCTL_RATE_LIMIT_WINDOW_S": "0"})


def test_redis_down_fails_open_for_non_check_routes(limited_app, tmp_path):
    limiter = limited_app.extensions["riskctl"].extras["rate_limiter"]
    dead = redis.Redis(
        unix_socket_path=str(tmp_path / "no-redis.sock"),
        socket_connect_timeout=0.05,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        limiter.client, limiter._script = dead, dead.register_script("return {0, 0}")
        for _ in range(LIMIT + 2):
            limiter.hit(1)  # no exception: unreachable Redis does not lock keys out
    finally:
        dead.close()


@pytest.mark.live
def test_live_server_two_workers_concurrent_clients_exact(tmp_path):
    limit = 30
    live = start_server(
        tmp_path / "instance",
        workers=2,
        extra_env={"RISKCTL_RATE_LIMIT_REQUESTS": str(limit), "RISKCTL_RATE_LIMIT_WINDOW_S": "3600"},
    )
    try:
        key = live.cli("keys", "create", "--scope", "pipeline").strip()
        metrics_key = live.cli("keys", "create", "--scope", "metrics").strip()

        def metric() -> float:
            req = urllib.request.Request(
                f"{live.url}/metrics", headers={"Authorization": f"Bearer {metrics_key}"}
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
            return sum(float(v) for v in re.findall(r"^riskctl_redis_roundtrips_total (\S+)$", text, re.M))

        def post(_: int) -> tuple[int, str | None, str]:
            req = urllib.request.Request(
                f"{live.url}/v1/checks",
                data=json.dumps(factories.order()).encode(),
                method="POST",
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.headers.get("Retry-After"), r.headers.get_content_type()
            except urllib.error.HTTPError as e:
                e.read()
                return e.code, e.headers.get("Retry-After"), e.headers.get_content_type()

        sent = limit + 20
        before = metric()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(post, range(sent)))
        after = metric()
        ok = [r for r in results if r[0] == 200]
        refused = [r for r in results if r[0] == 429]
        assert len(ok) == limit
        assert len(refused) == sent - limit
        assert all(r[1] is not None and int(r[1]) >= 1 for r in refused)
        assert all(r[2] == "application/problem+json" for r in refused)
        # one round trip per check, allowed or refused, plus the second /metrics read's own limiter call
        assert after - before == sent + 1
    finally:
        live.stop()
