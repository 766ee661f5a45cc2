"""Where the slowest checks' time goes: an open loop at a fixed rate, each request's latency
set beside what the machine was doing at that moment.

    python bench/bench_tail.py [--rate 270] [--connections 4] [--seconds 60] [--slow-ms 25]
                               [--instance-dir DIR]

A real ``riskctl serve`` set up as ``bench_load.py`` sets it up (SQLite, embedded Redis, every
rule pack, the trained detectors), loaded in open loop with the simulator's mixed traffic.
Meanwhile a sampler process scans, with ``--sample-ms`` of sleep between scans (so a little
more apart), the state of every thread of the server's processes and, for a thread in
uninterruptible sleep (``D``: waiting on the disk), its kernel stack
(``/proc/<pid>/task/<tid>/stack``, readable by root; else ``wchan``); and, at the first scan
20 ms or more after the last, ``/proc/stat`` (CPU time the hypervisor took: steal) and
``/proc/pressure/io``. Redis's slow log (threshold 5 ms) is read at the end.

Printed: the latency percentiles; each cluster of slow requests (over ``--slow-ms``, less
than 0.5 s apart) with what overlapped it: steal, I/O pressure, the request threads'
(gunicorn workers' main threads) and other threads' ``D`` samples by kernel stack; the slow
log; and a tally of the slow requests by what their cluster overlapped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_load import (  # noqa: E402
    BIN,
    CLK_TCK,
    Server,
    _children,
    bench_instance,
    load_events,
    loadavg,
    make_body_factory,
    setup_instance,
)
from bench.loadgen import closed_loop, open_loop, wait_ready  # noqa: E402

GAP_S = 0.5  # slow requests less than this apart make one cluster
SLOWLOG_US = 5000  # Redis's slow log threshold while the load runs
STEAL_MS = 10  # a cluster with this much CPU stolen in one 20 ms sample interval counts as "steal"


def server_pids(root: int) -> dict[int, str]:
    """The server's processes (pid → role) under ``root``: gunicorn workers, the rest."""
    kids = _children()
    out: dict[int, str] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, ()))
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("redis-server"):
            continue
        out[pid] = "other"
    for pid in out:  # a worker: a leaf whose parent is in the tree (the gunicorn master)
        ppid = int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
        if ppid in out and not kids.get(pid):
            out[pid] = "worker"
    return out


def _stack(pid: int, tid: str) -> str:
    base = f"/proc/{pid}/task/{tid}"
    try:
        lines = Path(f"{base}/stack").read_text().splitlines()
        frames = [line.split("] ", 1)[1].split("+", 1)[0] for line in lines if "] " in line]
        return " < ".join(frames[:4]) or "?"
    except OSError:
        try:
            return Path(f"{base}/wchan").read_text().strip() or "?"
        except OSError:
            return "?"


def sample(pids: dict[int, str], seconds: float, every_s: float, out_path: str) -> None:
    """Write JSON lines: ["d", t, who, stack] per thread seen in D; ["s", t, steal_ticks, io_us];
    at the end ["c", the sampler's CPU seconds, seconds]."""
    end = time.perf_counter() + seconds
    next_sys = 0.0
    with open(out_path, "w") as out:
        while (now := time.perf_counter()) < end:
            if now >= next_sys:
                cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()
                try:
                    io = Path("/proc/pressure/io").read_text().split("\n", 1)[0]
                    io_us = int(io.rsplit("total=", 1)[1])
                except (OSError, IndexError, ValueError):
                    io_us = 0
                out.write(json.dumps(["s", now, int(cpu[8]), io_us]) + "\n")
                next_sys = now + 0.02
            for pid, role in pids.items():
                try:
                    tids = os.listdir(f"/proc/{pid}/task")
                except OSError:
                    continue
                for tid in tids:
                    try:
                        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_bytes()
                    except OSError:
                        continue
                    if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"D":
                        who = "request" if role == "worker" and tid == str(pid) else "other"
                        out.write(json.dumps(["d", now, who, _stack(pid, tid)]) + "\n")
            time.sleep(every_s)
        t = os.times()
        out.write(json.dumps(["c", t.user + t.system, seconds]) + "\n")


def clusters(sent: np.ndarray, lat_ms: np.ndarray, slow_ms: float) -> list[dict]:
    found: list[dict] = []
    for i in np.argsort(sent):
        if lat_ms[i] <= slow_ms:
            continue
        a, b = float(sent[i]), float(sent[i] + lat_ms[i] / 1000)
        if found and a - found[-1]["end"] < GAP_S:
            c = found[-1]
            c["end"] = max(c["end"], b)
            c["n"] += 1
            c["max"] = max(c["max"], float(lat_ms[i]))
        else:
            found.append({"start": a, "end": b, "n": 1, "max": float(lat_ms[i])})
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=270.0, help="checks per second")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--slow-ms", type=float, default=25.0)
    ap.add_argument("--sample-ms", type=float, default=3.0)
    ap.add_argument("--processes", type=int, default=2, help="load generator processes")
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--instance-dir", default=None)
    ap.add_argument("--workers", type=int, default=int(os.environ.get("RISKCTL_WORKERS", "2")))
    args = ap.parse_args()

    tmp, env = bench_instance("riskctl-bench-tail-", args.instance_dir, args.workers, 1)
    key, _metrics_key = setup_instance(env, tmp)  # removes ``tmp`` if it fails
    make_body = make_body_factory(load_events(args.events))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    server = Server("check", [str(BIN / "riskctl"), "serve"], env, 18541, "/readyz")
    try:
        wait_ready(server.ready)
        closed_loop(server.url, headers, make_body, 8, args.processes, 3.0)  # warm-up
        pids = server_pids(server.proc.pid)
        redis = _redis(tmp / "instance")
        redis.config_set("slowlog-log-slower-than", SLOWLOG_US)
        redis.slowlog_reset()
        samples = str(tmp / "samples.jsonl")
        sampler = mp.get_context("fork").Process(
            target=sample, args=(pids, args.seconds + 1.5, args.sample_ms / 1000, samples)
        )
        sampler.start()
        t_wall, t_mono = time.time(), time.perf_counter()
        r = open_loop(
            server.url, headers, make_body, args.rate, args.connections, args.processes, args.seconds
        )
        sampler.join()
        report(args, r, samples, redis.slowlog_get(128), t_wall - t_mono, pids)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"load average at end: {loadavg()}")


def _redis(instance: Path):  # type: ignore[no-untyped-def]
    """A client of the instance's embedded Redis, on the socket its config names (a deep
    instance folder puts the socket under /tmp instead)."""
    import redis

    conf = (instance / "redis" / "redis.conf").read_text().splitlines()
    socket = next(line.split(None, 1)[1] for line in conf if line.startswith("unixsocket "))
    return redis.Redis(unix_socket_path=socket)


def report(args, r, samples_path, slowlog, wall_minus_mono, pids) -> None:  # type: ignore[no-untyped-def]
    lat, sent = r.latencies_ms, r.sent_at
    t0 = float(sent.min()) if sent.size else 0.0
    workers = sum(role == "worker" for role in pids.values())
    print(
        f"open loop {args.rate:.0f}/s on {args.connections} connections for {args.seconds:.0f}s: "
        f"{r.requests} answered, {r.errors} errors, {r.missed} missed; {workers} gunicorn workers"
    )
    if not lat.size:
        print("no request was answered: nothing to set beside the samples")
        return
    print(
        f"latency ms: p50 {np.percentile(lat, 50):.2f}  p99 {np.percentile(lat, 99):.2f}  "
        f"p99.9 {np.percentile(lat, 99.9):.2f}  max {lat.max():.1f}; "
        f"over {args.slow_ms:.0f} ms: {int((lat > args.slow_ms).sum())} ({100 * (lat > args.slow_ms).mean():.2f}%)"
    )
    sys_rows: list[list] = []  # type: ignore[type-arg]
    d_rows: list[list] = []  # type: ignore[type-arg]
    sampler_cpu = 0.0
    with open(samples_path) as f:
        for line in f:
            row = json.loads(line)
            if row[0] == "c":
                sampler_cpu = row[1] / row[2]
            else:
                (sys_rows if row[0] == "s" else d_rows).append(row)
    sys_t = np.array([row[1] for row in sys_rows])
    steal = np.array([row[2] for row in sys_rows], dtype=np.float64) * 1000 / CLK_TCK  # ms, cumulative
    io_ms = np.array([row[3] for row in sys_rows], dtype=np.float64) / 1000

    def window(series: np.ndarray, a: float, b: float) -> tuple[float, float]:
        """Over the samples spanning [a, b]: the total increase, and the largest in one interval."""
        i, j = np.searchsorted(sys_t, [a, b])
        i, j = max(i - 1, 0), min(j, len(series) - 1)
        if j <= i:
            return 0.0, 0.0
        steps = np.diff(series[i : j + 1])
        return float(series[j] - series[i]), float(steps.max())

    found = clusters(sent, lat, args.slow_ms)
    tally: Counter[str] = Counter()
    print(
        f"\nclusters of slow requests (a {args.sample_ms:.0f} ms sample of a thread in D is about that long on the disk):"
    )
    print(
        f"{'at s':>8} {'for ms':>7} {'slow':>5} {'max ms':>7} {'steal ms':>9} {'worst':>6} {'io ms':>6}"
        "  threads in D (samples)"
    )
    for c in found:
        a, b = c["start"], c["end"]
        (st, st_worst), (io, _) = window(steal, a, b), window(io_ms, a, b)
        in_d = Counter((row[2], row[3]) for row in d_rows if a <= row[1] <= b)
        req = sum(v for (who, _), v in in_d.items() if who == "request")
        what = "; ".join(f"{who}: {stack} ({v})" for (who, stack), v in in_d.most_common(3)) or "-"
        print(
            f"{a - t0:8.2f} {1000 * (b - a):7.0f} {c['n']:5} {c['max']:7.1f} {st:9.0f} {st_worst:6.0f} {io:6.0f}  {what}"
        )
        causes = [
            name
            for name, hit in (("steal", st_worst >= STEAL_MS), ("a request thread on the disk", req))
            if hit
        ]
        tally[" and ".join(causes) or "neither"] += c["n"]
    total_d = Counter((row[2], row[3]) for row in d_rows)
    print("\nthreads in D over the whole run (samples):")
    for (who, stack), v in total_d.most_common(8):
        print(f"  {v:5}  {who:8} {stack}")
    whole = float(steal[-1] - steal[0]) if len(steal) else 0.0
    cores = os.cpu_count() or 1
    print(
        f"CPU stolen by the hypervisor over the run: {whole:.0f} ms of {cores * args.seconds * 1000:.0f} "
        f"({cores} vCPUs); the sampler itself used {100 * sampler_cpu:.0f}% of a core"
    )
    print(f"Redis slow log (>= {SLOWLOG_US / 1000:g} ms): {len(slowlog)} entries" + (":" if slowlog else ""))
    for e in sorted(slowlog, key=lambda e: e["start_time"])[:10]:
        at = e["start_time"] - wall_minus_mono - t0
        print(f"  at ~{at:6.0f} s  {e['duration'] / 1000:6.1f} ms  {e['command'][:60]!r}")
    n_slow = sum(tally.values())
    print(
        f"\nslow requests by what their cluster overlapped (steal: >= {STEAL_MS} ms stolen in one "
        "sample interval, 'worst'):"
    )
    for kind, n in tally.most_common():
        print(f"  {n:6}  {100 * n / max(n_slow, 1):5.1f}%  {kind}")
    if not n_slow:
        print("  (no request over the threshold)")


if __name__ == "__main__":
    main()
