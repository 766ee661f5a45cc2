"""Simulator throughput and ``riskctl demo`` wall time at its default size.

    .venv/bin/python bench/bench_demo.py               # simulator at 20k and 200k, then the demo
    .venv/bin/python bench/bench_demo.py --million     # also one million simulated events
    .venv/bin/python bench/bench_demo.py --no-demo     # simulator only

Simulator: median of three runs of generating N events, against a baseline measured in the
same run on the same events: serialising them to JSON (what sending them costs at least),
printed as a ratio. Demo: one run at the default size with the time of each step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures.simulator import Marketplace


def _median(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_simulator(size: int, repeats: int) -> None:
    market = Marketplace(seed=7, size=size)
    events = list(market.event_dicts())
    gen = _median(lambda: sum(1 for _ in Marketplace(seed=7, size=size).events()), repeats)
    ser = _median(lambda: [orjson.dumps(e) for e in events], repeats)
    print(
        f"simulator {size:>9,} asked, {len(events):>9,} events: {gen:7.2f}s  {len(events) / gen:>9,.0f} events/s"
        f"   | baseline orjson.dumps {ser:6.2f}s  {len(events) / ser:>11,.0f} events/s"
        f"   | ratio {gen / ser:5.1f}x"
    )


def bench_demo(size: int) -> None:
    from rich.console import Console

    from api.demo_cli import run_demo

    with tempfile.TemporaryDirectory(prefix="bench_demo_") as tmp:
        t0 = time.perf_counter()
        run = run_demo(
            seed=7,
            size=size,
            days=14,
            warmup_days=4,
            concurrency=4,
            out=Path(tmp) / "instance",
            url=None,
            key=None,
            moderators=3,
            capacity=200,
            workers=2,
            console=Console(stderr=True, quiet=True),
        )
        wall = time.perf_counter() - t0
    p = run.report.performance
    print(
        f"riskctl demo --size {size}: {wall:.0f}s wall for {len(run.sims):,} events "
        f"(budget 300s: {wall / 300:.0%} of it); {p['throughput_rps']} checks/s, "
        f"p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms"
    )
    print("  steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in run.report.phases.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--million", action="store_true", help="also generate one million events (about two minutes)"
    )
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--demo-size", type=int, default=10_000)
    args = ap.parse_args()
    bench_simulator(20_000, 3)
    bench_simulator(200_000, 3)
    if args.million:
        bench_simulator(1_000_000, 1)
    if not args.no_demo:
        bench_demo(args.demo_size)


if __name__ == "__main__":
    main()
