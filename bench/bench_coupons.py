"""Cost of the coupon link-graph features, and of the coupon scan on 100k redemptions.

    python bench/bench_coupons.py [--events 2000] [--rounds 5] [--scan 100000]

1. The velocity call (one EVALSHA) per check, against an embedded Redis, in the same run,
   interleaved in chunks: coupon redemptions *without* the link graph (the baseline: the
   velocity metrics alone), coupon redemptions *with* it, the link graph alone (no velocity
   metrics), and orders (no link graph either way). It prints the client-side median µs per
   call, the server-side Lua cost from ``INFO commandstats`` (``usec_per_call`` of
   ``evalsha``), and the ratios with/without.
   The traffic is a synthetic marketplace: many single accounts, households sharing an
   address, farms of 10-40 accounts on a few phones and cards, so clusters merge and grow.
2. The batch scan over ``--scan`` stored redemptions: building the graph and the findings
   in memory, and the whole ``scan_stored`` (read from SQLite + scan).

Not a test: figures are printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
import redis

from detectors.linkgraph import Redemption
from riskctl.coupon_scan import StoredRedemption, scan_redemptions, scan_stored
from riskctl.events import parse_event
from riskctl.pseudonym import Pseudonymizer
from riskctl.redisconn import EmbeddedRedis
from riskctl.velocity import Velocity

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WINDOWS = ("10m", "1h", "24h", "30d")


def traffic(n: int, seed: int, tag: str) -> list[dict[str, Any]]:
    """Coupon redemptions: 80% lone accounts, 12% households, 8% farms."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + timedelta(seconds=i * 20)
        roll = rng.random()
        if roll < 0.80:
            a = rng.randrange(n)
            acct, dev, card, addr = f"{tag}u{a}", f"{tag}ud{a}", f"u{a:09d}", f"u{a:09d}"
        elif roll < 0.92:
            h = rng.randrange(n // 20 + 1)
            m = rng.randrange(4)
            acct, dev, card, addr = f"{tag}h{h}-{m}", f"{tag}hd{h}-{m}", f"h{h:07d}{m}", f"h{h:09d}"
        else:
            f = rng.randrange(n // 400 + 1)
            m = rng.randrange(40)
            acct = f"{tag}f{f}-{m}"
            dev, card, addr = f"{tag}fd{f}-{m % 4}", f"f{f:07d}{m % 3}", f"f{f:06d}{m:03d}"
        out.append(
            {
                "kind": "coupon_redemption",
                "event_id": f"{tag}-{i}",
                "occurred_at": t.isoformat(),
                "device_id": dev,
                "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "account_id": acct,
                "account_created_at": (t - timedelta(hours=rng.choice([1, 5, 72, 4000]))).isoformat(),
                "coupon_code": "WELCOME10",
                "campaign_id": rng.choice(["welcome", "spring", "refer"]),
                "discount_amount": 5.0,
                "referrer_id": rng.choice([None, None, None, f"{tag}u{rng.randrange(n)}"]),
                "payment_fingerprint": f"cardfp-{card}",
                "shipping_address_hash": f"addrhash-{addr}",
            }
        )
    return out


def orders(n: int, seed: int, tag: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "kind": "order",
            "event_id": f"{tag}-{i}",
            "occurred_at": (T0 + timedelta(seconds=i * 20)).isoformat(),
            "device_id": f"{tag}d{rng.randrange(n)}",
            "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.9",
            "order_id": f"{tag}o{i}",
            "buyer_id": f"{tag}b{rng.randrange(n)}",
            "buyer_created_at": "2025-01-01T00:00:00Z",
            "shop_id": f"shop-{rng.randrange(200)}",
            "amount": 20.0,
            "currency": "USD",
            "items": [{"product_id": "p1", "quantity": 1, "unit_price": 20.0}],
            "payment": {"method": "card", "fingerprint": f"cardfp-{rng.randrange(n):09d}"},
            "shipping_address_hash": f"addrhash-{rng.randrange(n):09d}",
        }
        for i in range(n)
    ]


def evalsha_usec(client: redis.Redis) -> float:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return float(stats.get("usec_per_call", 0.0))


def run(v: Velocity, client: redis.Redis, events: list[Any]) -> tuple[float, float]:
    client.config_resetstat()
    started = time.perf_counter()
    for event in events:
        v.observe(event)
    elapsed = time.perf_counter() - started
    return elapsed / len(events) * 1e6, evalsha_usec(client)


def bench_velocity(n: int, rounds: int, chunk: int = 200) -> None:
    """Each variant replays its own stream (own accounts, so the graph grows as in
    production); the streams advance in chunks, variant after variant in rotating order,
    so machine noise falls on all of them alike. Medians over chunks."""
    with tempfile.TemporaryDirectory(prefix="h_coupon_bench_") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        client = redis.Redis.from_url(server.url)
        try:
            pseudo = Pseudonymizer(b"bench-key-0123456789abcdef")
            variants = {
                "coupon, velocity only": Velocity(client, pseudo, WINDOWS, link_graph=False),
                "coupon, + link graph": Velocity(client, pseudo, WINDOWS, link_graph=True),
                "coupon, link graph alone": Velocity(client, pseudo, WINDOWS, metrics=(), link_graph=True),
                "order (reference)": Velocity(client, pseudo, WINDOWS, link_graph=True),
            }
            for v in variants.values():
                v.load_script()
            streams = {}
            for k, name in enumerate(variants):
                raw = (
                    orders(n * rounds, k, f"o{k}")
                    if name.startswith("order")
                    else traffic(n * rounds, 7, f"c{k}")
                )
                streams[name] = [parse_event(orjson.dumps(e)) for e in raw]
            results: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
            names = list(variants)
            for c, lo in enumerate(range(0, n * rounds, chunk)):
                for name in names[c % len(names) :] + names[: c % len(names)]:
                    results[name].append(run(variants[name], client, streams[name][lo : lo + chunk]))
            keys = client.dbsize()
            mem = client.info("memory")["used_memory_human"]
        finally:
            client.close()
            server.stop()
    print(
        f"velocity call per check: {n * rounds} events per variant in chunks of {chunk}, medians (embedded Redis)"
    )
    print(f"{'variant':<24} {'client µs/call':>15} {'server Lua µs/call':>19}")
    med: dict[str, tuple[float, float]] = {}
    for name, rows in results.items():
        client_us = statistics.median(x[0] for x in rows)
        server_us = statistics.median(x[1] for x in rows)
        med[name] = (client_us, server_us)
        print(f"{name:<24} {client_us:>15.1f} {server_us:>19.1f}")
    base, link = med["coupon, velocity only"], med["coupon, + link graph"]
    print(
        f"link graph: client x{link[0] / base[0]:.2f} (+{link[0] - base[0]:.1f} µs), "
        f"server Lua x{link[1] / base[1]:.2f} (+{link[1] - base[1]:.1f} µs)"
    )
    print(f"redis after the run: {keys} keys, {mem}")


def bench_scan(n: int) -> None:
    raw = traffic(n, 99, "s")
    rows = []
    for e in raw:
        at = datetime.fromisoformat(e["occurred_at"])
        rows.append(
            StoredRedemption(
                Redemption(
                    e["account_id"],
                    e["campaign_id"],
                    int(at.timestamp() * 1000),
                    {
                        "device": e["device_id"],
                        "payment": e["payment_fingerprint"],
                        "address": e["shipping_address_hash"],
                    },
                    e["referrer_id"],
                    e["device_id"],
                ),
                e["event_id"],
                e["discount_amount"],
            )
        )
    times = []
    for _ in range(3):
        started = time.perf_counter()
        report = scan_redemptions(rows)
        times.append(time.perf_counter() - started)
    print(f"\nscan of {n} redemptions in memory: median {statistics.median(times):.2f} s  {report.summary()}")

    from sqlalchemy import insert

    from riskctl.db import make_engine
    from riskctl.migrate import upgrade
    from riskctl.models import EventRecord

    with tempfile.TemporaryDirectory(prefix="h_coupon_scan_") as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        try:
            upgrade(engine)
            with engine.begin() as conn:
                for i in range(0, n, 10_000):
                    conn.execute(
                        insert(EventRecord),
                        [
                            {
                                "event_id": e["event_id"],
                                "kind": "coupon_redemption",
                                "occurred_at": datetime.fromisoformat(e["occurred_at"]),
                                "received_at": datetime.fromisoformat(e["occurred_at"]),
                                "body_hash": "0" * 64,
                                "subject_id": e["account_id"],
                                "payload": e,
                            }
                            for e in raw[i : i + 10_000]
                        ],
                    )
            started = time.perf_counter()
            stored = scan_stored(engine)
            elapsed = time.perf_counter() - started
        finally:
            engine.dispose()
    print(f"scan_stored of {n} redemptions from SQLite (read + scan): {elapsed:.2f} s  {stored.summary()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scan", type=int, default=100_000)
    args = parser.parse_args()
    if args.events:
        bench_velocity(args.events, args.rounds)
    if args.scan:
        bench_scan(args.scan)


if __name__ == "__main__":
    main()
