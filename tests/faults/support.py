"""Helpers for the fault tests: a retrying HTTP client, realistic events, gunicorn's workers."""

from __future__ import annotations

import http.client
import json
import os
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests import factories
from tests.live import LiveServer

# Connection-level failures a client sees when the worker serving it is killed.
TRANSIENT = (ConnectionError, http.client.HTTPException, TimeoutError, OSError)


@dataclass
class Reply:
    status: int
    body: bytes
    seconds: float


def post_check(server: LiveServer, key: str, body: bytes, timeout: float = 10.0) -> Reply:
    """One POST /v1/checks on a new connection (so gunicorn spreads them over its workers)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(
            "POST",
            "/v1/checks",
            body=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, data, time.monotonic() - started)
    finally:
        conn.close()


@dataclass
class Tally:
    """What one client saw: acknowledged bodies per event_id, retries, statuses."""

    acked: dict[str, list[bytes]] = field(default_factory=dict)
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


def post_until_acknowledged(
    server: LiveServer, key: str, event_id: str, body: bytes, tally: Tally, give_up_s: float = 30.0
) -> bytes | None:
    """Send the same body (same event_id) until a 200, retrying connection errors and 5xx."""
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        try:
            reply = post_check(server, key, body)
        except TRANSIENT as exc:
            tally.retries += 1
            tally.errors.append(type(exc).__name__)
            time.sleep(0.05)
            continue
        tally.statuses[reply.status] = tally.statuses.get(reply.status, 0) + 1
        if reply.status == 200:
            tally.acked.setdefault(event_id, []).append(reply.body)
            return reply.body
        if reply.status >= 500:
            tally.retries += 1
            time.sleep(0.05)
            continue
        raise AssertionError(f"{event_id}: HTTP {reply.status} {reply.body[:300]!r}")
    return None


def realistic_event(rng: random.Random, tag: str, n: int) -> dict:
    """A mixed marketplace event: mostly orders, some reviews, coupons and listings, with
    a few shared devices, IPs and cards so velocity and link features have something to count."""
    kind = rng.choices(["order", "review", "coupon_redemption", "listing"], weights=[6, 2, 1, 1])[0]
    device = f"device-{rng.randrange(40):03d}"
    ip = f"198.51.100.{rng.randrange(1, 60)}"
    over: dict = {"event_id": f"evt-{tag}-{n:06d}", "device_id": device, "ip": ip}
    if kind == "order":
        qty = rng.randint(1, 4)
        price = round(rng.uniform(3, 400), 2)
        over.update(
            order_id=f"ord-{tag}-{n:06d}",
            buyer_id=f"buyer-{rng.randrange(200)}",
            shop_id=f"shop-{rng.randrange(12)}",
            items=[{"product_id": f"prod-{rng.randrange(50)}", "quantity": qty, "unit_price": price}],
            amount=round(qty * price, 2),
            payment={"method": "card", "fingerprint": f"cardfp-{rng.randrange(80):08d}"},
        )
    elif kind == "review":
        over.update(
            review_id=f"rev-{tag}-{n:06d}",
            reviewer_id=f"buyer-{rng.randrange(200)}",
            product_id=f"prod-{rng.randrange(50)}",
            rating=rng.randint(1, 5),
        )
    elif kind == "coupon_redemption":
        over.update(account_id=f"acct-{rng.randrange(100)}", referrer_id=f"acct-{rng.randrange(100)}")
    else:
        over.update(listing_id=f"lst-{tag}-{n:06d}", shop_id=f"shop-{rng.randrange(12)}")
    return factories.FACTORIES[kind](**over)


def encode(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def started_at(pid: int) -> int:
    """When a process started (clock ticks since boot); 0 once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def gunicorn_workers(server: LiveServer) -> list[int]:
    """``riskctl serve`` → gunicorn master → its workers."""
    masters = [p for p in children(server.proc.pid) if b"gunicorn" in _cmdline(p)]
    workers: list[int] = []
    for m in masters:
        workers.extend(children(m))
    return workers


def server_log(server: LiveServer) -> str:
    port = urlsplit(server.url).port
    return (server.instance.parent / f"serve-{port}.log").read_text(errors="replace")


class WriteLockProbe:
    """Measures, from outside, the longest time SQLite's write lock stays taken: it tries
    ``BEGIN IMMEDIATE`` without waiting every 10 ms (and rolls back at once)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.longest_s = 0.0
        self.longest_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WriteLockProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        db = sqlite3.connect(self.db_path, timeout=0, isolation_level=None)
        try:
            blocked_since = None
            while not self._stop.wait(0.01):
                try:
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    if blocked_since is None:
                        blocked_since = time.monotonic()
                    continue
                if blocked_since is not None:
                    held = time.monotonic() - blocked_since
                    if held > self.longest_s:
                        self.longest_s, self.longest_at = held, time.time()
                    blocked_since = None
        finally:
            db.close()
