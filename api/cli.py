"""The ``riskctl`` command line."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from api.cliutil import database as _database
from api.cliutil import list_store as _list_store
from api.cliutil import settings as _settings
from api.cliutil import when as _when
from riskctl.config import SETTINGS, Settings


@click.group()
def main() -> None:
    """riskctl: trust-and-risk control for online marketplaces."""


# -- database ----------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (SQLite or PostgreSQL, from RISKCTL_DATABASE_URL)."""
    from riskctl.migrate import upgrade

    with _database(_settings()) as (engine, _):
        upgrade(engine, revision)
        click.echo(
            f"database at {engine.url.render_as_string(hide_password=True)} is at {revision}", err=True
        )


# -- API keys ----------------------------------------------------------------------------
@main.group()
def keys() -> None:
    """API keys (stored hashed; shown once)."""


@keys.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(
        ["pipeline", "analyst", "admin", "metrics", "moderator", "senior_moderator", "compliance"]
    ),
)
@click.option("--name", default="", help="who or what the key is for")
def keys_create(scopes: tuple[str, ...], name: str) -> None:
    """Create a key and print it, alone, on stdout."""
    from riskctl.apikeys import create_key

    with _database(_settings()) as (_, sessions):
        key = create_key(sessions, name or "+".join(scopes), list(scopes))
    click.echo(key)


@keys.command("list")
def keys_list() -> None:
    """List keys (prefix, name, scopes; never the key)."""
    from sqlalchemy import select

    from riskctl.models import ApiKey

    with _database(_settings()) as (_, sessions), sessions() as session:
        for row in session.scalars(select(ApiKey).order_by(ApiKey.id)):
            state = "revoked" if row.revoked_at else "active"
            click.echo(f"{row.prefix}\t{row.scopes}\t{state}\t{row.created_at:%Y-%m-%d}\t{row.name}")


@keys.command("revoke")
@click.argument("prefix")
def keys_revoke(prefix: str) -> None:
    """Revoke the key with this prefix (the part after ``rk_``)."""
    from riskctl.apikeys import revoke_key

    with _database(_settings()) as (_, sessions):
        revoked = revoke_key(sessions, prefix)
    if not revoked:
        raise click.ClickException(f"no active key with prefix {prefix}")
    click.echo(f"revoked {prefix}", err=True)


# -- rules -------------------------------------------------------------------------------
@main.group()
def rules() -> None:
    """Rule packs: lint, backtest."""


def _feature_schema(settings: Settings) -> Any:
    from riskctl.detection import detector_schema, load_specs
    from riskctl.extraction import STATIC_SCHEMA
    from riskctl.features import FeatureSchema
    from riskctl.listing_enricher import LISTING_SCHEMA
    from riskctl.lists import schema as list_schema
    from riskctl.reputation import schema as reputation_schema
    from riskctl.review_text import TEXT_SCHEMA
    from riskctl.velocity import velocity_schema

    base = FeatureSchema(
        [
            *STATIC_SCHEMA,
            *velocity_schema(settings.velocity_windows),
            *list_schema(),
            *TEXT_SCHEMA,
            *LISTING_SCHEMA,
            *reputation_schema(),
        ]
    )
    return base.merged(detector_schema(load_specs(Path(settings.detectors_config), base)))


@rules.command("check")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
def rules_check(path: Path | None) -> None:
    """Lint a rule pack (default: RISKCTL_RULES_PATH); exit 1 on any problem."""
    from riskctl.rulepack import check_pack, load_pack

    settings = _settings()
    path = path or Path(settings.rules_path)
    problems = check_pack(path, _feature_schema(settings))
    for problem in problems:
        click.echo(str(problem), err=True)
    if any(p.severity == "error" for p in problems):
        raise SystemExit(1)
    pack = load_pack(path, _feature_schema(settings))
    click.echo(f"{path}: ok, version {pack.version}", err=True)


def _read_labels(path: Path | None) -> dict[str, bool]:
    """CSV with ``event_id,label`` (label 1/0, true/false, abuse/legit)."""
    import csv

    if path is None:
        return {}
    out: dict[str, bool] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            value = (row.get("label") or "").strip().lower()
            if value in {"1", "true", "abuse", "fraud", "yes"}:
                out[row["event_id"]] = True
            elif value in {"0", "false", "legit", "ok", "no"}:
                out[row["event_id"]] = False
    return out


@rules.command("backtest")
@click.option(
    "--pack",
    "pack_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="candidate rule pack (folder or file)",
)
@click.option("--since", default=None, help="first day (inclusive), YYYY-MM-DD")
@click.option("--until", default=None, help="last day (exclusive), YYYY-MM-DD")
@click.option(
    "--labels",
    "labels_path",
    default=None,
    type=click.Path(exists=True, path_type=Path),
    help="extra labels: CSV of event_id,label (resolved cases are used too)",
)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def rules_backtest(
    pack_path: Path, since: str | None, until: str | None, labels_path: Path | None, as_json: bool
) -> None:
    """Replay stored decisions through a candidate pack and show what would change."""
    from rich.console import Console
    from rich.progress import Progress

    from riskctl.backtest import backtest, count_decisions
    from riskctl.labels import stored_labels
    from riskctl.rulepack import RulePackError, load_pack

    settings = _settings()
    try:
        pack = load_pack(pack_path, _feature_schema(settings))
    except RulePackError as exc:
        raise click.ClickException(str(exc)) from None
    start, end = _when(since), _when(until)
    with _database(settings) as (engine, _):
        labels = {**stored_labels(engine), **_read_labels(labels_path)}
        total = count_decisions(engine, start, end)
        console = Console(stderr=True)
        with Progress(console=console, transient=True, disable=as_json) as bar:
            task = bar.add_task("replaying decisions", total=total)
            report = backtest(
                engine, pack, labels=labels, since=start, until=end, progress=lambda n: bar.advance(task, n)
            )
    data = report.as_dict()
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    _print_backtest(data)


def _print_backtest(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"candidate pack {data['candidate_version'][:12]}: {data['events']} stored decisions replayed "
        f"({', '.join(f'{k} {n}' for k, n in sorted(data['by_kind'].items()))}); "
        f"{data['labelled']} labelled, {data['positives']} abuse"
    )
    changes = Table(title=f"decisions that would change: {data['changed']}")
    for col in ("from", "to", "count"):
        changes.add_column(col)
    for t in data["transitions"]:
        changes.add_row(t["from"], t["to"], str(t["count"]))
    console.print(changes)

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    per_rule = Table(title="per rule (precision/recall against labels)")
    for col in ("rule", "evaluated", "hits", "hit rate", "errors", "precision", "recall"):
        per_rule.add_column(col, justify="right" if col != "rule" else "left")
    for code, r in data["rules"].items():
        per_rule.add_row(
            code,
            str(r["evaluated"]),
            str(r["hits"]),
            pct(r["hit_rate"]),
            str(r["errors"]),
            pct(r["precision"]),
            pct(r["recall"]),
        )
    console.print(per_rule)
    outcomes = Table(title="per outcome (at or above)")
    for col in ("outcome", "flagged", "precision", "recall"):
        outcomes.add_column(col)
    for level, o in data["outcomes"].items():
        outcomes.add_row(level, str(o["flagged"]), pct(o["precision"]), pct(o["recall"]))
    console.print(outcomes)
    console.print(
        f"money at stake: {data['money']['newly_blocked']:,.2f} newly blocked, "
        f"{data['money']['released']:,.2f} released"
    )


# -- detectors ---------------------------------------------------------------------------
def _specs(settings: Settings) -> list[Any]:
    from riskctl.detection import load_specs

    return load_specs(Path(settings.detectors_config), _feature_schema(settings))


def train_detectors(
    settings: Settings, kind: str | None, min_rows: int, quiet: bool = False
) -> list[dict[str, Any]]:
    """Fit every spec (of ``kind``) on stored traffic and make the new models live."""
    import functools
    import time

    from rich.progress import Progress

    from riskctl.detection import ModelStore, train
    from riskctl.training import training_matrix

    specs = [s for s in _specs(settings) if kind is None or s.kind == kind]
    store = ModelStore(settings.instance / "models", specs)
    results = []
    with _database(settings) as (engine, _), Progress(transient=True, disable=quiet) as bar:
        for spec in specs:
            task = bar.add_task(f"{spec.name}: reading {spec.kind} features", total=None)
            matrix, skipped = training_matrix(engine, spec, progress=functools.partial(bar.advance, task))
            if len(matrix) < min_rows:
                results.append(
                    {"detector": spec.name, "rows": len(matrix), "status": f"skipped (< {min_rows} rows)"}
                )
                bar.remove_task(task)
                continue
            bar.update(task, description=f"{spec.name}: fitting {spec.algorithm} on {len(matrix)} rows")
            started = time.perf_counter()
            model = train(spec, matrix)
            path = store.save(spec, model)
            bar.remove_task(task)
            results.append(
                {
                    "detector": spec.name,
                    "kind": spec.kind,
                    "algorithm": spec.algorithm,
                    "rows": len(matrix),
                    "skipped": skipped,
                    "version": model.version,
                    "threshold": round(float(model.threshold_), 4),
                    "seconds": round(time.perf_counter() - started, 2),
                    "path": str(path),
                    "status": "live",
                }
            )
    return results


@main.command("train")
@click.argument(
    "kind", required=False, type=click.Choice(["order", "review", "coupon_redemption", "listing", "reviews"])
)
@click.option("--min-rows", default=50, show_default=True, help="skip a detector with fewer training rows")
@click.option(
    "--labels",
    "labels_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="`train reviews` only: labelled CSV (default: moderator outcomes of resolved review cases)",
)
@click.option("--text-col", default="text", show_default=True, help="`train reviews` only: text column")
@click.option("--label-col", default="label", show_default=True, help="`train reviews` only: label column")
def train_cmd(
    kind: str | None, min_rows: int, labels_path: Path | None, text_col: str, label_col: str
) -> None:
    """Fit the detectors of detectors.yaml on stored traffic; the service picks them up live.

    ``train reviews`` fits the supervised review text model instead (``review.text_score``).
    """
    if kind == "reviews":
        from api.commands.reviews import train_reviews

        r = train_reviews(labels_path, text_col, label_col, min_rows)
        click.echo(
            f"{r['detector']:<18} {r['rows']:>7} texts ({r['positives']} abusive, {r['skipped']} skipped)  "
            f"{r['seconds']:>6.2f}s  model {r['version']}"
        )
        click.echo(f"from {r['source']}; written to {r['path']}", err=True)
        return
    if labels_path is not None:
        raise click.UsageError("--labels is for `riskctl train reviews`")
    for r in train_detectors(_settings(), kind, min_rows):
        if r["status"] == "live":
            click.echo(
                f"{r['detector']:<18} {r['algorithm']:<8} {r['rows']:>7} rows  threshold {r['threshold']:.3f}  "
                f"{r['seconds']:>6.2f}s  model {r['version'][:12]}"
            )
        else:
            click.echo(f"{r['detector']:<18} {r['status']}")


# -- lists -------------------------------------------------------------------------------
@main.group("lists")
def lists_group() -> None:
    """Allow and block lists (the database is the record; Redis serves checks)."""


@lists_group.command("add")
@click.option("--list", "list_name", type=click.Choice(["allow", "block"]), required=True)
@click.option(
    "--type",
    "entity_type",
    required=True,
    type=click.Choice(["account", "shop", "device", "ip", "payment", "address", "brand"]),
)
@click.option(
    "--value", required=True, help="the raw value; devices, IPs, cards and addresses are stored hashed"
)
@click.option("--reason", required=True)
@click.option("--days", type=int, default=None, help="expire after this many days")
def lists_add(list_name: str, entity_type: str, value: str, reason: str, days: int | None) -> None:
    """Put an entity on a list."""
    from datetime import UTC, datetime, timedelta

    from riskctl.errors import RiskctlError

    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    with _list_store() as store:
        try:
            entry = store.add(list_name, entity_type, value, reason=reason, actor="cli", expires_at=expires)
        except RiskctlError as exc:
            raise click.ClickException(exc.detail) from None
    click.echo(entry.id)


@lists_group.command("remove")
@click.argument("entry_id", type=int)
def lists_remove(entry_id: int) -> None:
    """Take an entry off its list."""
    from riskctl.errors import RiskctlError

    with _list_store() as store:
        try:
            store.remove(entry_id)
        except RiskctlError as exc:
            raise click.ClickException(exc.detail) from None


@lists_group.command("show")
@click.option("--list", "list_name", type=click.Choice(["allow", "block"]), default=None)
def lists_show(list_name: str | None) -> None:
    """Print entries (id, list, type, label, expiry, reason)."""
    with _list_store() as store:
        rows, _ = store.entries(list_name, None, limit=10_000)
    for r in rows:
        expiry = f"{r.expires_at:%Y-%m-%d}" if r.expires_at else "never"
        click.echo(f"{r.id}\t{r.list_name}\t{r.entity_type}\t{r.label}\t{expiry}\t{r.reason}")


@lists_group.command("sync")
def lists_sync() -> None:
    """Rebuild the Redis copy of every list from the database."""
    with _list_store() as store:
        n = store.sync()
    click.echo(f"{n} entries synced to redis", err=True)


# -- demo ----------------------------------------------------------------------------------
@main.command("demo-data")
@click.option("--events", "n_events", default=2_500, show_default=True, help="simulated events to send")
@click.option("--if-empty", is_flag=True, help="only when no decision is stored yet")
def demo_data(n_events: int, if_empty: bool) -> None:
    """Send a small simulated history (normal traffic + known abuse) through the check path."""
    from sqlalchemy import func, select

    from api.runtime import build_runtime
    from fixtures.demo import simulated_history
    from riskctl.models import Decision

    settings = _settings()
    runtime = build_runtime(settings)
    try:
        with runtime.sessions() as session:
            existing = session.scalar(select(func.count()).select_from(Decision)) or 0
        if if_empty and existing:
            click.echo(f"demo data skipped: {existing} decisions already stored", err=True)
            return
        counts: dict[str, int] = {}
        for event in simulated_history(n_events):
            result = runtime.checks.check(orjson.dumps(event))
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        click.echo(f"demo data loaded: {counts}", err=True)
    finally:
        runtime.close()


@main.command("dev-setup")
def dev_setup() -> None:
    """What ``make run`` does before serving: migrate, load demo data, make a demo key and demo users."""
    from riskctl.apikeys import create_key
    from riskctl.migrate import upgrade

    settings = _settings()
    with _database(settings) as (engine, _):
        upgrade(engine)
    if settings.demo_data:
        demo_data.main(["--if-empty"], standalone_mode=False)
        if not any((settings.instance / "models").glob("*/current")):
            train_detectors(settings, None, min_rows=20, quiet=True)
    key_file = settings.instance / "demo_pipeline_key"
    if not key_file.exists():
        with _database(settings) as (_, sessions):
            key = create_key(sessions, "demo pipeline (make run)", ["pipeline"])
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
    from fixtures.demo_users import ensure_demo_users

    with _database(settings) as (_, sessions):
        ensure_demo_users(sessions, settings.instance / "demo_users")


# -- serve ---------------------------------------------------------------------------------
@main.command()
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn")
@click.option("--host", default=None, help="default RISKCTL_HOST")
@click.option("--port", default=None, type=int, help="default RISKCTL_PORT")
@click.option("--workers", default=None, type=int, help="default RISKCTL_WORKERS")
def serve(dev: bool, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API (gunicorn, from api/gunicorn_conf.py), with an embedded Redis if none is set."""
    from riskctl.redisconn import EmbeddedRedis

    settings = _settings()
    host = host or settings.host
    port = port or settings.port
    env = dict(os.environ, RISKCTL_HOST=host, RISKCTL_PORT=str(port))
    if workers:
        env["RISKCTL_WORKERS"] = str(workers)
    embedded = None
    if not settings.redis_url:
        settings.instance.mkdir(parents=True, exist_ok=True)
        embedded = EmbeddedRedis(settings.instance / "redis").start()
        env["RISKCTL_REDIS_URL"] = embedded.url
    demo_key = settings.instance / "demo_pipeline_key"
    click.echo(f"riskctl serving on http://{host}:{port}", err=True)
    if demo_key.exists():
        click.echo(f"demo pipeline API key: {demo_key.read_text().strip()}", err=True)
    from fixtures.demo_users import read_demo_users

    demo_users = read_demo_users(settings.instance / "demo_users")
    if demo_users:
        click.echo(f"moderator UI: http://{host}:{port}/ui/  (demo logins below)", err=True)
        for username, role, password in demo_users:
            click.echo(f"  {username:<11} {role:<17} password {password}", err=True)
    try:
        if dev:
            os.environ.update(env)
            from api import create_app

            create_app().run(host=host, port=port, debug=False, use_reloader=False)
            return
        metrics_dir = settings.effective_metrics_dir
        shutil.rmtree(metrics_dir, ignore_errors=True)
        try:
            metrics_dir.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            # not removable by us (another user's, or a link): never write metrics into it
            raise click.ClickException(
                f"{metrics_dir} exists and could not be cleared; set RISKCTL_METRICS_DIR"
            ) from None
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        conf = Path(__file__).with_name("gunicorn_conf.py")
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(conf), "api.wsgi:app"]
        proc = subprocess.Popen(cmd, env=env)  # noqa: S603 - fixed argv
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda s, _f: proc.send_signal(s))
        code = proc.wait()
        if code not in (0, -signal.SIGTERM, -signal.SIGINT):
            raise SystemExit(code)
    finally:
        if not dev:
            shutil.rmtree(settings.effective_metrics_dir, ignore_errors=True)
        if embedded is not None:
            embedded.stop()


# -- configuration ------------------------------------------------------------------------------
@main.group()
def config() -> None:
    """Configuration."""


@config.command("table")
def config_table() -> None:
    """Print every RISKCTL_* setting as a Markdown table (the README's)."""
    defaults = Settings()
    click.echo("| variable | default | what it does |\n|---|---|---|")
    for s in SETTINGS:
        value = getattr(defaults, s.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, dict):
            value = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        click.echo(f"| `{s.env}` | `{value}` | {s.description} |")


if __name__ == "__main__":
    main()


def _register_commands() -> None:
    from api.commands import register
    from api.trustcli import register as register_trust
    from api.workcli import register as register_work

    register(main)
    register_work(main)
    register_trust(main)
    from api.demo_cli import demo

    main.add_command(demo)


_register_commands()
