"""UI fixtures: a seeded app, a logged-in Flask test client, and (for the browser tests) a live
server on loopback with Debian's Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from api import create_app
from riskctl.config import Settings
from riskctl.redisconn import EmbeddedRedis
from tests.conftest import fresh_database_url, migrated
from tests.ui.seed import Seeded, seed

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/ui/login") -> str:
    m = _TOKEN.search(client.get(path).get_data(as_text=True))
    assert m, f"no CSRF token on {path}"
    return m.group(1)


def login(client: FlaskClient, username: str, password: str) -> Any:
    return client.post(
        "/ui/login",
        data={"username": username, "password": password, "csrf_token": csrf_token(client)},
    )


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id, with the smallest parameters: the UI tests log in dozens of times, and
    the production parameters cost about a second per hash on a loaded 2-core machine."""
    from argon2 import PasswordHasher

    monkeypatch.setattr("riskctl.users._HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def seeded(app: Flask) -> Seeded:
    return seed(app, xss=False)


@pytest.fixture
def seeded_xss(app: Flask) -> Seeded:
    return seed(app, xss=True)


@pytest.fixture
def as_user(app: Flask, seeded: Seeded):  # type: ignore[no-untyped-def]
    """``as_user("mod")``: a test client logged in as that seeded user."""

    def make(name: str) -> FlaskClient:
        client = app.test_client()
        r = login(client, name, seeded.password)
        assert r.status_code == 302, r.get_data(as_text=True)
        return client

    return make


# -- the live server for the browser -------------------------------------------------------
class LiveApp:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveApp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@contextlib.contextmanager
def module_app(tmp: Path, redis_url: str) -> Iterator[Flask]:
    """A migrated app of its own (fresh database, emptied Redis) for a module's live pages,
    with argon2 at its smallest cost so that seeding a dozen users does not take minutes."""
    import redis
    from argon2 import PasswordHasher

    import riskctl.users

    saved = riskctl.users._HASHER
    riskctl.users._HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    settings = Settings(
        env="testing",
        instance_path=str(tmp / "instance"),
        redis_url=redis_url,
        database_url=fresh_database_url(tmp),
    )
    app = create_app(migrated(settings))
    try:
        yield app
    finally:
        app.extensions["riskctl"].close()
        riskctl.users._HASHER = saved


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[tuple[LiveApp, Seeded]]:
    with module_app(tmp_path_factory.mktemp("ui-live"), redis_server.url) as app:
        data = seed(app)
        with LiveApp(app) as server:
            yield server, data


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's /usr/bin/chromium (make system-deps installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
