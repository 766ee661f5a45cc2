"""Everything the app wires together, built in one place (``create_app`` calls this)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from riskctl.apikeys import KeyVerifier
from riskctl.brand_registry import RegistryHolder
from riskctl.cases import DEFAULT_QUEUES, DEFAULT_SLA_HOURS, Routing
from riskctl.checks import CheckService
from riskctl.complaints import ComplaintService, MergedRegistry, load_calendar
from riskctl.config import Settings
from riskctl.db import WalCheckpointer, make_engine, make_sessionmaker, sqlite_path
from riskctl.detection import ModelStore, detector_schema, load_specs
from riskctl.extraction import STATIC_SCHEMA
from riskctl.features import FeatureSchema
from riskctl.listing_enricher import LISTING_SCHEMA, ListingEnricher
from riskctl.lists import ListStore
from riskctl.lists import schema as list_schema
from riskctl.policy import PolicyHolder
from riskctl.pseudonym import Pseudonymizer
from riskctl.ratelimit import RateLimiter
from riskctl.redisconn import EmbeddedRedis, make_client
from riskctl.reputation import ReputationConfig, ReputationStore
from riskctl.reputation import schema as reputation_schema
from riskctl.review_text import TEXT_SCHEMA, ReviewTextEnricher, TextModelStore
from riskctl.velocity import Velocity

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis
    pseudonymizer: Pseudonymizer
    velocity: Velocity
    lists: ListStore
    policy: PolicyHolder
    checks: CheckService
    keys: KeyVerifier
    models: ModelStore
    embedded_redis: EmbeddedRedis | None = None
    checkpointer: WalCheckpointer | None = None
    extras: dict[str, object] = field(default_factory=dict)

    def detectors_ready(self) -> bool:
        return self.models.ready()

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.checks.close()
        self.redis.close()
        self.engine.dispose()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


def build_runtime(settings: Settings) -> Runtime:
    settings.instance.mkdir(parents=True, exist_ok=True)
    brands = RegistryHolder(settings.brand_registry)  # first: a broken registry opens nothing
    calendar = load_calendar(settings.complaint_calendar)  # likewise a broken complaint calendar
    # the service's commits never checkpoint the SQLite WAL inline: a thread does (riskctl.db)
    engine = make_engine(
        settings.effective_database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        checkpoint="background",
    )
    db_file = sqlite_path(engine)
    checkpointer = (
        WalCheckpointer(db_file, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        if db_file is not None
        else None
    )
    sessions = make_sessionmaker(engine)

    embedded = None
    redis_url = settings.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(Path(settings.instance) / "redis").start()
        redis_url = embedded.url
    client = make_client(
        redis_url,
        connect_timeout_ms=settings.redis_connect_timeout_ms,
        socket_timeout_ms=settings.redis_socket_timeout_ms,
    )
    pseudo = Pseudonymizer(settings.effective_pseudonym_key)
    velocity = Velocity(client, pseudo, settings.velocity_windows, link_types=settings.coupon_link_types)
    try:
        velocity.load_script()
    except redis.RedisError as exc:
        # Not fatal: checks run degraded until Redis is back, and the script loads then.
        log.warning("redis unavailable at start-up: %s", exc)

    lists = ListStore(sessions, client, pseudo)
    try:
        lists.sync_if_needed()
    except (redis.RedisError, SQLAlchemyError) as exc:
        # Redis down or the schema not migrated yet: checks still run (degraded), and
        # the next start or `riskctl lists sync` brings Redis up to date.
        log.warning("list sync skipped: %s", exc)
    base_schema = FeatureSchema(
        [
            *STATIC_SCHEMA,
            *velocity.schema(),
            *list_schema(),
            *TEXT_SCHEMA,
            *LISTING_SCHEMA,
            *reputation_schema(),
        ]
    )
    try:
        specs = load_specs(Path(settings.detectors_config), base_schema)
        models = ModelStore(settings.instance / "models", specs)
        schema = base_schema.merged(detector_schema(specs))
        policy = PolicyHolder(Path(settings.rules_path), schema)
    except Exception:
        # A broken rule pack or detector spec refuses the start: release what was opened.
        client.close()
        engine.dispose()
        if embedded is not None:
            embedded.stop()
        raise
    text_models = TextModelStore(settings.instance / "models")
    reputation = ReputationStore(
        sessions, client, pseudo, ReputationConfig(half_life_days=settings.reputation_half_life_days)
    )
    # the listing matcher protects the fixture/file registry plus the brands rights holders registered
    merged_brands = MergedRegistry(brands, sessions)
    checks = CheckService(
        sessions,
        velocity,
        lists,
        policy,
        pseudo,
        detectors=models.current,
        fallback=settings.degraded_fallback,
        deadline_ms=settings.check_deadline_ms,
        routing=Routing(
            {**DEFAULT_QUEUES, **settings.case_routing}, {**DEFAULT_SLA_HOURS, **settings.case_sla_hours}
        ),
        enrichers=[ReviewTextEnricher(text_models), ListingEnricher(merged_brands)],  # type: ignore[arg-type]
        reputation=reputation,
    )
    policy.on_change = _audit_rule_pack(engine)
    keys = KeyVerifier(sessions, cache_seconds=settings.api_key_cache_s)
    runtime = Runtime(
        settings,
        engine,
        sessions,
        client,
        pseudo,
        velocity,
        lists,
        policy,
        checks,
        keys,
        models,
        embedded,
        checkpointer.start() if checkpointer is not None else None,
    )
    runtime.extras["review_text"] = text_models
    runtime.extras["rate_limiter"] = RateLimiter(
        client, settings.rate_limit_requests, settings.rate_limit_window_s
    )
    runtime.extras["brand_registry"] = brands
    runtime.extras["reputation"] = reputation
    runtime.extras["registered_brands"] = merged_brands
    runtime.extras["complaints"] = ComplaintService(sessions, reputation, calendar)
    return runtime


def _audit_rule_pack(engine: Engine) -> Callable[[str, str], None]:
    """Record each new rule pack version going live (once per worker that loads it)."""
    import os

    from riskctl import audit

    def on_change(old: str, new: str) -> None:
        try:
            with engine.begin() as conn:
                audit.append(
                    conn,
                    "rules",
                    "rulepack.live",
                    f"rulepack:{new[:40]}",
                    {"previous": old, "pid": os.getpid()},
                )
        except SQLAlchemyError as exc:
            log.error("rule pack %s is live but the audit row failed: %s", new, exc)

    return on_change
