"""Outbox delivery to a real webhook receiver on loopback: signatures, idempotency keys,
retries with backoff, dead letters, and a worker killed mid-delivery losing nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from riskctl import casework, outbox
from riskctl.models import AuditEntry, OutboxAction, utcnow
from tests.cases.receiver import Receiver

SECRET = "whsec-test-0123456789abcdef0123456789abcdef"


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(respond=lambda n, req: 200) -> Receiver:
        r = Receiver(respond)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _resolved_with_actions(sessions, make_case, actions=("suspend_account", "warn_seller")):
    case_id = make_case(subject_id="farm-1", shop_id="shop-f")
    casework.claim(sessions, case_id, "alice")
    casework.resolve(sessions, case_id, "alice", "confirmed_abuse", actions=list(actions))
    return case_id


def _actions(engine):
    with engine.connect() as conn:
        return {a.id: a for a in conn.execute(select(OutboxAction))}


def test_actions_arrive_signed_with_their_idempotency_key(engine, sessions, make_case, receiver):
    rx = receiver()
    _resolved_with_actions(sessions, make_case)
    deliverer = outbox.Deliverer(rx.url, SECRET)
    try:
        stats = outbox.work(engine, deliverer, once=True)
    finally:
        deliverer.close()
    assert stats == {"delivered": 2, "retried": 0, "dead": 0}
    actions = _actions(engine)
    assert len(rx.requests) == 2
    for req in rx.requests:
        assert outbox.verify_signature(SECRET, req.headers, req.body)
        assert not outbox.verify_signature("another-secret", req.headers, req.body)
        assert not outbox.verify_signature(SECRET, req.headers, req.body + b" ")
        body = orjson.loads(req.body)
        assert req.headers["Idempotency-Key"] == body["id"] and body["id"] in actions
        if body["type"] == "suspend_account":
            assert body["statement"]["restriction"]["action"] == "suspend_account"
        else:
            assert body["statement"] is None  # a warning restricts nothing
    assert {a.status for a in actions.values()} == {"delivered"}
    with engine.connect() as conn:
        audited = [a for (a,) in conn.execute(select(AuditEntry.action))]
    assert audited.count("action.delivered") == 2


def test_an_old_timestamp_is_refused_by_the_receiver_check():
    body = b'{"id":"act_1"}'
    ts = 1_700_000_000
    headers = {outbox.TIMESTAMP_HEADER: str(ts), outbox.SIGNATURE_HEADER: outbox.sign(SECRET, ts, body)}
    assert outbox.verify_signature(SECRET, headers, body, now=ts + 10)
    assert not outbox.verify_signature(SECRET, headers, body, now=ts + 3600)


def test_failures_are_retried_with_backoff_and_the_same_key(engine, sessions, make_case, receiver):
    rx = receiver(lambda n, req: 503 if n < 2 else 200)
    _resolved_with_actions(sessions, make_case, actions=("suspend_account",))
    deliverer = outbox.Deliverer(rx.url, SECRET, max_attempts=5)
    clock = [utcnow()]
    waits = []
    try:
        for _ in range(3):
            outbox.work(engine, deliverer, once=True, clock=lambda: clock[0])
            (action,) = _actions(engine).values()
            if action.status == "pending":
                waits.append((action.next_attempt_at - clock[0]).total_seconds())
                assert action.last_error.startswith("HTTP 503")
                # not due yet: a worker now sends nothing
                outbox.work(engine, deliverer, once=True, clock=lambda: clock[0])
                clock[0] = action.next_attempt_at + timedelta(milliseconds=1)
    finally:
        deliverer.close()
    assert action.status == "delivered" and action.attempts == 3
    assert len(rx.requests) == 3
    assert len({r.headers["Idempotency-Key"] for r in rx.requests}) == 1
    assert len({r.body for r in rx.requests}) == 1  # byte-identical on every redelivery
    assert all(outbox.verify_signature(SECRET, r.headers, r.body) for r in rx.requests)
    assert 1.0 <= waits[0] <= 2.0 and 2.0 <= waits[1] <= 4.0  # 2 s base, doubling, jitter 50-100 %


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    rng = random.Random(7)
    for attempt in range(1, 20):
        delay = outbox.backoff(attempt, rng=rng)
        full = min(3600.0, 2.0 * 2 ** (attempt - 1))
        assert full * 0.5 <= delay <= full
    assert len({round(outbox.backoff(3, rng=rng), 6) for _ in range(20)}) > 1  # jittered


def test_an_action_that_keeps_failing_goes_dead(engine, sessions, make_case, receiver):
    rx = receiver(lambda n, req: 500)
    _resolved_with_actions(sessions, make_case, actions=("suspend_account",))
    deliverer = outbox.Deliverer(rx.url, SECRET, max_attempts=3)
    later = utcnow()
    try:
        for _ in range(5):
            later += timedelta(hours=2)
            outbox.work(engine, deliverer, once=True, clock=lambda: later)
    finally:
        deliverer.close()
    (action,) = _actions(engine).values()
    assert (action.status, action.attempts, len(rx.requests)) == ("dead", 3, 3)
    with engine.connect() as conn:
        assert (
            conn.execute(select(AuditEntry.detail).where(AuditEntry.action == "action.dead")).scalar_one()[
                "attempts"
            ]
            == 3
        )


def test_an_unreachable_receiver_is_retried(engine, sessions, make_case, receiver):
    rx = receiver()
    url = rx.url
    rx.close()  # nothing listens there any more
    _resolved_with_actions(sessions, make_case, actions=("suspend_account",))
    deliverer = outbox.Deliverer(url, SECRET, timeout_s=2)
    try:
        assert outbox.work(engine, deliverer, once=True)["retried"] == 1
    finally:
        deliverer.close()
    (action,) = _actions(engine).values()
    assert action.status == "pending" and action.attempts == 1 and "Connection" in action.last_error


def test_a_killed_worker_loses_no_action(engine, sessions, make_case, receiver, tmp_path: Path):
    release = threading.Event()

    def respond(n, req):
        if n == 0:  # hold the first delivery until the worker sending it is dead
            release.wait(30)
        return 200

    rx = receiver(respond)
    _resolved_with_actions(
        sessions, make_case, actions=("suspend_account", "warn_seller", "restrict_account")
    )
    ids = set(_actions(engine))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RISKCTL_")},
        "RISKCTL_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "RISKCTL_INSTANCE_PATH": str(tmp_path / "instance"),
        "RISKCTL_WEBHOOK_URL": rx.url,
        "RISKCTL_WEBHOOK_SECRET": SECRET,
    }
    riskctl = Path(sys.executable).parent / "riskctl"
    worker = subprocess.Popen(
        [str(riskctl), "outbox", "work", "--lease", "60"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert rx.arrived.wait(60), "the worker never delivered"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        release.set()
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        worker.stderr.close()
    assert worker.returncode == -signal.SIGKILL
    in_flight = rx.requests[0].headers["Idempotency-Key"]
    before = _actions(engine)
    # the worker died holding its lease: nothing is delivered, nothing is lost
    assert {a.status for a in before.values()} == {"pending"}
    assert before[in_flight].claimed_until is not None and before[in_flight].attempts == 1
    # a worker running now respects the lease...
    deliverer = outbox.Deliverer(rx.url, SECRET)
    try:
        assert outbox.work(engine, deliverer, once=True) == {"delivered": 0, "retried": 0, "dead": 0}
        # ...and once it has lapsed, delivers everything, the in-flight action again
        lapsed = utcnow() + timedelta(seconds=61)
        stats = outbox.work(engine, deliverer, once=True, clock=lambda: lapsed)
    finally:
        deliverer.close()
    assert stats["delivered"] == 3
    after = _actions(engine)
    assert {a.status for a in after.values()} == {"delivered"}
    keys = [r.headers["Idempotency-Key"] for r in rx.requests]
    assert set(keys) == ids
    assert keys.count(in_flight) == 2  # redelivered, with the same idempotency key
    first, again = (r for r in rx.requests if r.headers["Idempotency-Key"] == in_flight)
    assert first.body == again.body


def test_a_reversal_waits_for_the_action_it_undoes(engine, sessions, make_case, receiver):
    failing: set[str] = set()
    rx = receiver(lambda n, req: 500 if req.headers["Idempotency-Key"] in failing else 200)
    case_id = _resolved_with_actions(sessions, make_case, actions=("suspend_account",))
    (original,) = _actions(engine)
    failing.add(original)
    casework.appeal(sessions, case_id, "farm-1", "not me")
    casework.decide_appeal(sessions, case_id, "bob", True)
    deliverer = outbox.Deliverer(rx.url, SECRET)
    later = utcnow()
    try:
        outbox.work(engine, deliverer, once=True)
        assert [r.headers["Idempotency-Key"] for r in rx.requests] == [original]  # the reversal waited
        failing.clear()
        later += timedelta(hours=1)
        outbox.work(engine, deliverer, once=True, clock=lambda: later)
    finally:
        deliverer.close()
    sent = [orjson.loads(r.body)["type"] for r in rx.requests]
    assert sent == ["suspend_account", "suspend_account", "reinstate_account"]
