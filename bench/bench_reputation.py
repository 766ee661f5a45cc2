"""Cost of reading reputation inside the velocity script (one EVALSHA per check).

    python bench/bench_reputation.py [--events 3000] [--rounds 5]

Orders against an embedded Redis, in the same run, interleaved in chunks: the velocity call
*without* reputation reads (the baseline) and *with* the three reads a check makes (buyer,
shop, device hashes, half of the subjects with a record), plus the in-process decoding of
the replies into features. Prints client-side medians (µs per call) and the ratio.

Not a test: figures are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
import redis

from riskctl.events import parse_event
from riskctl.pseudonym import Pseudonymizer
from riskctl.redisconn import EmbeddedRedis
from riskctl.reputation import Beta, ReputationConfig, encode, event_subjects, redis_key
from riskctl.velocity import Velocity

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def orders(n: int, tag: str) -> list[object]:
    out = []
    for i in range(n):
        ev = {
            "kind": "order",
            "event_id": f"{tag}-{i}",
            "occurred_at": (T0 + timedelta(seconds=i * 7)).isoformat(),
            "device_id": f"dev-{i % 900}",
            "ip": f"203.0.113.{i % 250}",
            "order_id": f"o-{tag}-{i}",
            "buyer_id": f"buyer-{i % 1500}",
            "shop_id": f"shop-{i % 120}",
            "items": [{"product_id": "p", "quantity": 1, "unit_price": 10.0}],
            "amount": 10.0,
            "currency": "USD",
            "payment": {"method": "card", "fingerprint": f"card-{i % 1300:08d}"},
            "shipping_address_hash": f"addr-{i % 1400:08d}",
        }
        out.append(parse_event(orjson.dumps(ev)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    cfg = ReputationConfig()
    with tempfile.TemporaryDirectory(prefix="bench-rep-") as tmp:
        server = EmbeddedRedis(Path(tmp)).start()
        client = redis.Redis.from_url(server.url)
        pseudo = Pseudonymizer(b"bench-key-0123456789abcdef")
        vel = Velocity(client, pseudo, ("10m", "1h", "24h", "30d"))
        vel.load_script()
        # half the subjects have a record
        pipe = client.pipeline(transaction=False)
        for t, n in (("buyer", 1500), ("shop", 120), ("device", 900)):
            for i in range(0, n, 2):
                pipe.hset(
                    redis_key(t),
                    pseudo.token(t, f"{t}-{i}" if t != "device" else f"dev-{i}"),
                    encode(Beta(1.0, 2.0, T0)),
                )
        pipe.execute()
        base_us: list[float] = []
        with_us: list[float] = []
        chunk = 100
        for r in range(args.rounds):
            evs_a, evs_b = orders(args.events, f"a{r}"), orders(args.events, f"b{r}")
            for start in range(0, args.events, chunk):
                t = time.perf_counter()
                for ev in evs_a[start : start + chunk]:
                    vel.observe(ev)
                base_us.append((time.perf_counter() - t) / chunk * 1e6)
                t = time.perf_counter()
                for ev in evs_b[start : start + chunk]:
                    reads = [
                        (redis_key(k), pseudo.token(k, v))
                        for k, v in event_subjects(ev).items()
                        if v is not None
                    ]
                    res = vel.observe(ev, (), reads)
                    for raw in res.hashes:  # decode as the check does
                        if raw:
                            b = Beta(*(float(x) for x in raw.split(b"|")[:2]), T0)
                            b.decayed(ev.occurred_at, cfg.half_life_s).score(cfg)
                with_us.append((time.perf_counter() - t) / chunk * 1e6)
        client.close()
        server.stop()
    mb, mw = statistics.median(base_us), statistics.median(with_us)
    print(f"orders x{args.events} x{args.rounds} rounds, chunks of {chunk}, interleaved")
    print(f"velocity call, no reputation   median {mb:8.1f} µs/check")
    print(f"velocity call + 3 reputation   median {mw:8.1f} µs/check")
    print(f"ratio with/without             {mw / mb:8.3f}")


if __name__ == "__main__":
    main()
