"""kill -9 of gunicorn workers under load: nothing acknowledged is lost, nothing is decided twice."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from tests.faults.support import (
    Tally,
    encode,
    gunicorn_workers,
    post_check,
    post_until_acknowledged,
    realistic_event,
    server_log,
    started_at,
)
from tests.live import start_server

pytestmark = pytest.mark.live

CLIENTS = 4
LOAD_SECONDS = 12.0


def test_killed_workers_lose_no_acknowledged_decision_and_decide_nothing_twice(tmp_path):
    server = start_server(tmp_path / "instance", workers=2)
    try:
        key = server.cli("keys", "create", "--scope", "pipeline").strip()
        stop = threading.Event()
        tallies = [Tally() for _ in range(CLIENTS)]
        bodies: dict[str, bytes] = {}
        lock = threading.Lock()

        def client(i: int) -> None:
            rng = random.Random(1000 + i)
            tally = tallies[i]
            n = 0
            while not stop.is_set():
                event = realistic_event(rng, f"c{i}", n)
                n += 1
                body = encode(event)
                with lock:
                    bodies[event["event_id"]] = body
                got = post_until_acknowledged(server, key, event["event_id"], body, tally)
                assert got is not None, f"{event['event_id']} never acknowledged"
                if rng.random() < 0.1:  # the pipeline's own retry after a timeout it misjudged
                    post_until_acknowledged(server, key, event["event_id"], body, tally)

        kills: list[int] = []

        def acknowledged() -> int:
            return sum(len(t.acked) for t in tallies)

        def killer() -> None:
            rng = random.Random(7)
            while not stop.wait(rng.uniform(1.0, 2.0)):
                # The oldest worker is the one that has been serving (its replacement may
                # still be booting); and only once checks were answered since the last kill.
                workers = sorted(gunicorn_workers(server), key=started_at)
                if workers and acknowledged() > served_at_kill[0]:
                    served_at_kill[0] = acknowledged()
                    os.kill(workers[0], signal.SIGKILL)
                    kills.append(workers[0])

        served_at_kill = [0]

        with ThreadPoolExecutor(CLIENTS + 1) as pool:
            futures = [pool.submit(client, i) for i in range(CLIENTS)]
            futures.append(pool.submit(killer))
            time.sleep(LOAD_SECONDS)
            stop.set()
            for f in futures:
                f.result(timeout=60)

        acked = {eid: b for t in tallies for eid, b in t.acked.items()}
        # Replay every acknowledged event once more, now that no worker is being killed.
        replay = Tally()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(
                pool.map(
                    lambda eid: post_until_acknowledged(server, key, eid, bodies[eid], replay),
                    sorted(acked),
                )
            )
        for eid, again in replay.acked.items():
            acked[eid] = acked[eid] + again
        # A different body under a used event_id is refused, not decided again.
        some = sorted(acked)[0]
        other = orjson.loads(bodies[some])
        other["device_id"] = "device-another-one"
        assert post_check(server, key, orjson.dumps(other)).status == 409
    finally:
        server.stop()
    log = server_log(server)

    retries = sum(t.retries for t in tallies)
    statuses: dict[int, int] = {}
    for t in [*tallies, replay]:
        for s, c in t.statuses.items():
            statuses[s] = statuses.get(s, 0) + c
    print(
        f"\nworker kill: kills={len(kills)} acknowledged={len(acked)} retries={retries} "
        f"statuses={statuses} errors={sorted(set(e for t in tallies for e in t.errors))}"
    )
    assert len(kills) >= 5, "the killer did not get to kill enough workers"
    assert retries > 0, "no client ever saw a killed worker: the test proved nothing"
    assert len(acked) >= 50

    # Every response for one event_id is byte-identical.
    for eid, seen in acked.items():
        assert len(set(seen)) == 1, f"{eid} answered differently: {seen}"
    print(f"answers compared byte for byte with an earlier one: {sum(len(v) - 1 for v in acked.values())}")
    decided = {eid: orjson.loads(seen[0])["decision_id"] for eid, seen in acked.items()}

    db = sqlite3.connect(tmp_path / "instance" / "riskctl.db")
    try:
        rows = db.execute("SELECT event_id, id, response_body FROM decisions").fetchall()
        (events,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
    finally:
        db.close()
    stored: dict[str, list[tuple[str, str]]] = {}
    for event_id, decision_id, response_body in rows:
        stored.setdefault(event_id, []).append((decision_id, response_body))
    duplicates = sum(len(v) - 1 for v in stored.values())
    print(f"stored decisions={len(rows)} events={events} duplicates={duplicates}")
    assert duplicates == 0
    missing = [eid for eid in decided if eid not in stored]
    assert missing == []
    for eid, decision_id in decided.items():
        ((stored_id, stored_body),) = stored[eid]
        assert stored_id == decision_id
        assert stored_body.encode() == acked[eid][0]
    # Every client retried until acknowledged, so nothing stored is unacknowledged either.
    assert set(stored) == set(decided)
    assert events == len(rows)
    assert "Traceback" not in log, log[-3000:]
