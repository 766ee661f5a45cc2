"""Cost per check as stored history grows: 1k, 10k, 100k, 1M events.

    python bench/bench_history.py [--max-history 1000000] [--checks 200] [--rounds 5] [--settle-s 600]

One warmed in-process app (``build_runtime``: SQLite, embedded Redis, every rule pack, the
detectors trained on the first 1k events): the first 1k events of the marketplace simulator
go through the real check path, then the history is grown in steps, and at each size the
median µs of ``CheckService.check`` is measured on new simulated traffic (another seed, with
fresh event_ids; rounds of ``--checks`` checks, the median of the round medians is printed).

This VM's speed drifts by tens of percent over the minutes between two sizes, more than the
effect measured. So a second instance, the *reference*, keeps the 1k history (the same
template checked into a database and a Redis of its own, the same models) and is measured at
every size too, its rounds taken in turn with the grown instance's on the same traffic: the
flat-cost figure is grown/reference at 1M over grown/reference at 1k.

Growing the history fast, in the check path's own format:

* the database: the first 1k events' rows (events, decisions, decision hits, cases and their
  links), exactly as the check path stored them, are copied with ``executemany`` straight in
  SQLite; copy *c* is a new population: event, decision and case ids, subjects and shops get
  the suffix ``-xc``;
* Redis: the same 1k events, with every entity id (buyer, shop, device, card, address,
  account, referrer, campaign) suffixed the same way and the IP moved to a network of its
  own, are applied by the velocity script itself (pipelined, the same keys and arguments
  as a check), so the velocity state and the coupon link graph grow in proportion.

So the stored history grows in events and in entities at the same per-entity rates: a flat
cost means no part of the check path scans or slows with history size. The copied rows are
checkpointed into the database file before measuring (part of "grow db s"): copies written in
seconds would otherwise leave the service's background checkpointer a backlog of hundreds of
MB to copy during the measurement, which gradual live traffic never builds. The measured
checks add to the history too (the sizes printed are counted, not assumed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TABLES = ("events", "decisions", "decision_hits", "cases", "case_decisions")
ID_SUFFIX_KEYS = ("_id", "_hash", "fingerprint")
KEEP_KEYS = {"event_id", "order_id", "review_id", "listing_id", "product_id"}


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def simulated(seed: int, n: int) -> list[dict[str, Any]]:
    from fixtures.simulator import Marketplace

    out = []
    for ev in Marketplace(seed=seed, size=max(500, int(n * 1.1)), days=7, warmup_days=2).event_dicts():
        out.append(ev)
        if len(out) == n:
            break
    return out


def rewrite_event(ev: Any, c: int, key: str = "") -> Any:
    """Copy ``c`` of an event: every entity id suffixed, the IP on a network of its own."""
    if isinstance(ev, dict):
        return {k: rewrite_event(v, c, k) for k, v in ev.items()}
    if isinstance(ev, list):
        return [rewrite_event(v, c, key) for v in ev]
    if isinstance(ev, str):
        if key == "event_id":
            return f"{ev}-h{c}"
        if key == "ip":
            last = ev.rsplit(".", 1)[-1] if "." in ev else "1"
            return f"10.{(c >> 8) & 255}.{c & 255}.{last}"
        if key.endswith(ID_SUFFIX_KEYS) and key not in KEEP_KEYS:
            return f"{ev}-x{c}"
    return ev


class Grower:
    """Copies the template history (rows and velocity state) until the history has ``n`` events."""

    def __init__(
        self, db_path: Path, runtime: Any, template_events: list[dict[str, Any]], settle_s: float = 600.0
    ) -> None:
        self.settle_s = settle_s
        self.db_path = db_path
        self.runtime = runtime
        self.template_events = template_events
        self.copies = 0
        self.settled_s = 0.0  # of the last growth: waiting for Redis's rehash (in "redis s")
        with sqlite3.connect(db_path) as conn:
            self.columns = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in TABLES}
            self.rows = {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in TABLES}
        conn.close()
        self.template_size = len(self.rows["events"])

    @contextlib.contextmanager
    def _redis(self, timeout_s: float) -> Iterator[Any]:
        """A client of its own on the embedded Redis: the check path's has a socket timeout
        of a few milliseconds, too short for bulk commands and snapshots."""
        import redis

        client = redis.Redis.from_url(self.runtime.embedded_redis.url, socket_timeout=timeout_s)
        try:
            yield client
        finally:
            client.close()

    def stored(self) -> int:
        with sqlite3.connect(self.db_path) as conn:
            n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        conn.close()
        return int(n)

    def grow_to(self, n: int, script_cap: int) -> tuple[float, float, str]:
        """Returns seconds spent on the database and on Redis, and how Redis grew."""
        stored = self.stored()
        need = max(0, -(-(n - stored) // self.template_size))
        copies = range(self.copies + 1, self.copies + 1 + need)
        self.copies += need
        t = time.perf_counter()
        self._grow_db(copies)
        t_db = time.perf_counter() - t
        t = time.perf_counter()
        if n <= script_cap:
            self._grow_redis(copies)
            how = "script"
        else:
            self._clone_redis(n / max(stored, 1) - 1)
            how = "clone"
        if need:
            self._snapshot_redis()
            self.settled_s = self._settle_redis(self.settle_s) if self.settle_s > 0 else 0.0
        return t_db, time.perf_counter() - t, how

    def _settle_redis(self, timeout_s: float = 600.0) -> float:
        """Wait until Redis has finished rehashing its key tables; returns the seconds waited.

        Redis grows a table by doubling it and moving the keys over a few at a time (a bucket
        per command that touches it, plus 1 ms of every server tick, ``hz`` = 10 ticks a
        second, while idle). Keys added by the million in a few minutes leave it mid-move for
        far longer than the bench can wait, and every command then looks in both tables and
        moves a bucket: the velocity script's server time (``INFO commandstats``) at 8.7M keys
        was 730-780 µs per call mid-move and 340-370 µs once moved (400 at 100k). A store
        that grew over months is almost never mid-move, so each size is measured after it:
        the wait raises ``hz`` to its maximum (500: about half of each idle second
        rehashing) and puts it back after.

        Whether a table is moving is read cheaply from ``MEMORY STATS`` as Redis 6.2 (the
        embedded one) computes it: 8 bytes per slot plus, per key, 40 in the main table (entry
        and key object) and 24 in the expires table; while a table moves, its slots are those
        of two tables (3 x 2^k), not a power of 2."""
        started = time.monotonic()
        with self._redis(60) as client:
            if not str(client.info("server")["redis_version"]).startswith("6."):
                return 0.0  # another layout: not worked out, measure at once
            hz = client.config_get("hz").get("hz", "10")
            client.config_set("hz", 500)
            try:
                while time.monotonic() - started < timeout_s:
                    keyspace = client.info("keyspace").get("db0", {"keys": 0, "expires": 0})
                    db = client.memory_stats().get("db.0") or {}
                    slots = (
                        (db.get("overhead.hashtable.main", 0) - 40 * keyspace["keys"]) // 8,
                        (db.get("overhead.hashtable.expires", 0) - 24 * keyspace["expires"]) // 8,
                    )
                    if all(n >= 0 and n & (n - 1) == 0 for n in slots):  # one table each
                        return time.monotonic() - started
                    time.sleep(0.5)
                print(f"  (Redis still rehashing after {timeout_s:.0f}s: measuring anyway)")
                return time.monotonic() - started
            finally:
                client.config_set("hz", hz)

    def _snapshot_redis(self) -> None:
        """The embedded Redis snapshots itself (``save 300 1``) at most every 5 minutes: a fork,
        then a child compressing the whole dataset on one of the two cores while the parent
        copies every page it writes. After a growth step the next snapshot is due at once; it
        is taken here (counted in "redis s"), so that it runs before the measurement instead
        of inside it at some sizes and not others. The snapshot's own cost grows with the
        dataset, but it is paid every 5 minutes, not by each check."""
        with self._redis(600) as client:
            before = client.lastsave()
            client.execute_command("BGSAVE", "SCHEDULE")  # after one already running, if any
            while True:
                info = client.info("persistence")
                if not info["rdb_bgsave_in_progress"] and client.lastsave() > before:
                    break
                time.sleep(0.1)

    def _clone_redis(self, factor: float) -> None:
        """Past ``--script-history``: the whole velocity keyspace copied ``factor`` times over
        with DUMP/RESTORE under new names (same types, sizes and TTLs), so Redis holds as many
        keys and as much memory as the history size asks, far faster than running the script."""
        with self._redis(120) as client:
            keys = [k for k in client.scan_iter(count=10_000) if not k.startswith(b"rk:v:{lg}")]
            copies = int(factor) + (1 if factor % 1 else 0)
            quota = int(len(keys) * factor)
            pipe = client.pipeline(transaction=False)
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                for k in chunk:
                    pipe.dump(k)
                    pipe.pttl(k)
                got = pipe.execute()
                for j in range(1, copies + 1):
                    for i, k in enumerate(chunk):
                        if (j - 1) * len(keys) + start + i >= quota:
                            break
                        payload, ttl = got[2 * i], got[2 * i + 1]
                        if payload is not None:
                            pipe.restore(k + b":k%d" % (self.copies * 1000 + j), max(ttl, 0), payload)
                    pipe.execute()

    def _grow_db(self, copies: range) -> None:
        cols = self.columns
        idx = {t: {name: i for i, name in enumerate(cols[t])} for t in TABLES}
        conn = sqlite3.connect(self.db_path, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=OFF")
            next_pk = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM events").fetchone()[0]
            batch = max(1, 50_000 // self.template_size)
            for start in range(0, len(copies), batch):
                out: dict[str, list[tuple]] = {t: [] for t in TABLES}
                for c in copies[start : start + batch]:
                    sfx = f"-x{c}"
                    pk_map = {}
                    e, d, h, k, cd = (idx[t] for t in TABLES)
                    for row in self.rows["events"]:
                        r = list(row)
                        pk_map[r[e["id"]]] = next_pk
                        r[e["id"]] = next_pk
                        next_pk += 1
                        r[e["event_id"]] += "-h" + str(c)
                        for col in ("subject_id", "shop_id"):
                            if r[e[col]] is not None:
                                r[e[col]] += sfx
                        out["events"].append(tuple(r))
                    for row in self.rows["decisions"]:
                        r = list(row)
                        r[d["id"]] += sfx
                        r[d["event_pk"]] = pk_map[r[d["event_pk"]]]
                        r[d["event_id"]] += "-h" + str(c)
                        out["decisions"].append(tuple(r))
                    for row in self.rows["decision_hits"]:
                        r = list(row)
                        r[h["id"]] = None
                        r[h["decision_id"]] += sfx
                        out["decision_hits"].append(tuple(r))
                    for row in self.rows["cases"]:
                        r = list(row)
                        r[k["id"]] += sfx
                        r[k["subject_id"]] += sfx
                        if r[k["shop_id"]] is not None:
                            r[k["shop_id"]] += sfx
                        out["cases"].append(tuple(r))
                    for row in self.rows["case_decisions"]:
                        r = list(row)
                        r[cd["id"]] = None
                        r[cd["case_id"]] += sfx
                        r[cd["decision_id"]] += sfx
                        out["case_decisions"].append(tuple(r))
                conn.execute("BEGIN")
                for t in TABLES:
                    if out[t]:
                        marks = ",".join("?" * len(cols[t]))
                        conn.executemany(f"INSERT INTO {t} ({','.join(cols[t])}) VALUES ({marks})", out[t])
                conn.execute("COMMIT")
            # the copies arrive in seconds, not over months: fold their WAL back into the
            # database now, or the service's checkpointer would still be copying hundreds of
            # MB while the next size is measured (a backlog live traffic never builds)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        # ...and write them to the disk (synchronous=OFF above: nothing was synced). Left to
        # the kernel, gigabytes of dirty pages are written back during the measurement, and
        # past the kernel's dirty limit every write of the service is throttled meanwhile.
        os.sync()

    def _grow_redis(self, copies: range) -> None:
        import copy

        from riskctl.events import parse_event

        velocity = self.runtime.velocity
        script = velocity._script
        # The keys and arguments of each event are the check path's own: ``observe`` plans
        # them, and a stand-in script hands them over instead of sending them one by one.
        planner = copy.copy(velocity)
        planner._script = _capture
        with self._redis(120) as client:
            pipe = client.pipeline(transaction=False)
            pending = 0
            for c in copies:
                for ev in self.template_events:
                    event = parse_event(orjson.dumps(rewrite_event(ev, c)))
                    try:
                        planner.observe(event)
                    except _Captured as planned:
                        keys, args = planned.args
                    script(keys=keys, args=args, client=pipe)
                    pending += 1
                    if pending >= 500:
                        pipe.execute()
                        pending = 0
            if pending:
                pipe.execute()


class _Captured(Exception):
    """Raised by the stand-in velocity script: carries the keys and arguments observe planned."""


def _capture(keys: list[bytes], args: list[Any]) -> None:
    raise _Captured(keys, args)


def dirty() -> float:
    """MB of page cache waiting to be written to disk, or being written, when measuring starts."""
    with open("/proc/meminfo") as f:
        fields = {line.split(":")[0]: int(line.split()[1]) for line in f}
    return (fields.get("Dirty", 0) + fields.get("Writeback", 0)) / 1024


def script_stats(client: Any) -> tuple[int, int]:
    """Calls of the velocity script so far and the server µs they took (``INFO commandstats``)."""
    st = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(st.get("calls", 0)), int(st.get("usec", 0))


def measure(
    grown: Any, reference: Any, bodies: list[bytes], ref_bodies: list[bytes], checks: int, rounds: int
) -> tuple[list[float], list[float]]:
    """Round medians (µs) of ``CheckService.check`` on the grown instance and on the reference,
    their rounds taken in turn (the order alternating), so both see the same machine."""
    for runtime, queue in ((grown, bodies), (reference, ref_bodies)):
        for body in queue[:50]:  # warm the statement caches and pages at this size
            runtime.checks.check(body)
        del queue[:50]
    out: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        pairs = [(0, grown, bodies), (1, reference, ref_bodies)]
        for k, runtime, queue in pairs if r % 2 == 0 else pairs[::-1]:
            check = runtime.checks.check
            times = []
            for body in queue[:checks]:
                t = time.perf_counter()
                check(body)
                times.append(time.perf_counter() - t)
            del queue[:checks]
            out[k].append(statistics.median(times) * 1e6)
    return out


def seeded_instance(path: Path, template: list[dict[str, Any]], models: Path | None = None) -> Any:
    """A new instance at ``path`` (migrated, with ``models`` copied in if given) whose history
    is ``template``, checked through the real path. Returns its settings."""
    from api.runtime import build_runtime
    from riskctl.config import Settings
    from riskctl.db import make_engine
    from riskctl.migrate import upgrade

    os.environ["RISKCTL_INSTANCE_PATH"] = str(path)
    settings = Settings.from_env()
    settings.instance.mkdir(parents=True)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    engine.dispose()
    if models is not None:
        shutil.copytree(models, settings.instance / "models")
    runtime = build_runtime(settings)
    try:
        for ev in template:
            runtime.checks.check(orjson.dumps(ev))
    finally:
        runtime.close()
    return settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-history", type=int, default=1_000_000)
    ap.add_argument("--checks", type=int, default=200, help="checks per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--script-history",
        type=int,
        default=100_000,
        help="grow Redis by running the velocity script up to this size, by cloning keys past it",
    )
    ap.add_argument(
        "--settle-s",
        type=float,
        default=600.0,
        help="longest wait, after a growth step, for Redis to finish rehashing (0: measure at once)",
    )
    args = ap.parse_args()
    sizes = [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= args.max_history]

    tmp = Path(tempfile.mkdtemp(prefix="riskctl-bench-history-"))
    for k in [k for k in os.environ if k.startswith("RISKCTL_")]:
        del os.environ[k]
    os.environ.update(RISKCTL_INSTANCE_PATH=str(tmp / "instance"), RISKCTL_LOG_LEVEL="WARNING")

    from api.cli import train_detectors
    from api.runtime import build_runtime

    print(f"load average at start: {loadavg()}  ({os.cpu_count()} cores)")
    t0 = time.perf_counter()
    template = simulated(7, 1_000)
    settings = seeded_instance(tmp / "instance", template)
    trained = train_detectors(settings, None, min_rows=20, quiet=True)
    # the reference: a second instance that keeps its 1k history (the same template checked
    # into a database and a Redis of its own, the same trained models), measured in turn with
    # the grown one at every size, so the machine's drift over the run cancels out
    ref_settings = seeded_instance(tmp / "reference", template, models=settings.instance / "models")
    reference = build_runtime(ref_settings)
    runtime = build_runtime(settings)
    # benchmark instances: no RDB snapshot (a fork writing gigabytes) in the middle of a measurement
    runtime.redis.config_set("save", "")
    reference.redis.config_set("save", "")
    per_level = args.rounds * args.checks + 50
    traffic = simulated(29, per_level * len(sizes))
    tag = time.time_ns() % 10**9
    bodies = [orjson.dumps(dict(ev, event_id=f"hb-{tag}-{i}")) for i, ev in enumerate(traffic)]
    ref_bodies = [orjson.dumps(dict(ev, event_id=f"hr-{tag}-{i}")) for i, ev in enumerate(traffic)]
    print(
        f"set-up: 1k events checked, {len(trained)} detectors trained, "
        f"{len(bodies)} measurement events ready: {time.perf_counter() - t0:.0f}s"
    )
    try:
        grower = Grower(settings.instance / "riskctl.db", runtime, template, settle_s=args.settle_s)
        print(
            f"{'history':>10}{'stored':>10}{'median µs':>11}{'best':>6}   rounds µs{'':<22}{'ref µs':>7}{'x ref':>6}"
            f"{'grow db s':>10}{'redis s':>9} {'how':<7}"
            f"{'script µs':>10}{'redis keys':>11}{'redis MB':>9}{'db MB':>8}{'dirty MB':>9}  load"
        )
        results = {}
        for n in sizes:
            t_db, t_redis, how = grower.grow_to(n, args.script_history)
            if grower.settled_s >= 1:
                print(
                    f"  ({n:,}: {grower.settled_s:.0f}s of 'redis s' waiting for Redis to finish rehashing)"
                )
            stored = grower.stored()
            dirty_mb = dirty()
            before = script_stats(runtime.redis)
            rounds, ref_rounds = measure(runtime, reference, bodies, ref_bodies, args.checks, args.rounds)
            after = script_stats(runtime.redis)
            script_us = (after[1] - before[1]) / max(1, after[0] - before[0])
            med, ref = statistics.median(rounds), statistics.median(ref_rounds)
            # per round, grown over reference (the two measured back to back), then the median
            vs_ref = statistics.median(g / r for g, r in zip(rounds, ref_rounds, strict=True))
            results[n] = (med, min(rounds), vs_ref)
            info = runtime.redis.info("memory")
            db_mb = sum(p.stat().st_size for p in settings.instance.glob("riskctl.db*")) / 1e6
            print(
                f"{n:>10,}{stored:>10,}{med:>11.0f}{min(rounds):>6.0f}   {', '.join(f'{x:.0f}' for x in rounds):<31}"
                f"{ref:>7.0f}{vs_ref:>6.2f}{t_db:>10.1f}{t_redis:>9.1f} {how:<7}{script_us:>10.0f}{runtime.redis.dbsize():>11,}"
                f"{info['used_memory'] / 1e6:>9.0f}{db_mb:>8.0f}{dirty_mb:>9.0f}  {loadavg()}"
            )
        first, last = sizes[0], sizes[-1]
        (m_last, b_last, x_last), (m_first, b_first, x_first) = results[last], results[first]
        print(
            f"\nratio {last // 1000}k/{first // 1000}k against the reference measured alongside: "
            f"{x_last / x_first:.2f}x ({x_last:.2f} vs {x_first:.2f} of the 1k-history reference)"
        )
        print(
            f"ratio {last // 1000}k/{first // 1000}k of the raw medians: {m_last / m_first:.2f}x "
            f"({m_last:.0f} vs {m_first:.0f} µs), best round {b_last / b_first:.2f}x (minutes apart: "
            "the machine's speed drifts in between)"
        )
        print(
            "(median: of the round medians; best: the fastest round median; ref µs: the reference\n"
            " instance (1k history) in rounds taken in turn; x ref: median over rounds of grown/reference;\n"
            " script µs: Redis's server time per velocity-script call during the measurement)"
        )
    finally:
        reference.close()
        runtime.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at end: {loadavg()}; total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
