"""Allow and block lists: managed through /v1/lists, read in the check's one round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from api.lists import EntityType, ListName
from riskctl.lists import ENTITY_TYPES, LIST_NAMES
from tests import factories
from tests.conftest import make_key


@pytest.fixture
def analyst(app):
    return {"Authorization": f"Bearer {make_key(app, 'analyst')}"}


def test_api_literals_match_the_core_lists():
    assert set(get_args(ListName)) == set(LIST_NAMES)
    assert set(get_args(EntityType)) == set(ENTITY_TYPES)


def _decide(client, headers, event):
    r = client.post("/v1/checks", json=event, headers=headers)
    assert r.status_code == 200, r.data
    return r.get_json(), client.get(
        f"/v1/decisions/{r.get_json()['decision_id']}", headers=headers
    ).get_json()


def test_block_listed_card_is_a_feature(client, analyst, pipeline_headers):
    r = client.post(
        "/v1/lists",
        json={
            "list": "block",
            "entity_type": "payment",
            "value": "cardfp-STOLEN01",
            "reason": "chargeback ring",
        },
        headers=analyst,
    )
    assert r.status_code == 201, r.data
    assert "STOLEN" not in r.get_data(as_text=True)  # private values are never echoed or stored raw
    _, detail = _decide(
        client,
        pipeline_headers,
        factories.order(payment={"method": "card", "fingerprint": "cardfp-STOLEN01"}),
    )
    assert detail["features"]["list.block.payment"] is True
    assert detail["features"]["list.block.device"] is False
    _, clean = _decide(client, pipeline_headers, factories.order())
    assert clean["features"]["list.block.payment"] is False


def test_allow_list_short_circuits_to_allow_with_its_reason(client, analyst, pipeline_headers):
    for _ in range(3):  # enough orders of one buyer at one shop to be flagged otherwise
        body, _ = _decide(client, pipeline_headers, factories.order(buyer_id="vip-1", shop_id="s-vip"))
    assert body["outcome"] != "allow"
    client.post(
        "/v1/lists",
        json={"list": "allow", "entity_type": "account", "value": "vip-1", "reason": "internal QA account"},
        headers=analyst,
    )
    body, _ = _decide(client, pipeline_headers, factories.order(buyer_id="vip-1", shop_id="s-vip"))
    assert body["outcome"] == "allow"
    assert body["reasons"] == [
        {"code": "allowlist.account", "source": "list", "description": "account is on the allow list"}
    ]


def test_expired_entries_stop_matching(client, runtime, pipeline_headers):
    entry = runtime.lists.add(
        "block",
        "device",
        "dev-temp",
        reason="t",
        actor="test",
        expires_at=datetime.now(UTC) + timedelta(seconds=1),
    )
    _, detail = _decide(client, pipeline_headers, factories.order(device_id="dev-temp"))
    assert detail["features"]["list.block.device"] is True
    import time

    time.sleep(1.1)
    _, detail = _decide(client, pipeline_headers, factories.order(device_id="dev-temp"))
    assert detail["features"]["list.block.device"] is False
    assert entry.id


def test_list_crud_and_errors(client, analyst, pipeline_headers):
    add = client.post(
        "/v1/lists",
        json={"list": "block", "entity_type": "shop", "value": "shop-bad", "reason": "counterfeits"},
        headers=analyst,
    )
    assert add.status_code == 201
    entry = add.get_json()
    assert entry["label"] == "shop-bad"
    dup = client.post(
        "/v1/lists",
        json={"list": "block", "entity_type": "shop", "value": "shop-bad", "reason": "again"},
        headers=analyst,
    )
    assert (dup.status_code, dup.mimetype) == (409, "application/problem+json")
    listed = client.get("/v1/lists?list=block", headers=analyst).get_json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == entry["id"]
    assert client.get("/v1/lists?list=nope", headers=analyst).status_code == 422
    assert (
        client.post(
            "/v1/lists",
            json={"list": "block", "entity_type": "planet", "value": "x", "reason": "r"},
            headers=analyst,
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/v1/lists",
            json={
                "list": "block",
                "entity_type": "shop",
                "value": "x",
                "reason": "r",
                "created_by": "someone-else",
            },
            headers=analyst,
        ).status_code
        == 422
    )
    assert client.get("/v1/lists", headers=pipeline_headers).status_code == 403
    assert client.delete(f"/v1/lists/{entry['id']}", headers=analyst).status_code == 204
    assert client.delete(f"/v1/lists/{entry['id']}", headers=analyst).status_code == 404


def test_redis_is_rebuilt_from_the_database(runtime, redis_client):
    runtime.lists.add("block", "account", "acct-x", reason="r", actor="t")
    redis_client.flushall()
    assert runtime.lists.sync_if_needed() is True
    assert runtime.lists.sync_if_needed() is False
    assert redis_client.zcard(b"rk:l:block:account") == 1


def test_cli_lists_round_trip(settings, app, monkeypatch):
    from click.testing import CliRunner

    from api.cli import main

    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", settings.instance_path)
    monkeypatch.setenv("RISKCTL_REDIS_URL", settings.redis_url)
    if settings.database_url:
        monkeypatch.setenv("RISKCTL_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    added = runner.invoke(
        main,
        [
            "lists",
            "add",
            "--list",
            "block",
            "--type",
            "ip",
            "--value",
            "198.51.100.99",
            "--reason",
            "proxy farm",
            "--days",
            "7",
        ],
    )
    assert added.exit_code == 0, added.output
    shown = runner.invoke(main, ["lists", "show"]).stdout
    assert "proxy farm" in shown and "198.51.100.99" not in shown
    assert app.extensions["riskctl"].lists.contains("block", "ip", "198.51.100.99")
    assert runner.invoke(main, ["lists", "sync"]).exit_code == 0
    assert runner.invoke(main, ["lists", "remove", added.stdout.strip()]).exit_code == 0
    assert runner.invoke(main, ["lists", "remove", added.stdout.strip()]).exit_code != 0
