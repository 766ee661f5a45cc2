"""No raw PII at rest: after checks of every kind (flagged ones opening cases too) and list
entries, no raw IP, device id, card fingerprint or shipping-address hash is anywhere in the
database file (every table dumped, and the raw bytes of the file and its WAL), in Redis (every
key name and value) or in the logs. Only keyed hashes (riskctl.pseudonym) are kept."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from sqlalchemy import MetaData, select

from tests import factories
from tests.conftest import make_key

RAW = {
    "ip": "198.51.100.213",
    "ipv6": "2001:db8:7a7a::5e11",
    "device": "dev-PIIcanary-7q1x",
    "card": "cardfp-PIIcanary7q1x",
    "address": "addr-PIIcanary-7q1x",
    "device2": "dev-PIIcanary-list",
}
# also the /24 an IP is grouped by, in its written form
NEEDLES = [*RAW.values(), "198.51.100.", "2001:db8:7a7a"]


def _events() -> list[dict]:
    ids = {"device_id": RAW["device"], "ip": RAW["ip"]}
    events = []
    for i in range(6):  # one buyer, one device, many orders: opens a case with evidence
        events.append(
            factories.order(
                **ids,
                buyer_id="pii-buyer",
                payment={"method": "card", "fingerprint": RAW["card"]},
                shipping_address_hash=RAW["address"],
                occurred_at=f"2026-11-21T09:{i * 5:02d}:00Z",
            )
        )
    for i in range(5):  # a coupon farm on one phone, one card, one address
        events.append(
            factories.coupon(
                device_id=RAW["device"],
                ip=RAW["ipv6"],
                account_id=f"pii-farm-{i}",
                payment_fingerprint=RAW["card"],
                shipping_address_hash=RAW["address"],
                occurred_at=f"2026-11-21T10:{i:02d}:00Z",
            )
        )
    events.append(factories.review(**ids, order_id=None, rating=1, text="awful see https://spam.example/x"))
    events.append(factories.listing(**ids, title="replica AAA bag", brand="Gucci"))
    return events


def _redis_dump(client) -> bytes:
    out = []
    for key in client.scan_iter(count=1000):
        out.append(key)
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key) or b"")
        elif kind == b"hash":
            out.extend(b"%s=%s" % kv for kv in client.hgetall(key).items())
        elif kind == b"zset":
            out.extend(m for m, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == b"set":
            out.extend(client.smembers(key))
        elif kind == b"list":
            out.extend(client.lrange(key, 0, -1))
        out.append(client.dump(key) or b"")
    return b"\n".join(out)


def _db_dump(engine) -> str:
    meta = MetaData()
    meta.reflect(engine)
    lines = []
    with engine.connect() as conn:
        for name, table in meta.tables.items():
            lines += [f"{name}: {row!r}" for row in conn.execute(select(table))]
    return "\n".join(lines)


def test_no_raw_identifier_in_database_redis_or_logs(app, client, redis_client, caplog):
    caplog.set_level(logging.DEBUG)
    runtime = app.extensions["riskctl"]
    pipeline = {"Authorization": f"Bearer {make_key(app, 'pipeline', 'admin')}"}
    outcomes = []
    for event in _events():
        resp = client.post(
            "/v1/checks", data=orjson.dumps(event), headers=pipeline, content_type="application/json"
        )
        assert resp.status_code == 200, resp.get_data(as_text=True)
        outcomes.append(resp.json["outcome"])
    for etype, value in (("device", RAW["device2"]), ("ip", RAW["ip"]), ("payment", RAW["card"])):
        resp = client.post(
            "/v1/lists",
            json={"list": "block", "entity_type": etype, "value": value, "reason": "pii test"},
            headers=pipeline,
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
    # a check after the lists: it reads them (list hits are stored as reasons and features)
    blocked = factories.order(device_id=RAW["device2"], ip=RAW["ip"])
    resp = client.post(
        "/v1/checks", data=orjson.dumps(blocked), headers=pipeline, content_type="application/json"
    )
    assert resp.json["outcome"] == "block"
    assert "review" in outcomes or "block" in outcomes  # something was flagged: cases hold evidence
    cases = client.get("/v1/cases?status=all", headers=pipeline).json
    assert cases["total"] >= 1
    for item in cases["items"]:  # the API's evidence view is built from what is stored
        body = client.get(f"/v1/cases/{item['id']}", headers=pipeline).get_data(as_text=True)
        assert not [n for n in NEEDLES if n in body], item["id"]

    dumped = _db_dump(runtime.engine)
    assert "pii-buyer" in dumped  # the dump does see what is stored (account ids are not PII here)
    leaks = {n for n in NEEDLES if n in dumped}
    assert not leaks, f"raw identifiers in the database: {leaks}"
    db_file = Path(runtime.settings.effective_database_url.removeprefix("sqlite:///"))
    if db_file.exists():  # SQLite: the raw bytes too (free pages, the WAL)
        for path in (db_file, Path(f"{db_file}-wal")):
            if path.exists():
                raw = path.read_bytes()
                assert not {n for n in NEEDLES if n.encode() in raw}, path

    redis_bytes = _redis_dump(redis_client)
    assert b"rk:v:" in redis_bytes  # the dump does see the velocity keys
    assert not {n for n in NEEDLES if n.encode() in redis_bytes}, "raw identifiers in Redis"

    logged = "\n".join(f"{r.getMessage()} {r.__dict__!r} {r.exc_text or ''}" for r in caplog.records)
    assert "/v1/checks" in logged  # the access log was captured
    assert not {n for n in NEEDLES if n in logged}, "raw identifiers in the logs"


@pytest.mark.parametrize("needle", NEEDLES[:5])
def test_the_scan_would_find_a_raw_value(redis_client, needle):
    """The Redis scan above is not blind: a raw value written anywhere is found."""
    redis_client.hset("pii-probe", "f", f"x{needle}x")
    try:
        assert needle.encode() in _redis_dump(redis_client)
    finally:
        redis_client.delete("pii-probe")
