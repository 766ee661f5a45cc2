"""Settings: code defaults, then ``RISKCTL_*`` environment variables.

Every setting is declared once in :data:`SETTINGS` with its type, default and a one-line
description; the README's configuration table is generated from the same list
(``riskctl config table``), so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from riskctl.errors import ConfigError

DEV_SECRET = "dev-insecure-secret-do-not-use-in-production"  # noqa: S105 - refused in production
KINDS = ("order", "review", "coupon_redemption", "listing")


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean, got {text!r}")


def _windows(text: str) -> tuple[str, ...]:
    from riskctl.windows import parse_window  # local: windows imports nothing from here

    names = tuple(w.strip() for w in text.split(",") if w.strip())
    if not names:
        raise ValueError("at least one window is required")
    for name in names:
        parse_window(name)
    return names


def _link_types(text: str) -> tuple[str, ...]:
    from detectors.linkgraph import LINK_TYPES

    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [n for n in names if n not in LINK_TYPES]
    if unknown:
        raise ValueError(f"unknown link types {unknown}; choose from {', '.join(LINK_TYPES)}")
    return names


def _fallbacks(text: str) -> dict[str, str]:
    """``order=allow,review=allow,...``: the outcome floor of a degraded check per kind."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        kind, _, outcome = part.partition("=")
        kind, outcome = kind.strip(), outcome.strip().lower()
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r} in fallback list")
        if outcome not in {"allow", "review", "block"}:
            raise ValueError(f"unknown outcome {outcome!r} for {kind}")
        out[kind] = outcome
    return out


QUEUES = ("orders", "reviews", "coupons", "ip")


def _routing(text: str) -> dict[str, str]:
    """``order=orders,listing=ip,...``: the queue each event kind's cases go to."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        kind, _, queue = (x.strip() for x in part.partition("="))
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r} in case routing")
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r} for {kind}; queues are {', '.join(QUEUES)}")
        out[kind] = queue
    return out


def _sla_hours(text: str) -> dict[str, float]:
    """``orders=24,reviews=48,...``: hours from a case opening to its SLA due time."""
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        queue, _, hours = part.partition("=")
        value = float(hours)
        if not 0 < value <= 24 * 90:
            raise ValueError(f"SLA for {queue.strip()!r} must be between 0 and 2160 hours")
        out[queue.strip()] = value
    return out


@dataclass(frozen=True)
class Setting:
    name: str  # attribute on Settings; env var is RISKCTL_<NAME>
    parse: Callable[[str], Any]
    description: str

    @property
    def env(self) -> str:
        return f"RISKCTL_{self.name.upper()}"


@dataclass
class Settings:
    env: str = "development"
    secret_key: str = DEV_SECRET
    pseudonym_key: str = ""
    instance_path: str = "instance"
    database_url: str = ""
    redis_url: str = ""
    redis_connect_timeout_ms: int = 100
    redis_socket_timeout_ms: int = 50
    check_deadline_ms: int = 250
    max_body_bytes: int = 64 * 1024
    rules_path: str = str(Path(__file__).resolve().parent.parent / "rules")
    detectors_config: str = str(Path(__file__).resolve().parent.parent / "detectors.yaml")
    brand_registry: str = str(Path(__file__).resolve().parent.parent / "fixtures" / "brand_registry.yaml")
    velocity_windows: tuple[str, ...] = ("10m", "1h", "24h", "30d")
    coupon_link_types: tuple[str, ...] = ("device", "payment", "address")
    degraded_fallback: dict[str, str] = field(default_factory=lambda: {k: "allow" for k in KINDS})
    case_routing: dict[str, str] = field(
        default_factory=lambda: {
            "order": "orders",
            "review": "reviews",
            "coupon_redemption": "coupons",
            "listing": "ip",
        }
    )
    case_sla_hours: dict[str, float] = field(
        default_factory=lambda: {"orders": 24.0, "reviews": 48.0, "coupons": 12.0, "ip": 72.0}
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    threads: int = 1
    worker_timeout_s: int = 30
    graceful_timeout_s: int = 20
    log_level: str = "INFO"
    sqlite_busy_timeout_ms: int = 5000
    api_key_cache_s: int = 30
    rate_limit_requests: int = 100_000
    rate_limit_window_s: int = 60
    demo_data: bool = True
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_timeout_s: float = 5.0
    outbox_max_attempts: int = 8
    case_claim_minutes: int = 30
    reputation_half_life_days: float = 90.0
    complaint_calendar: str = ""
    metrics_dir: str = ""

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def instance(self) -> Path:
        return Path(self.instance_path).resolve()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.instance / 'riskctl.db'}"

    @property
    def effective_metrics_dir(self) -> Path:
        """Where gunicorn workers share their Prometheus values (memory-mapped files, written
        on every request). On tmpfs by default: on a disk, the kernel's writeback of those
        pages stalled requests (the check API's p99.9); the values are wiped at each start anyway."""
        if self.metrics_dir:
            return Path(self.metrics_dir).resolve()
        # shared by every user: `riskctl serve` removes what is there and creates the
        # directory itself (mode 0700), and refuses to start if it cannot
        shm = Path("/dev/shm")  # noqa: S108
        if shm.is_dir() and os.access(shm, os.W_OK):
            tag = hashlib.sha256(str(self.instance).encode()).hexdigest()[:12]
            return shm / f"riskctl-metrics-{os.getuid()}-{tag}"
        return self.instance / "prometheus"

    @property
    def effective_pseudonym_key(self) -> bytes:
        # A separate key lets an operator rotate the session secret without re-keying
        # every velocity counter; by default it is derived from the secret.
        return (self.pseudonym_key or f"pseudonym:{self.secret_key}").encode()

    def validate(self) -> None:
        if self.env not in {"development", "production", "testing"}:
            raise ConfigError(f"RISKCTL_ENV must be development, production or testing, not {self.env!r}")
        if self.production and (self.secret_key == DEV_SECRET or len(self.secret_key) < 32):
            raise ConfigError(
                "refusing to start in production with the development secret: "
                "set RISKCTL_SECRET_KEY to a random value of at least 32 characters"
            )
        if not 1024 <= self.max_body_bytes <= 16 * 1024 * 1024:
            raise ConfigError("RISKCTL_MAX_BODY_BYTES must be between 1 KiB and 16 MiB")
        if self.production and self.webhook_url and len(self.webhook_secret) < 32:
            raise ConfigError(
                "RISKCTL_WEBHOOK_SECRET must be set (32+ characters) when RISKCTL_WEBHOOK_URL is"
            )
        if self.outbox_max_attempts < 1 or self.case_claim_minutes < 1:
            raise ConfigError("RISKCTL_OUTBOX_MAX_ATTEMPTS and RISKCTL_CASE_CLAIM_MINUTES must be at least 1")
        if self.rate_limit_requests < 0 or not 1 <= self.rate_limit_window_s <= 86_400:
            raise ConfigError(
                "RISKCTL_RATE_LIMIT_REQUESTS must be 0 (no limit) or more, RISKCTL_RATE_LIMIT_WINDOW_S 1 to 86400"
            )
        if self.check_deadline_ms <= 0:
            raise ConfigError("RISKCTL_CHECK_DEADLINE_MS must be positive")
        if self.redis_connect_timeout_ms + self.redis_socket_timeout_ms >= self.check_deadline_ms:
            raise ConfigError(
                "RISKCTL_REDIS_CONNECT_TIMEOUT_MS + RISKCTL_REDIS_SOCKET_TIMEOUT_MS must be below "
                "RISKCTL_CHECK_DEADLINE_MS, or a hung Redis could hold a check past its deadline"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = environ.get(setting.env)
            if raw is None:
                continue
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{setting.env}: {exc}") from None
        values.update(overrides)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown settings: {sorted(unknown)}")
        settings = cls(**values)
        settings.validate()
        return settings


SETTINGS: tuple[Setting, ...] = (
    Setting("env", str, "`development`, `testing` or `production` (production refuses the dev secret)"),
    Setting("secret_key", str, "signs sessions and CSRF tokens; required (32+ chars) in production"),
    Setting(
        "pseudonym_key",
        str,
        "HMAC key for device ids, IPs, card fingerprints (default: derived from the secret)",
    ),
    Setting("instance_path", str, "folder for runtime state: SQLite file, embedded Redis, models, logs"),
    Setting(
        "database_url",
        str,
        "SQLAlchemy URL; default `sqlite:///<instance>/riskctl.db`; PostgreSQL: `postgresql+psycopg://…`",
    ),
    Setting(
        "redis_url",
        str,
        "`redis://` or `unix://` URL; empty = start an embedded Redis in the instance folder",
    ),
    Setting("redis_connect_timeout_ms", int, "Redis connect timeout"),
    Setting("redis_socket_timeout_ms", int, "Redis read/write timeout on the check path"),
    Setting(
        "check_deadline_ms", int, "budget of one risk check; a slow dependency makes the answer `degraded`"
    ),
    Setting("max_body_bytes", int, "largest accepted request body (default 64 KiB)"),
    Setting(
        "rules_path",
        str,
        "rule pack folder or file (default: `rules/` of this checkout); edits go live in every worker within a second",
    ),
    Setting(
        "detectors_config",
        str,
        "detector specs (features, algorithm, contamination, score); default `detectors.yaml` of this checkout",
    ),
    Setting(
        "brand_registry",
        str,
        "brand registry YAML for listing matching (default: the fixture `fixtures/brand_registry.yaml`); edits go live within a second",
    ),
    Setting("velocity_windows", _windows, "sliding windows for velocity features, e.g. `10m,1h,24h,30d`"),
    Setting(
        "coupon_link_types",
        _link_types,
        "what links accounts in the coupon link graph: `device,payment,address` and optionally `ip24` (shared NATs over-link)",
    ),
    Setting(
        "degraded_fallback",
        _fallbacks,
        "outcome floor per kind when degraded, e.g. `order=allow,coupon_redemption=review`",
    ),
    Setting(
        "case_routing",
        _routing,
        "the queue each event kind's cases (and scan findings) go to, e.g. `listing=ip,coupon_redemption=coupons`",
    ),
    Setting(
        "case_sla_hours",
        _sla_hours,
        "hours from a case opening to its SLA due time, per queue (`orders`, `reviews`, `coupons`, `ip`)",
    ),
    Setting("host", str, "address `riskctl serve` binds"),
    Setting("port", int, "port `riskctl serve` binds (default 8000)"),
    Setting("workers", int, "gunicorn worker processes"),
    Setting("threads", int, "threads per gunicorn worker"),
    Setting("worker_timeout_s", int, "gunicorn worker timeout"),
    Setting("graceful_timeout_s", int, "gunicorn graceful shutdown timeout"),
    Setting("log_level", str, "log level (JSON logs on stderr)"),
    Setting("sqlite_busy_timeout_ms", int, "SQLite busy timeout"),
    Setting("api_key_cache_s", int, "seconds a verified API key is cached per worker (revocation delay)"),
    Setting(
        "rate_limit_requests",
        int,
        "requests one API key may make per window, over all workers (Redis); the next gets 429 + `Retry-After`; 0 = no limit",
    ),
    Setting("rate_limit_window_s", int, "length of the per-key rate-limit window in seconds"),
    Setting("demo_data", _bool, "`make run` loads demo data into an empty database"),
    Setting(
        "webhook_url", str, "where `riskctl outbox work` POSTs enforcement actions; empty = actions wait"
    ),
    Setting(
        "webhook_secret",
        str,
        "HMAC-SHA256 key signing each webhook (`X-Riskctl-Signature`); required in production with a URL",
    ),
    Setting("webhook_timeout_s", float, "timeout of one webhook delivery"),
    Setting(
        "outbox_max_attempts", int, "deliveries tried (with exponential backoff) before an action is dead"
    ),
    Setting("case_claim_minutes", int, "how long a moderator's claim on a case lasts before it lapses"),
    Setting(
        "reputation_half_life_days",
        float,
        "half-life of reputation evidence: an outcome this old counts half",
    ),
    Setting(
        "complaint_calendar",
        str,
        "YAML of marketplaces' complaint deadlines (business days) and holidays; empty = built-in defaults",
    ),
    Setting(
        "metrics_dir",
        str,
        "directory the gunicorn workers share Prometheus values in, wiped at each start; "
        "default a tmpfs directory under `/dev/shm` named after the instance, else `<instance>/prometheus`",
    ),
)
