"""HTTP benchmark: the bare Flask JSON endpoint vs ``POST /v1/checks``, same gunicorn settings.

    python bench/bench_http.py [--duration 10] [--connections 8] [--rounds 2]

Both servers run from ``api/gunicorn_conf.py`` with the same RISKCTL_WORKERS/THREADS; the
check server is a real ``riskctl serve`` (SQLite, embedded Redis, the rule pack, demo
history). Rounds alternate bare/check so that machine noise hits both; medians are printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import closed_loop, scrape, wait_ready  # noqa: E402
from fixtures.demo import demo_events  # noqa: E402

BIN = Path(sys.executable).parent
EVENTS = [e for e in demo_events(3000, seed=11)]


def make_body(stream: int, seq: int) -> bytes:
    event = dict(EVENTS[(stream * 7919 + seq) % len(EVENTS)])
    event["event_id"] = f"bench-{os.getpid()}-{stream}-{seq}-{time.monotonic_ns()}"
    return orjson.dumps(event)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="riskctl-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKCTL_")}
    env.update(
        RISKCTL_INSTANCE_PATH=str(tmp / "instance"),
        RISKCTL_LOG_LEVEL="WARNING",
        RISKCTL_WORKERS=str(args.workers),
        RISKCTL_HOST="127.0.0.1",
    )
    check_port, bare_port = 18431, 18432
    subprocess.run([str(BIN / "riskctl"), "dev-setup"], env=env, check=True, capture_output=True)
    key = (tmp / "instance" / "demo_pipeline_key").read_text().strip()
    metrics_key = subprocess.run(
        [str(BIN / "riskctl"), "keys", "create", "--scope", "metrics"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    procs = [
        subprocess.Popen(
            [str(BIN / "riskctl"), "serve"],
            env=env | {"RISKCTL_PORT": str(check_port)},
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "api" / "gunicorn_conf.py"),
                "bench.bare_app:app",
            ],
            env=env | {"RISKCTL_PORT": str(bare_port)},
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{check_port}/readyz")
        wait_ready(f"http://127.0.0.1:{bare_port}/v1/checks")
        targets = {
            "bare": (f"http://127.0.0.1:{bare_port}/v1/checks", {"Content-Type": "application/json"}),
            "check": (
                f"http://127.0.0.1:{check_port}/v1/checks",
                {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
            ),
        }
        for url, headers in targets.values():  # warm-up
            closed_loop(url, headers, make_body, args.connections, args.processes, 2.0)
        check_url = f"http://127.0.0.1:{check_port}"
        before = scrape(check_url, metrics_key)
        runs: dict[str, list] = {"bare": [], "check": []}
        for _ in range(args.rounds):
            for name, (url, headers) in targets.items():
                runs[name].append(
                    closed_loop(url, headers, make_body, args.connections, args.processes, args.duration)
                )
        after = scrape(check_url, metrics_key)
        checks = after["riskctl_decisions_total"] - before.get("riskctl_decisions_total", 0.0)
        print(
            f"\nmachine: {os.cpu_count()} cores; gunicorn workers={args.workers} threads={env.get('RISKCTL_THREADS', 'default')}; "
            f"{args.connections} keep-alive connections, {args.rounds} x {args.duration:.0f}s per endpoint (medians)"
        )
        print(f"{'endpoint':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
        summary = {}
        for name, results in runs.items():
            rps = median(r.rps for r in results)
            p50 = median(r.pct(50) for r in results)
            p99 = median(r.pct(99) for r in results)
            errors = sum(r.errors for r in results)
            summary[name] = (rps, p50, p99)
            label = "bare Flask JSON endpoint" if name == "bare" else "POST /v1/checks"
            print(f"{label:<28}{rps:>10.0f}{p50:>10.2f}{p99:>10.2f}{errors:>8}")
        ratio = summary["check"][0] / summary["bare"][0]
        print(f"\nthroughput ratio check/bare: {ratio:.2f}x (target >= 0.5x once rules and detectors are in)")
        print(f"p50 ratio check/bare: {summary['check'][1] / summary['bare'][1]:.2f}x")
        if checks:
            trips = after["riskctl_redis_roundtrips_total"] - before.get(
                "riskctl_redis_roundtrips_total", 0.0
            )
            commits = after["riskctl_db_commits_total"] - before.get("riskctl_db_commits_total", 0.0)
            print(
                f"per check (server counters over {checks:.0f} checks): "
                f"{trips / checks:.3f} Redis round trips, {commits / checks:.3f} database commits"
            )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
