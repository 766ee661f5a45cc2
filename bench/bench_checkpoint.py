"""Commit latency under the WAL checkpointer: catching up vs a forced RESTART every 16k frames,
and the WAL cut back by a commit at 64 MB vs left at the size it reached.

    python bench/bench_checkpoint.py [--rate 300] [--seconds 20] [--runs 2] [--dir DIR]
                                     [--configs restart,catchup,trim64]

Two check writers (``DriverWriter``, each on an engine of its own, as two gunicorn workers),
taking turns at a fixed total rate, write the bench's check rows (a decision and its event,
a third of them flagged) into one SQLite file, while a ``WalCheckpointer`` folds the WAL back
from a thread. Each configuration is run ``--runs`` times, in turns, on a fresh database in
``--dir`` (by default a new temporary directory; its filesystem is printed, since the
checkpointer's syncs wait on it: tmpfs hides what a disk adds):

* ``restart``: the former scheme, the baseline: a PASSIVE pass every second, and a RESTART
  checkpoint (which holds every writer through its copy and sync) once the WAL holds 16,384
  frames; ``journal_size_limit`` 64 MB;
* ``catchup``: the service's defaults: a pass every 0.5 s that runs PASSIVE again over what
  landed while it copied until nothing new is behind it; RESTART only past 32,768 frames;
  ``journal_size_limit`` 256 MB, above what the WAL reaches before that RESTART;
* ``trim64``: ``catchup`` with the former ``journal_size_limit`` of 64 MB: the first commit
  after the WAL starts over cuts the file back whenever it had grown past 64 MB (at 600
  commits/s it does; at 300 it stays under).

Printed per run: commit latency percentiles (ms), commits over 5 and 10 ms, checkpoint
passes, RESTARTs forced, times the WAL started over, commits that cut the WAL file back and
each one's latency, and the WAL file's size at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_FORMER_LIMIT = {"journal_size_limit": 64 * 1024 * 1024}
# per configuration: (WalCheckpointer's options, make_engine's), where not the service's defaults
CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "restart": ({"interval_s": 1.0, "catchup_rounds": 0, "restart_frames": 16384}, _FORMER_LIMIT),
    "catchup": ({}, {}),
    "trim64": ({}, _FORMER_LIMIT),
}


def run(config: str, directory: Path, rate: float, seconds: float) -> str:
    from bench.bench_persist import ROUTING, make_write
    from riskctl.db import WalCheckpointer, make_engine
    from riskctl.migrate import upgrade
    from riskctl.persist import DriverWriter

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    db = directory / "bench.db"
    url = f"sqlite:///{db}"
    setup = make_engine(url)
    upgrade(setup)
    setup.dispose()
    checkpointer_options, engine_options = CONFIGS[config]
    engines = [make_engine(url, checkpoint="background", **engine_options) for _ in range(2)]
    writers = [DriverWriter(engine, ROUTING) for engine in engines]
    checkpointer = WalCheckpointer(db, **checkpointer_options).start()
    latencies: list[list[float]] = [[], []]
    wal = db.with_name(db.name + "-wal")
    trimmed: list[float] = []  # latencies of the commits that cut the WAL file back
    wal_size = [0]  # the WAL file's size after the last commit of either writer
    size_lock = threading.Lock()
    period = 2 / rate  # each writer's
    start = time.perf_counter()

    def write(k: int) -> None:
        due = start + k * period / 2
        i = 0
        while due - start < seconds:
            rows = dataclasses.replace(make_write(f"{config}-{k}", i), flagged=i % 3 == 0)
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            t = time.perf_counter()
            writers[k].write(rows)
            latencies[k].append(time.perf_counter() - t)
            with size_lock:  # commits are serialized, so is this: each cut is seen once
                now_size = wal.stat().st_size
                if now_size < wal_size[0]:  # this commit restarted the WAL and cut it back
                    trimmed.append(latencies[k][-1])
                wal_size[0] = now_size
            due += period
            i += 1

    threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    checkpointer.stop()
    wal_mb = wal.stat().st_size / 1e6
    for writer in writers:
        writer.close()
    for engine in engines:
        engine.dispose()
    ms = sorted(x * 1e3 for x in latencies[0] + latencies[1])
    n = len(ms)

    def pct(q: float) -> float:
        return ms[min(n - 1, int(q * n))]

    return (
        f"{config:<8}{n:>8,}{pct(0.5):>7.2f}{pct(0.99):>7.2f}{pct(0.999):>9.2f}{ms[-1]:>8.1f}"
        f"{sum(x > 5 for x in ms):>7}{sum(x > 10 for x in ms):>7}"
        f"{checkpointer.passes:>8}{checkpointer.forced:>8}{checkpointer.restarts:>9}{len(trimmed):>7}{wal_mb:>8.0f}"
        f"  {', '.join(f'{x * 1e3:.1f}' for x in sorted(trimmed)) or '-'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=300.0, help="commits per second, both writers")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    args = ap.parse_args()
    configs = args.configs.split(",")
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        ap.error(f"unknown configs: {', '.join(sorted(unknown))}")
    from bench.bench_load import filesystem

    base = args.dir or Path(tempfile.mkdtemp(prefix="riskctl-bench-checkpoint-"))
    base.mkdir(parents=True, exist_ok=True)
    print(
        f"{args.rate:.0f} commits/s from two writers, {args.seconds:.0f} s per run, "
        f"database in {base} on {filesystem(base)}"
    )
    print(
        f"{'config':<8}{'commits':>8}{'p50':>7}{'p99':>7}{'p99.9':>9}{'max':>8}{'>5ms':>7}{'>10ms':>7}"
        f"{'passes':>8}{'forced':>8}{'restarts':>9}{'trims':>7}{'WAL MB':>8}  trimming commits ms"
    )
    try:
        for r in range(args.runs):
            for config in configs if r % 2 == 0 else configs[::-1]:  # alternating
                print(run(config, base / config, args.rate, args.seconds), flush=True)
    finally:
        for path in [base] if args.dir is None else [base / config for config in configs]:
            shutil.rmtree(path, ignore_errors=True)
    print(
        "(latencies in ms of one commit: a decision, its event and hits; 'restart' is the baseline;\n"
        " trims: commits that cut the WAL file back to journal_size_limit)"
    )


if __name__ == "__main__":
    main()
