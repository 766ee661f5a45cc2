"""A closed-loop HTTP load generator: C keep-alive connections spread over P processes.

Each connection sends the next request as soon as the previous answer arrives, for a
fixed duration; latencies are per request. Bounded in time, loopback only.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


def _worker(
    url: str,
    headers: dict[str, str],
    make_body: Callable[[int, int], bytes],
    conns: int,
    wid: int,
    duration: float,
    out: mp.Queue,
) -> None:  # type: ignore[type-arg]
    import threading

    parts = urlsplit(url)
    lat: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration

    def run(cid: int) -> None:
        nonlocal errors
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        seq = 0
        local: list[float] = []
        local_err = 0
        while time.perf_counter() < stop_at:
            body = make_body(wid * 1000 + cid, seq)
            seq += 1
            t0 = time.perf_counter()
            try:
                conn.request("POST", parts.path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    local_err += 1
            except (OSError, http.client.HTTPException):
                local_err += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                continue
            local.append((time.perf_counter() - t0) * 1000)
        conn.close()
        with lock:
            lat.extend(local)
            errors += local_err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((lat, errors))


def closed_loop(
    url: str,
    headers: dict[str, str],
    make_body: Callable[[int, int], bytes],
    connections: int = 8,
    processes: int = 2,
    duration: float = 10.0,
) -> LoadResult:
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    per = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(target=_worker, args=(url, headers, make_body, n, i, duration, queue))
        for i, n in enumerate(per)
        if n
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=duration + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    elapsed = time.perf_counter() - started
    lat = np.array([x for r in results for x in r[0]])
    return LoadResult(
        len(lat), sum(r[1] for r in results), min(elapsed, duration + 1) if lat.size else elapsed, lat
    )
