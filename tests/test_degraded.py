"""A dependency that is down never turns a check into a 500 or a hang."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from api import create_app
from riskctl.config import Settings
from riskctl.redisconn import EmbeddedRedis
from tests import factories
from tests.conftest import fresh_database_url, make_key, migrated


@pytest.fixture
def own_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "own-redis").start()
    yield server
    if server.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGCONT)
    server.stop()


def _app(tmp_path, redis_url, **over):
    settings = Settings(
        env="testing",
        instance_path=str(tmp_path / "inst"),
        redis_url=redis_url,
        database_url=fresh_database_url(tmp_path),
        **over,
    )
    return create_app(migrated(settings))


def test_redis_unreachable_gives_degraded_answer_with_fallback(tmp_path):
    app = _app(
        tmp_path,
        "redis://127.0.0.1:1/0",
        degraded_fallback={
            "order": "allow",
            "review": "allow",
            "coupon_redemption": "review",
            "listing": "allow",
        },
    )
    try:
        headers = {"Authorization": f"Bearer {make_key(app, 'pipeline')}"}
        client = app.test_client()
        r = client.post("/v1/checks", json=factories.coupon(), headers=headers)
        assert r.status_code == 200
        body = r.get_json()
        assert body["degraded"] is True
        assert body["outcome"] == "review"  # the configured floor for coupons
        detail = client.get(f"/v1/decisions/{body['decision_id']}", headers=headers).get_json()
        assert detail["features"]["velocity.device.accounts_24h"] is None
        r = client.post("/v1/checks", json=factories.order(), headers=headers)
        assert (r.status_code, r.get_json()["degraded"], r.get_json()["outcome"]) == (200, True, "allow")
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["redis"] is False
    finally:
        app.extensions["riskctl"].close()


def test_redis_stopped_frozen_and_back(tmp_path, own_redis):
    app = _app(tmp_path, own_redis.url, check_deadline_ms=250)
    try:
        headers = {"Authorization": f"Bearer {make_key(app, 'pipeline')}"}
        client = app.test_client()
        assert (
            client.post("/v1/checks", json=factories.order(), headers=headers).get_json()["degraded"] is False
        )

        os.kill(own_redis.pid, signal.SIGSTOP)  # frozen: connections hang, replies never come
        started = time.monotonic()
        for _ in range(5):
            r = client.post("/v1/checks", json=factories.order(), headers=headers)
            assert r.status_code == 200
            assert r.get_json()["degraded"] is True
        assert (time.monotonic() - started) / 5 < 0.25  # within the check deadline, on average
        os.kill(own_redis.pid, signal.SIGCONT)

        time.sleep(1.1)  # the breaker's cool-down; then a probe finds Redis again
        r = client.post("/v1/checks", json=factories.order(), headers=headers)
        assert r.get_json()["degraded"] is False
    finally:
        app.extensions["riskctl"].close()


def test_redis_restarted_service_resumes_by_itself(tmp_path, own_redis):
    app = _app(tmp_path, own_redis.url)
    try:
        headers = {"Authorization": f"Bearer {make_key(app, 'pipeline')}"}
        client = app.test_client()
        own_redis.stop()
        r = client.post("/v1/checks", json=factories.review(), headers=headers)
        assert (r.status_code, r.get_json()["degraded"]) == (200, True)
        own_redis.start()
        time.sleep(1.1)
        r = client.post("/v1/checks", json=factories.review(), headers=headers)
        assert (r.status_code, r.get_json()["degraded"]) == (200, False)
    finally:
        app.extensions["riskctl"].close()
