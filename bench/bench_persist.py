"""Storing one decision: the SQLAlchemy Core reference against the check path's DBAPI writer.

    python bench/bench_persist.py [--writes 2000] [--repeat 3] [--database-url URL]

Each write is one transaction: the event, the decision with ~60 features, two hits, and for
flagged decisions (half of them) the subject's case opened or joined. Both writers run in
the same process on fresh databases, interleaved round by round; prints the median µs per
write of each, and their ratio. Not a test (tests/test_persist.py holds both to identical rows).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from riskctl.cases import DEFAULT_QUEUES, DEFAULT_SLA_HOURS, Routing
from riskctl.db import make_engine
from riskctl.migrate import upgrade
from riskctl.persist import CoreWriter, DriverWriter, Write

ROUTING = Routing(DEFAULT_QUEUES, DEFAULT_SLA_HOURS)
FEATURES = {f"velocity.entity{i % 12}.metric_{i}": float(i) for i in range(60)}


def make_write(tag: str, i: int) -> Write:
    flagged = i % 2 == 0
    return Write(
        event_id=f"{tag}-{i}",
        kind="order",
        occurred_at=datetime.now(UTC),
        body_hash=f"{i:064x}",
        subject_id=f"buyer-{i % 50}",
        shop_id=f"shop-{i % 7}",
        amount=10.0 + i % 90,
        payload={"order_id": f"o{i}", "items": [{"product_id": "p1", "quantity": 1, "unit_price": 10.0}]},
        decision_id=f"dec-{tag}-{i}",
        outcome="review" if flagged else "allow",
        flagged=flagged,
        score=60.0 if flagged else 10.0,
        degraded=False,
        rulepack_version="sha256:bench",
        detector_versions={"order": "iforest-bench"},
        features=FEATURES,
        signals=[{"code": "ORD-001", "source": "rule", "status": "hit", "score": 30.0}] * 3,
        reasons=[{"code": "ORD-001", "source": "rule", "description": "bench"}],
        hits=[{"code": "ORD-001", "source": "rule", "mode": "live", "score": 30.0}] * 2,
        response_body='{"outcome":"review"}',
        latency_us=1000,
        title="order review: bench",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--database-url", default="", help="default: SQLite files in a temporary folder")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="riskctl-bench-persist-") as tmp:
        results: dict[str, list[float]] = {"core": [], "driver": []}
        for r in range(args.repeat):
            for name, cls in (("core", CoreWriter), ("driver", DriverWriter)):
                url = args.database_url or f"sqlite:///{tmp}/{name}-{r}.db"
                engine = make_engine(url)
                if args.database_url:
                    with engine.begin() as conn:
                        conn.execute(text("DROP SCHEMA public CASCADE"))
                        conn.execute(text("CREATE SCHEMA public"))
                upgrade(engine)
                writer = cls(engine, ROUTING)
                for i in range(200):  # warm: statement caches, pool
                    writer.write(make_write(f"warm{name}{r}", i))
                times = []
                for i in range(args.writes):
                    w = make_write(f"{name}{r}", i)
                    t = time.perf_counter()
                    writer.write(w)
                    times.append(time.perf_counter() - t)
                results[name].append(statistics.median(times) * 1e6)
                engine.dispose()
    core = statistics.median(results["core"])
    driver = statistics.median(results["driver"])
    backend = "postgresql" if args.database_url else "sqlite (WAL, synchronous=NORMAL)"
    print(f"backend: {backend}; {args.writes} writes x {args.repeat} rounds; median µs per write")
    print(f"  SQLAlchemy Core (reference): {core:8.1f} µs")
    print(f"  DBAPI writer (check path):   {driver:8.1f} µs")
    print(f"  ratio core/driver: {core / driver:.2f}x")


if __name__ == "__main__":
    main()
