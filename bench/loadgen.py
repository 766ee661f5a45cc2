"""HTTP load generators for the benchmarks: closed loop (max throughput) and open loop (fixed rate).

Both spread C connections over P forked processes (so the generator's GIL does not throttle
it), each connection a thread with its own socket, and both are bounded in time and meant
for loopback.

* :func:`closed_loop`: each connection sends its next request as soon as the previous
  answer arrives. Measures the maximum throughput; latency is per request.
* :func:`open_loop`: requests go out on a fixed schedule, ``rate`` per second in all,
  whatever the server does. Each connection owns an evenly spaced slice of the schedule,
  and a request's latency runs from its *intended* send time, not from when it could be
  sent: when the server falls behind, the queueing shows in the latency instead of being
  hidden by the generator slowing down (no coordinated omission, as in wrk2). Requests the
  schedule wanted before the end but that could not be sent are counted as ``missed``.

The client is a small raw-socket HTTP/1.1 client (keep-alive, Content-Length bodies): it
costs a fraction of ``http.client`` per request, which matters when the generator shares
two cores with the server. If the server closes the connection (a sync gunicorn worker
answers ``Connection: close``; a keep-alive timeout), it reconnects for the next request.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

MakeBody = Callable[[int, int], bytes]


@dataclass
class LoadResult:
    requests: int  # answered (any status)
    errors: int  # non-2xx answers and connection failures
    seconds: float
    latencies_ms: np.ndarray
    missed: int = 0  # open loop: scheduled before the end but never sent
    offered_rps: float = 0.0  # open loop: the schedule's rate
    client_cpu_s: float = 0.0  # CPU the generator processes used
    statuses: dict[int, int] = field(default_factory=dict)
    # each request's (intended, in open loop) send time, in ``time.perf_counter()`` seconds,
    # in the order of ``latencies_ms``: a system-wide monotonic clock, comparable across processes
    sent_at: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


class RawClient:
    """One keep-alive HTTP/1.1 connection: POST a body, read status and body."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str], timeout: float = 10.0):
        self.addr = (host, port)
        self.timeout = timeout
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}Connection: keep-alive\r\n".encode()
        )
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.addr, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sock = sock
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def post(self, body: bytes) -> int:
        """Send one request, return the status. Retries once on a connection the server closed."""
        for attempt in (0, 1):
            fresh = self.sock is None
            sock = self.sock or self._connect()
            try:
                sock.sendall(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                return self._read()
            except (ConnectionError, _Closed):
                self.close()
                if fresh or attempt:  # a new connection failed: a real error
                    raise
        raise AssertionError("unreachable")

    def _read(self) -> int:
        sock = self.sock
        assert sock is not None
        buf = self.buf
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise _Closed
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise _Closed
            rest += chunk
        self.buf = rest[length:]
        if close:
            self.close()
        return status


class _Closed(Exception):
    """The server closed the connection before a full answer."""


def _worker(
    url: str,
    headers: dict[str, str],
    make_body: MakeBody,
    conns: int,
    wid: int,
    start_at: float,
    duration: float,
    rate: float | None,  # per connection (open loop), None = closed loop
    offset0: int,
    total_conns: int,
    out: mp.Queue,  # type: ignore[type-arg]
) -> None:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    lock = threading.Lock()
    lat: list[float] = []
    sent: list[float] = []
    totals = {"errors": 0, "missed": 0}
    statuses: dict[int, int] = {}
    stop_at = start_at + duration

    def run(cid: int) -> None:
        client = RawClient(host, port, path, headers)
        local: list[float] = []
        local_sent: list[float] = []
        err = missed = 0
        seen: dict[int, int] = {}
        stream = wid * 1000 + cid
        seq = 0
        if rate is not None:
            interval = 1.0 / rate
            # stagger the connections evenly over one interval
            first = start_at + interval * (offset0 + cid) / total_conns
        while True:
            body = make_body(stream, seq)
            if rate is not None:
                intended = first + seq * interval
                if intended >= stop_at:
                    break
                now = time.perf_counter()
                if now >= stop_at:  # behind schedule at the end: the rest were never sent
                    missed += int((stop_at - intended) / interval) + 1
                    break
                if intended > now:
                    time.sleep(intended - now)
                t0 = intended
            else:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    break
            seq += 1
            try:
                status = client.post(body)
            except OSError:
                err += 1
                client.close()
                continue
            local.append((time.perf_counter() - t0) * 1000)
            local_sent.append(t0)
            seen[status] = seen.get(status, 0) + 1
            if not 200 <= status < 300:
                err += 1
        client.close()
        with lock:
            lat.extend(local)
            sent.extend(local_sent)
            totals["errors"] += err
            totals["missed"] += missed
            for k, v in seen.items():
                statuses[k] = statuses.get(k, 0) + v

    cpu0 = os.times()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    out.put(
        (
            np.asarray(lat, dtype=np.float64),
            totals["errors"],
            totals["missed"],
            statuses,
            cpu,
            np.asarray(sent),
        )
    )


def _run(
    url: str,
    headers: dict[str, str],
    make_body: MakeBody,
    connections: int,
    processes: int,
    duration: float,
    rate: float | None,
) -> LoadResult:
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    processes = max(1, min(processes, connections))
    per = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    per_conn_rate = rate / connections if rate is not None else None
    start_at = time.perf_counter() + 0.2  # every process starts on the same clock (fork keeps it)
    procs = []
    offset = 0
    for i, n in enumerate(per):
        args = (url, headers, make_body, n, i, start_at, duration, per_conn_rate, offset, connections, queue)
        procs.append(ctx.Process(target=_worker, args=args))
        offset += n
    for p in procs:
        p.start()
    results = [queue.get(timeout=duration + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    elapsed = time.perf_counter() - start_at
    lat = np.concatenate([r[0] for r in results]) if results else np.empty(0)
    statuses: dict[int, int] = {}
    for r in results:
        for k, v in r[3].items():
            statuses[k] = statuses.get(k, 0) + v
    return LoadResult(
        requests=int(lat.size),
        errors=sum(r[1] for r in results),
        # closed loop: the fixed window; open loop: until the last answer came back
        seconds=duration if rate is None else max(duration, elapsed),
        latencies_ms=lat,
        missed=sum(r[2] for r in results),
        offered_rps=rate or 0.0,
        client_cpu_s=sum(r[4] for r in results),
        statuses=statuses,
        sent_at=np.concatenate([r[5] for r in results]) if results else np.empty(0),
    )


def closed_loop(
    url: str,
    headers: dict[str, str],
    make_body: MakeBody,
    connections: int = 8,
    processes: int = 2,
    duration: float = 10.0,
) -> LoadResult:
    """Maximum throughput: each connection sends again as soon as it has its answer."""
    return _run(url, headers, make_body, connections, processes, duration, None)


def open_loop(
    url: str,
    headers: dict[str, str],
    make_body: MakeBody,
    rate: float,
    connections: int = 8,
    processes: int = 2,
    duration: float = 10.0,
) -> LoadResult:
    """A fixed ``rate`` (requests/s over all connections); latency from each intended send time."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    return _run(url, headers, make_body, connections, processes, duration, rate)


# -- the servers under test ------------------------------------------------------------
def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def scrape(url: str, key: str) -> dict[str, float]:
    """Sum each riskctl counter of a server's /metrics over its labels (and the degraded decisions)."""
    req = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(
            ("riskctl_redis_roundtrips_total", "riskctl_db_commits_total", "riskctl_decisions_total")
        ):
            name = line.split("{")[0].split(" ")[0]
            value = float(line.rsplit(" ", 1)[1])
            totals[name] = totals.get(name, 0.0) + value
            if 'degraded="true"' in line:
                totals["degraded"] = totals.get("degraded", 0.0) + value
    return totals
