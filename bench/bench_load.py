"""Load benchmark: the bare Flask JSON endpoint vs ``POST /v1/checks`` under the same gunicorn settings.

    python bench/bench_load.py [--duration 5] [--rounds 3] [--connections 4,32] [--rate R]

One run, one machine, both servers up side by side from ``api/gunicorn_conf.py`` with the same
RISKCTL_WORKERS / RISKCTL_THREADS:

* the check server is a real ``riskctl serve``: SQLite, embedded Redis, every rule pack, the
  detectors trained on the simulated history that ``riskctl dev-setup`` loads;
* the bare server is ``bench/bare_app.py``: parse the JSON body, answer JSON.

The events are the marketplace simulator's (``fixtures/simulator.py``): orders, reviews,
coupon redemptions and listings with every abuse campaign mixed in, each sent with a fresh
event_id. Per round, for each connection count, it runs closed loop (max throughput) then
open loop at a fixed rate (latency from the intended send time, so queueing counts), bare
then check, back to back so that machine noise hits both. Medians over rounds are printed,
with the ratios check/bare from the same run, the server CPU per request (utime+stime from
/proc of the gunicorn master and workers, and of redis-server, before/after each run), and
the check server's own counters of Redis round trips and database commits per check
(``/metrics``). Bounded: about rounds x connections x 4 x duration seconds plus set-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from statistics import median

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import LoadResult, closed_loop, open_loop, scrape, wait_ready  # noqa: E402

BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGETS = {"p99_4": 10.0, "p99_32": 25.0, "throughput_ratio": 0.5}


def load_events(n: int) -> list[dict]:
    from fixtures.simulator import Marketplace

    # a different seed from the stored history (dev-setup's seed 7): new traffic, same shapes
    return list(Marketplace(seed=29, size=n, days=7, warmup_days=2).event_dicts())


def make_body_factory(events: list[dict]):  # type: ignore[no-untyped-def]
    bodies = []
    for ev in events:
        ev = dict(ev)
        ev["event_id"] = "@@ID@@"
        bodies.append(orjson.dumps(ev).split(b"@@ID@@"))
    tag = f"{os.getpid()}-{time.time_ns() % 10**9}"

    def make_body(stream: int, seq: int) -> bytes:
        head, tail = bodies[(stream * 7919 + seq) % len(bodies)]
        return head + f"lb-{tag}-{os.getpid()}-{stream}-{seq}".encode() + tail

    return make_body


# -- processes and their CPU ------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds (utime+stime) of ``root`` and its descendants: redis-server apart, the rest as server."""
    kids = _children()
    out = {"server": 0.0, "redis": 0.0}
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, ()))
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")]
        fields = stat[stat.rindex(b")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        out["redis" if comm.startswith(b"redis-server") else "server"] += seconds
    return out


def filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (the longest matching mount point)."""
    best, fstype = "", "unknown"
    with open("/proc/self/mounts") as f:
        for line in f:
            _dev, mnt, kind, *_ = line.split()
            if str(path).startswith(mnt) and len(mnt) > len(best):
                best, fstype = mnt, kind
    return f"{fstype} ({best})"


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# -- the run ----------------------------------------------------------------------------------
class Server:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, ready: str) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(
            argv,
            env=env | {"RISKCTL_PORT": str(port)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.ready = f"http://127.0.0.1:{port}{ready}"
        self.url = f"http://127.0.0.1:{port}/v1/checks"

    def cpu(self) -> dict[str, float]:
        return tree_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)


def bench_instance(
    prefix: str, instance_dir: str | None, workers: int, threads: int
) -> tuple[Path, dict[str, str]]:
    """A new directory for a bench's instance, and the environment its servers run with."""
    print(f"load average at start: {loadavg()}  ({os.cpu_count()} cores)")
    # stopped with SIGTERM (kill, a CI timeout) as with Ctrl-C: the servers are stopped
    # and the instance removed in the caller's ``finally``, not left running
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=instance_dir))
    print(f"instance: {tmp} on {filesystem(tmp)}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKCTL_")}
    env.update(
        RISKCTL_INSTANCE_PATH=str(tmp / "instance"),
        RISKCTL_LOG_LEVEL="WARNING",
        RISKCTL_WORKERS=str(workers),
        RISKCTL_THREADS=str(threads),
        RISKCTL_HOST="127.0.0.1",
    )
    return tmp, env


def setup_instance(env: dict[str, str], tmp: Path) -> tuple[str, str]:
    """Set up the instance in ``tmp`` (removed if that fails); the pipeline and metrics keys."""
    try:
        return _setup_instance(env, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _setup_instance(env: dict[str, str], tmp: Path) -> tuple[str, str]:
    riskctl = str(BIN / "riskctl")
    t = time.perf_counter()
    # migrate, load the simulated history through the check path, train the detectors
    subprocess.run([riskctl, "dev-setup"], env=env, check=True, capture_output=True)
    models = tmp / "instance" / "models"
    if not any(models.glob("*/current")):
        subprocess.run([riskctl, "train"], env=env, check=True, capture_output=True)
    trained = sorted(p.parent.name for p in models.glob("*/current"))
    print(
        f"set-up (dev-setup: history + detectors {', '.join(trained) or 'NONE'}): {time.perf_counter() - t:.0f}s"
    )
    key = (tmp / "instance" / "demo_pipeline_key").read_text().strip()
    metrics_key = subprocess.run(
        [riskctl, "keys", "create", "--scope", "metrics", "--name", "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return key, metrics_key


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", default="4,32", help="comma-separated connection counts")
    ap.add_argument("--processes", type=int, default=2, help="load generator processes")
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open-loop rate, req/s (default: half the check's closed-loop req/s measured just before)",
    )
    ap.add_argument("--workers", type=int, default=int(os.environ.get("RISKCTL_WORKERS", "2")))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RISKCTL_THREADS", "1")))
    ap.add_argument("--events", type=int, default=6000, help="distinct simulated events to cycle through")
    ap.add_argument(
        "--instance-dir",
        default=None,
        help="where the check server's instance (SQLite, Redis snapshot) lives; default a temporary "
        "directory under $TMPDIR. Pointing it at tmpfs (/dev/shm) separates the disk's stalls from the code's",
    )
    args = ap.parse_args()
    conn_counts = [int(c) for c in args.connections.split(",")]

    tmp, env = bench_instance("riskctl-bench-load-", args.instance_dir, args.workers, args.threads)
    key, metrics_key = setup_instance(env, tmp)
    events = load_events(args.events)
    kinds = Counter(e["kind"] for e in events)
    print(f"events: {len(events)} simulated, {dict(kinds)}")
    make_body = make_body_factory(events)

    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "api" / "gunicorn_conf.py")]
    servers = {
        "bare": Server("bare", [*gunicorn, "bench.bare_app:app"], env, 18532, "/v1/checks"),
        "check": Server("check", [str(BIN / "riskctl"), "serve"], env, 18531, "/readyz"),
    }
    headers = {
        "bare": {"Content-Type": "application/json"},
        "check": {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    }
    check_base = f"http://127.0.0.1:{servers['check'].port}"
    try:
        for s in servers.values():
            wait_ready(s.ready)
        for name, s in servers.items():  # warm-up: imports, caches, connections
            closed_loop(s.url, headers[name], make_body, 8, args.processes, 3.0)
        worker_class = "gthread" if args.threads > 1 else "sync"
        print(
            f"gunicorn: {args.workers} workers x {args.threads} threads ({worker_class}); "
            f"{args.rounds} rounds x {args.duration:.0f}s per measurement; open-loop rate "
            + (f"{args.rate:.0f} req/s" if args.rate else "half the check's closed-loop req/s just measured")
        )

        results: dict[tuple[str, int, str], list[tuple[LoadResult, dict[str, float]]]] = {}
        counters = {"checks": 0.0, "trips": 0.0, "commits": 0.0, "degraded": 0.0}
        # a /metrics read is an API request like any other: it counts against its key's rate
        # limit in Redis, inside the window it closes. Its own trips, measured here, are
        # taken out of each window's count.
        idle = scrape(check_base, metrics_key)
        scrape_trips = scrape(check_base, metrics_key).get("riskctl_redis_roundtrips_total", 0.0) - idle.get(
            "riskctl_redis_roundtrips_total", 0.0
        )
        print(
            f"a /metrics read makes {scrape_trips:.0f} Redis round trip(s) of its own: taken out of the counts"
        )
        rates: dict[int, list[float]] = {c: [] for c in conn_counts}
        rate = args.rate
        for rnd in range(args.rounds):
            for conns in conn_counts:
                for mode in ("closed", "open"):
                    if mode == "open":
                        rates[conns].append(rate)
                    for name, s in servers.items():
                        if name == "check":
                            before = scrape(check_base, metrics_key)
                        cpu0 = s.cpu()
                        if mode == "closed":
                            r = closed_loop(
                                s.url, headers[name], make_body, conns, args.processes, args.duration
                            )
                        else:
                            r = open_loop(
                                s.url, headers[name], make_body, rate, conns, args.processes, args.duration
                            )
                        cpu1 = s.cpu()
                        time.sleep(0.3)  # let the last answers' counters land
                        if name == "check":
                            after = scrape(check_base, metrics_key)

                            def d(k: str) -> float:
                                return after.get(k, 0.0) - before.get(k, 0.0)  # noqa: B023

                            counters["checks"] += d("riskctl_decisions_total")
                            counters["trips"] += d("riskctl_redis_roundtrips_total") - scrape_trips
                            counters["commits"] += d("riskctl_db_commits_total")
                            counters["degraded"] += d("degraded")
                        n = max(r.requests, 1)
                        cpu = {k: (cpu1[k] - cpu0[k]) * 1000 / n for k in cpu0}  # ms per request
                        cpu["client"] = r.client_cpu_s * 1000 / n
                        results.setdefault((mode, conns, name), []).append((r, cpu))
                        if mode == "closed" and name == "check" and not args.rate:
                            # the open-loop rate: half of what the check just sustained (the
                            # machine is shared, so its capacity is measured, not assumed)
                            rate = max(10.0, round(r.rps * 0.5))
            print(f"  round {rnd + 1}/{args.rounds} done, load average {loadavg()}")

        report(results, conn_counts, {c: median(v) for c, v in rates.items()}, counters)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"load average at end: {loadavg()}")


def report(results, conn_counts, rates, counters) -> None:  # type: ignore[no-untyped-def]
    def med(key, f):  # type: ignore[no-untyped-def]
        return median(f(r, c) for r, c in results[key])

    print()
    head = f"{'mode':<22}{'endpoint':<8}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
    head += f"{'err':>6}{'missed':>8}{'cpu ms/req':>11}{'redis':>7}{'client':>8}"
    print(head)
    summary = {}
    for mode in ("closed", "open"):
        for conns in conn_counts:
            for name in ("bare", "check"):
                key = (mode, conns, name)
                row = {
                    "rps": med(key, lambda r, c: r.rps),
                    "p50": med(key, lambda r, c: r.pct(50)),
                    "p99": med(key, lambda r, c: r.pct(99)),
                    "p999": med(key, lambda r, c: r.pct(99.9)),
                    "cpu": med(key, lambda r, c: c["server"]),
                    "redis": med(key, lambda r, c: c["redis"]),
                    "client": med(key, lambda r, c: c["client"]),
                }
                errors = sum(r.errors for r, _ in results[key])
                missed = sum(r.missed for r, _ in results[key])
                summary[key] = row
                label = (
                    f"{mode} loop, {conns} conn"
                    if mode == "closed"
                    else f"open {rates[conns]:.0f}/s, {conns} conn"
                )
                print(
                    f"{label:<22}{name:<8}{row['rps']:>8.0f}{row['p50']:>9.2f}{row['p99']:>9.2f}"
                    f"{row['p999']:>10.2f}{errors:>6}{missed:>8}{row['cpu']:>11.3f}{row['redis']:>7.3f}"
                    f"{row['client']:>8.3f}"
                )
    print(
        "(medians over rounds; cpu = gunicorn master+workers, redis = redis-server, client = load generator)"
    )
    print("\nratios check/bare (same run):")
    for mode in ("closed", "open"):
        for conns in conn_counts:
            b, c = summary[(mode, conns, "bare")], summary[(mode, conns, "check")]
            print(
                f"  {mode:<6} {conns:>3} conn: throughput {c['rps'] / b['rps']:.2f}x, p50 {c['p50'] / b['p50']:.2f}x, "
                f"p99 {c['p99'] / b['p99']:.2f}x, server cpu/req {c['cpu'] / b['cpu']:.2f}x"
            )
    if counters["checks"]:
        n = counters["checks"]
        print(
            f"\nper check (check server's /metrics over {n:.0f} checks): "
            f"{counters['trips'] / n:.4f} Redis round trips ({counters['trips']:.0f}), "
            f"{counters['commits'] / n:.4f} database commits ({counters['commits']:.0f}); "
            f"{counters['degraded']:.0f} answers degraded (a degraded check may skip Redis)"
        )
    print("\ntargets:")
    best = max(conn_counts)
    tr = summary[("closed", best, "check")]["rps"] / summary[("closed", best, "bare")]["rps"]
    lines = [
        (f"throughput check/bare (closed loop, {best} conn) >= 0.5x", tr, tr >= TARGETS["throughput_ratio"])
    ]
    for conns, limit in ((4, TARGETS["p99_4"]), (32, TARGETS["p99_32"])):
        for mode in ("open", "closed"):
            if (mode, conns, "check") in summary:
                p = summary[(mode, conns, "check")]["p99"]
                what = f"open loop {rates[conns]:.0f}/s" if mode == "open" else "closed loop, saturated"
                lines.append((f"check p99 at {conns} conn ({what}) <= {limit:.0f} ms", p, p <= limit))
    if counters["checks"]:
        trips = counters["trips"] / counters["checks"]
        commits = counters["commits"] / counters["checks"]
        lines.append(("Redis round trips per check == 1", trips, abs(trips - 1) < 0.005))
        lines.append(("database commits per check <= 1", commits, commits <= 1.005))
    for label, value, ok in lines:
        print(f"  {'met ' if ok else 'MISS'}  {label}: {value:.3f}")


if __name__ == "__main__":
    main()
