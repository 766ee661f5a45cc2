"""Two web workers and job processes writing one SQLite file at once: no "database is locked"
in any response, in the server's log, or in any job's output."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from tests import factories
from tests.cases.receiver import Receiver
from tests.faults.support import WriteLockProbe, encode, post_check, realistic_event, server_log
from tests.live import BIN, start_server

pytestmark = pytest.mark.live

LOAD_SECONDS = 12.0
HISTORY = 1000
# Tighter than the default 5 s for every process here (web workers and jobs alike), so that a
# job holding SQLite's one write lock for seconds shows at this test's scale (a backlog of
# 1,000 decisions) and not only at production scale (50,000 per reputation run).
BUSY_TIMEOUT_MS = 2000
SECRET = "whsec-fault-0123456789abcdef0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]
LOCKED = ("database is locked", "database table is locked", "SQLITE_BUSY", "OperationalError")


def brushing_orders(tag: str, shop: str, n: int) -> list[dict]:
    """Many orders from two buyers at one shop within an hour: the brushing scan's pattern."""
    return [
        factories.order(
            event_id=f"evt-{tag}-{i:04d}",
            order_id=f"ord-{tag}-{i:04d}",
            shop_id=shop,
            buyer_id=f"buyer-{tag}-{i % 2}",
            occurred_at=f"2026-11-20T10:{i % 50:02d}:00Z",
        )
        for i in range(n)
    ]


def _job(mode: str, env: dict[str, str], out: Path) -> tuple[subprocess.Popen[bytes], Path]:
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.jobs", mode, str(LOAD_SECONDS)],
            env=env,
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    return proc, out


def test_web_workers_and_jobs_write_sqlite_at_once_without_locking(tmp_path):
    rx = Receiver()
    server = start_server(
        tmp_path / "instance",
        workers=2,
        extra_env={
            "RISKCTL_WEBHOOK_URL": rx.url,
            "RISKCTL_WEBHOOK_SECRET": SECRET,
            "RISKCTL_SQLITE_BUSY_TIMEOUT_MS": str(BUSY_TIMEOUT_MS),
        },
    )
    statuses: dict[int, int] = {}
    bodies_with_lock: list[bytes] = []
    procs: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    try:
        key = server.cli("keys", "create", "--scope", "pipeline").strip()
        # A stored history for the jobs to chew on from their first round: the first
        # reputation update folds all of it while the web workers take checks.
        server.cli("demo-data", "--events", str(HISTORY))
        for event in brushing_orders("seed", "shop-brush-0", 12):
            assert post_check(server, key, encode(event)).status == 200

        def client(i: int) -> None:
            rng = random.Random(i)
            n = 0
            while not stop.is_set():
                if n % 10 == 0:  # now and then a burst at a fresh shop, for the scans to find
                    events = brushing_orders(f"b{i}-{n}", f"shop-brush-{i}-{n}", 9)
                else:
                    events = [realistic_event(rng, f"w{i}", n)]
                n += 1
                for event in events:
                    reply = post_check(server, key, encode(event))
                    statuses[reply.status] = statuses.get(reply.status, 0) + 1
                    if any(word.encode() in reply.body for word in LOCKED):
                        bodies_with_lock.append(reply.body)

        outbox_out = tmp_path / "outbox.log"
        with open(outbox_out, "wb") as f:
            outbox = subprocess.Popen(
                [str(BIN / "riskctl"), "outbox", "work", "--lease", "60"],
                env=server.env,
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        procs.append(outbox)
        jobs = [
            _job("casework", server.env, tmp_path / "casework.log"),
            _job("cli", server.env, tmp_path / "cli.log"),
        ]
        procs += [p for p, _ in jobs]
        threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
        with WriteLockProbe(tmp_path / "instance" / "riskctl.db") as probe:
            for t in threads:
                t.start()
            try:  # the web load lasts as long as the jobs do
                codes = [p.wait(120) for p, _ in jobs]
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
        # the outbox worker's next poll delivers the last actions; SIGTERM then stops it cleanly
        for _ in range(50):
            if len(rx.requests) >= _resolved((tmp_path / "casework.log").read_text()):
                break
            time.sleep(0.1)
        outbox.send_signal(signal.SIGTERM)
        codes.append(outbox.wait(30))
    finally:
        stop.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        server.stop()
        rx.close()
    outputs = {
        "server": server_log(server),
        "outbox": outbox_out.read_text(),
        **{out.stem: out.read_text() for _, out in jobs},
    }
    checks = sum(statuses.values())
    resolved = _resolved(outputs["casework"])
    print(
        f"\nsqlite writers: checks={checks} statuses={statuses} "
        f"casework job: {outputs['casework'].strip()[-200:]!r} cli job: {[x for x in outputs['cli'].splitlines() if x.startswith(('ran ', 'commands='))]} "
        f"outbox worker: {outputs['outbox'].strip()[-200:]!r} webhooks received={len(rx.requests)} "
        f"longest write-lock hold {probe.longest_s:.2f} s at {probe.longest_at:.2f}"
    )
    for name, text in outputs.items():
        assert not any(word in text for word in LOCKED), (name, text[-3000:])
        assert "Traceback" not in text, (name, text[-3000:])
    assert codes == [0, 0, 0], outputs
    assert bodies_with_lock == []
    assert statuses.keys() == {200}, statuses
    # The jobs really wrote while the web workers did: rounds of commands, resolutions, deliveries.
    assert int(outputs["cli"].rsplit("commands=", 1)[1].split()[0]) >= 4
    assert resolved >= 1
    assert len(rx.requests) >= 1
    assert all(orjson.loads(r.body)["type"] == "warn_seller" for r in rx.requests)


def _resolved(casework_output: str) -> int:
    return int(casework_output.rsplit("resolved=", 1)[1].split()[0]) if "resolved=" in casework_output else 0
