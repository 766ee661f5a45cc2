"""Fixtures: a real embedded Redis server for the session, a real SQLite file per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from riskctl.apikeys import create_key
from riskctl.config import Settings
from riskctl.db import make_engine
from riskctl.migrate import upgrade
from riskctl.redisconn import EmbeddedRedis

# `make test-postgres` runs the whole suite against PostgreSQL through this variable.
POSTGRES_URL = os.environ.get("RISKCTL_TEST_DATABASE_URL", "")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RISKCTL_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("RISKCTL_") or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    client = redis.Redis(unix_socket_path=str(redis_server.socket_path))
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def fresh_database_url(tmp_path: Path) -> str:
    """A SQLite file per test, or an emptied PostgreSQL database under test-postgres."""
    if not POSTGRES_URL:
        return ""
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    return Settings(
        env="testing",
        instance_path=str(tmp_path / "instance"),
        redis_url=redis_url,
        database_url=fresh_database_url(tmp_path),
    )


def migrated(settings: Settings) -> Settings:
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    engine.dispose()
    return settings


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(migrated(settings))
    yield app
    app.extensions["riskctl"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runtime(app: Flask):  # type: ignore[no-untyped-def]
    return app.extensions["riskctl"]


def make_key(app: Flask, *scopes: str) -> str:
    return create_key(app.extensions["riskctl"].sessions, "test", list(scopes))


@pytest.fixture
def pipeline_headers(app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(app, 'pipeline')}"}
