"""Context shared by the ``riskctl`` commands: settings, the database, Redis-backed stores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from riskctl.config import Settings


def settings() -> Settings:
    return Settings.from_env()


@contextmanager
def database(settings: Settings) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    from riskctl.db import make_engine, make_sessionmaker

    engine = make_engine(settings.effective_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        yield engine, make_sessionmaker(engine)
    finally:
        engine.dispose()


@contextmanager
def redis_client(settings: Settings) -> Iterator[Any]:
    """A client for the configured Redis, or an embedded one started for the command."""
    import redis as redis_lib

    from riskctl.redisconn import EmbeddedRedis, make_client

    embedded = None
    url = settings.redis_url
    if not url:
        embedded = EmbeddedRedis(settings.instance / "redis").start()
        url = embedded.url
    client = make_client(url, connect_timeout_ms=2000, socket_timeout_ms=5000)
    try:
        yield client
    except redis_lib.RedisError as exc:
        raise click.ClickException(f"redis: {exc}") from None
    finally:
        client.close()
        if embedded is not None:
            embedded.stop()


@contextmanager
def list_store() -> Iterator[Any]:
    from riskctl.lists import ListStore
    from riskctl.pseudonym import Pseudonymizer

    cfg = settings()
    with redis_client(cfg) as client, database(cfg) as (_, sessions):
        yield ListStore(sessions, client, Pseudonymizer(cfg.effective_pseudonym_key))


def routing(settings: Settings) -> Any:
    from riskctl.cases import DEFAULT_QUEUES, DEFAULT_SLA_HOURS, Routing

    return Routing({**DEFAULT_QUEUES, **settings.case_routing}, {**DEFAULT_SLA_HOURS, **settings.case_sla_hours})


def when(value: str | None) -> datetime | None:
    """A ``--since``/``--until`` value: YYYY-MM-DD or an ISO time (UTC when it has no offset)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or an ISO time)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
