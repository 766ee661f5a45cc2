"""Migrations match the models; the OpenAPI document; the CLI; health endpoints."""

from __future__ import annotations

import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

from api.cli import main
from riskctl.models import Base


def test_migrations_produce_exactly_the_models(runtime):
    with runtime.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(runtime):
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("SQLite-only pragmas; this run is on PostgreSQL")
    with runtime.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # the service's commits never checkpoint inline: its own thread does (riskctl.db)
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    assert runtime.checkpointer is not None and runtime.checkpointer.running


def test_openapi_lists_every_route_with_errors_and_security(app, client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    documented = {re.sub(r"\{(\w+)\}", r"<\1>", p) for p in spec["paths"]}
    routes = {
        re.sub(r"<\w+:", "<", r.rule)
        for r in app.url_map.iter_rules()
        # the HTML moderator UI (/ and /ui/...) is not part of the JSON API
        if r.endpoint not in ("static", "root") and not r.endpoint.startswith("ui.")
    }
    assert routes == documented | {"/openapi.json"}
    check = spec["paths"]["/v1/checks"]["post"]
    for status in ("401", "409", "413", "415", "422"):
        assert status in check["responses"]
    assert set(spec["components"]["schemas"]["Event"]["discriminator"]["mapping"]) == {
        "order",
        "review",
        "coupon_redemption",
        "listing",
    }


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready"
    assert all(ready["checks"].values())


def test_metrics_need_the_metrics_scope(app, client, pipeline_headers):
    from tests.conftest import make_key

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=pipeline_headers).status_code == 403
    r = client.get("/metrics", headers={"Authorization": f"Bearer {make_key(app, 'metrics')}"})
    assert r.status_code == 200
    assert b"riskctl_http_requests_total" in r.data


def test_cli_keys_lifecycle(settings, app, monkeypatch):
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", settings.instance_path)
    if settings.database_url:
        monkeypatch.setenv("RISKCTL_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    created = runner.invoke(main, ["keys", "create", "--scope", "pipeline", "--name", "checkout"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert re.fullmatch(r"rk_[0-9a-f]{12}_[\w-]{43}", key)
    listed = runner.invoke(main, ["keys", "list"]).stdout
    prefix = key.split("_")[1]
    assert prefix in listed and "checkout" in listed and key not in listed
    assert runner.invoke(main, ["keys", "revoke", prefix]).exit_code == 0
    assert "revoked" in runner.invoke(main, ["keys", "list"]).stdout
    assert runner.invoke(main, ["keys", "revoke", prefix]).exit_code != 0
    bad = runner.invoke(main, ["keys", "create", "--scope", "root"])
    assert bad.exit_code != 0


def test_cli_config_table_lists_every_setting():
    from riskctl.config import SETTINGS

    out = CliRunner().invoke(main, ["config", "table"]).stdout
    for s in SETTINGS:
        assert f"`{s.env}`" in out
