"""Client-side cost of ``Velocity.observe`` (one EVALSHA per check) against a real Redis.

    python bench/bench_velocity.py [--events 6000] [--rounds 5] [--compare PATH/velocity.py]

Simulated marketplace events (``bench.bench_load.load_events``) are parsed once; per round
and per implementation the throwaway embedded Redis is flushed, the first half of the events
warms it and the second half is timed. With the three reads and five list lookups a check
sends and the rate limit riding along, as ``riskctl.checks`` calls it. Printed, medians over
rounds (µs per observe):

* ``cpu``: client CPU (``time.process_time``; redis-server is another process);
* ``wall``: wall clock, the Redis wait included;
* ``redis``: redis-server time per EVALSHA (``INFO commandstats`` usec_per_call);
* ``offline``: client CPU of observe with the round trip replaced by packing the command
  (redis-py's own ``pack_command``) and handing back the reply recorded in the live run:
  the planning, argument packing and reply parsing alone, without the socket noise (best
  of a few passes).

``--compare`` loads another copy of ``riskctl/velocity.py`` (e.g. the code before a change)
and runs it interleaved with the current one, on its own Redis database, and counts the
timed events whose features (values and types), freshness, hashes or lookups differ.

Not a test: figures are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
import redis

from bench.bench_load import load_events
from riskctl.events import parse_event
from riskctl.pseudonym import Pseudonymizer
from riskctl.ratelimit import Limit
from riskctl.redisconn import EmbeddedRedis

WINDOWS = ("10m", "1h", "24h", "30d")
KEY = b"k" * 32
OFFLINE_PASSES = 5  # the replay is deterministic: its best pass is the least disturbed


def load_impl(path: str | None) -> ModuleType:
    if path is None:
        import riskctl.velocity

        return riskctl.velocity
    spec = importlib.util.spec_from_file_location(f"velocity_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def extras(pseudo: Pseudonymizer, event: Any) -> tuple[list[tuple[bytes, str]], list[tuple[bytes, str]]]:
    """Five list lookups and three reputation reads, shaped like a check's."""
    dev = pseudo.token("device", event.device_id)
    ip = pseudo.token("ip", event.ip)
    lookups = [(f"rk:l:bench:{name}".encode(), tok) for name, tok in (("device", dev), ("ip", ip))]
    lookups += [(f"rk:l:bench:x{i}".encode(), dev) for i in range(3)]
    reads = [(f"rk:rep:bench:{i}".encode(), dev if i % 2 else ip) for i in range(3)]
    return lookups, reads


class Recorder:
    """Stands in for the registered script: runs it and keeps each reply."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.replies: list[Any] = []

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        reply = self.script(keys=keys, args=args)
        self.replies.append(reply)
        return reply


class Replayer:
    """Packs the EVALSHA the real call would send and returns a recorded reply."""

    def __init__(self, script: Any, conn: Any, replies: list[Any]) -> None:
        self.sha = script.sha
        self.pack = conn.pack_command
        self.replies = replies
        self.i = 0

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        self.pack("EVALSHA", self.sha, len(keys), *keys, *args)
        reply = self.replies[self.i]
        self.i += 1
        return reply


def run_one(
    module: ModuleType,
    client: redis.Redis,
    events: list[Any],
    extra: list[Any],
    limit: Limit,
) -> tuple[dict[str, float], list[Any]]:
    client.flushdb()
    pseudo = Pseudonymizer(KEY)
    vel = module.Velocity(client, pseudo, WINDOWS)
    vel.load_script()
    half = len(events) // 2
    for event, (lookups, reads) in zip(events[:half], extra[:half], strict=True):
        vel.observe(event, lookups, reads, limit)
    client.config_resetstat()
    timed = list(zip(events[half:], extra[half:], strict=True))
    script = vel._script
    recorder = Recorder(script)
    vel._script = recorder
    results = []
    observe = vel.observe
    c0, w0 = time.process_time(), time.perf_counter()
    for event, (lookups, reads) in timed:
        results.append(observe(event, lookups, reads, limit))
    c1, w1 = time.process_time(), time.perf_counter()
    stats = client.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {})
    n = len(timed)
    # the same planning and parsing, the round trip replaced by packing + a recorded reply
    conn = client.connection_pool.get_connection()
    try:
        offline = []
        for _ in range(OFFLINE_PASSES):
            vel._script = Replayer(script, conn, recorder.replies)
            o0 = time.process_time()
            for event, (lookups, reads) in timed:
                observe(event, lookups, reads, limit)
            offline.append(time.process_time() - o0)
    finally:
        client.connection_pool.release(conn)
        vel._script = script
    return {
        "cpu": (c1 - c0) / n * 1e6,
        "wall": (w1 - w0) / n * 1e6,
        "redis": float(evalsha.get("usec_per_call", 0.0)),
        "calls": float(evalsha.get("calls", 0)),
        "offline": min(offline) / n * 1e6,
    }, results


def same(a: Any, b: Any) -> bool:
    if (a.available, a.fresh, a.found, a.hashes, a.limited_ms) != (
        b.available,
        b.fresh,
        b.found,
        b.hashes,
        b.limited_ms,
    ):
        return False
    if list(a.features) != list(b.features):
        return False
    return all(
        type(a.features[k]) is type(b.features[k]) and a.features[k] == b.features[k] for k in a.features
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compare", default=None, help="another velocity.py to run alongside")
    opts = ap.parse_args()

    impls: dict[str, ModuleType] = {"current": load_impl(None)}
    if opts.compare:
        impls = {"compare": load_impl(opts.compare), **impls}
    raw = load_events(opts.events)
    events = [parse_event(orjson.dumps(e)) for e in raw]
    pseudo = Pseudonymizer(KEY)
    extra = [extras(pseudo, e) for e in events]
    limit = Limit(key_id=1, requests=10**9, window_s=60)
    half = len(events) // 2
    kinds: dict[str, int] = {}
    for e in events[half:]:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1  # type: ignore[attr-defined]
    print(f"{len(events)} events ({half} warm-up, {len(events) - half} timed: {kinds}), windows {WINDOWS}")

    tmp = Path(tempfile.mkdtemp(prefix="velo-fast-bench-"))
    server = EmbeddedRedis(tmp).start()
    clients = {
        name: redis.Redis(unix_socket_path=str(server.socket_path), db=i) for i, name in enumerate(impls)
    }
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in impls}
    mismatches = 0
    compared = 0
    try:
        seed = {n: c.ping() for n, c in clients.items()}
        assert all(seed.values())
        for r in range(opts.rounds):
            outs: dict[str, list[Any]] = {}
            order = list(impls) if r % 2 == 0 else list(reversed(impls))
            for name in order:
                fig, outs[name] = run_one(impls[name], clients[name], events, extra, limit)
                figures[name].append(fig)
            if len(outs) == 2:
                a, b = outs.values()
                compared += len(a)
                mismatches += sum(not same(x, y) for x, y in zip(a, b, strict=True))
            line = "  ".join(
                f"{n}: cpu {figures[n][-1]['cpu']:.1f} wall {figures[n][-1]['wall']:.1f} "
                f"redis {figures[n][-1]['redis']:.1f} offline {figures[n][-1]['offline']:.1f}"
                for n in impls
            )
            print(f"round {r + 1}: {line}")
    finally:
        for c in clients.values():
            c.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print("\nmedians over rounds, µs per observe")
    print(
        f"{'impl':10s} {'client cpu':>11s} {'wall':>8s} {'redis/call':>11s} {'offline cpu':>12s} {'calls':>7s}"
    )
    for name in impls:
        med = {k: statistics.median(f[k] for f in figures[name]) for k in figures[name][0]}
        print(
            f"{name:10s} {med['cpu']:11.1f} {med['wall']:8.1f} {med['redis']:11.1f} "
            f"{med['offline']:12.1f} {int(med['calls']):7d}"
        )
    if compared:
        print(f"\nresults compared on {compared} timed observes: {mismatches} differ")


if __name__ == "__main__":
    main()
