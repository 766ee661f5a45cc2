"""Every legal and illegal move through the service layer, claims and their expiry, bulk
resolution, appeals and their reversals, notes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from riskctl import casework
from riskctl.errors import Conflict, NotFound, ValidationFailed
from riskctl.models import AuditEntry, Case, OutboxAction, Statement, utcnow

# (status, resolution) → the service operations that are legal there.
LEGAL = {
    ("open", None): {"claim"},
    ("claimed", None): {"claim", "release", "resolve"},  # claim again = extend one's own claim
    ("resolved", "confirmed_abuse"): {"appeal"},
    ("resolved", "false_positive"): set(),
    ("resolved", "needs_info"): {"reopen"},
    ("appealed", "confirmed_abuse"): {"uphold", "reject"},
    ("appeal_upheld", "confirmed_abuse"): set(),
    ("appeal_rejected", "confirmed_abuse"): set(),
}
AFTER = {
    "claim": "claimed",
    "release": "open",
    "resolve": "resolved",
    "reopen": "open",
    "appeal": "appealed",
    "uphold": "appeal_upheld",
    "reject": "appeal_rejected",
}
OPS = {
    "claim": lambda s, c: casework.claim(s, c, "alice"),
    "release": lambda s, c: casework.release(s, c, "alice"),
    "resolve": lambda s, c: casework.resolve(s, c, "alice", "false_positive"),
    "reopen": lambda s, c: casework.reopen(s, c, "alice"),
    "appeal": lambda s, c: casework.appeal(s, c, "subject", "it was my own card"),
    "uphold": lambda s, c: casework.decide_appeal(s, c, "bob", True),
    "reject": lambda s, c: casework.decide_appeal(s, c, "bob", False),
}


def drive(sessions, case_id, status, resolution):
    """Bring a fresh case to ``status`` through the service (as real moderators would)."""
    if status == "open":
        return
    casework.claim(sessions, case_id, "alice")
    if status == "claimed":
        return
    casework.resolve(sessions, case_id, "alice", resolution)
    if status == "resolved":
        return
    casework.appeal(sessions, case_id, "subject", "not me")
    if status == "appealed":
        return
    casework.decide_appeal(sessions, case_id, "bob", status == "appeal_upheld")


def _audit_rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one()


def _status(sessions, case_id):
    with sessions() as s:
        return s.get(Case, case_id).status


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("state", sorted(LEGAL, key=str))
def test_every_move_from_every_state(engine, sessions, make_case, state, op):
    status, resolution = state
    case_id = make_case()
    drive(sessions, case_id, status, resolution)
    assert _status(sessions, case_id) == status
    before = _audit_rows(engine)
    if op in LEGAL[state]:
        result = OPS[op](sessions, case_id)
        assert result.status == AFTER[op] == _status(sessions, case_id)
        assert _audit_rows(engine) > before  # every change leaves an audit row
    else:
        with pytest.raises(Conflict):
            OPS[op](sessions, case_id)
        assert _status(sessions, case_id) == status  # nothing changed
        assert _audit_rows(engine) == before


def test_a_claimed_case_refuses_other_moderators(sessions, make_case):
    case_id = make_case()
    casework.claim(sessions, case_id, "alice")
    for op in (
        lambda: casework.claim(sessions, case_id, "carol"),
        lambda: casework.release(sessions, case_id, "carol"),
        lambda: casework.resolve(sessions, case_id, "carol", "confirmed_abuse"),
    ):
        with pytest.raises(Conflict, match="alice"):
            op()
    assert casework.release(sessions, case_id, "carol", force=True).status == "open"


def test_resolving_an_open_case_needs_a_claim_first(sessions, make_case):
    case_id = make_case()
    with pytest.raises(Conflict, match="claim it first"):
        casework.resolve(sessions, case_id, "alice", "confirmed_abuse")


def test_claiming_again_extends_ones_own_claim(sessions, make_case):
    case_id = make_case()
    first = casework.claim(sessions, case_id, "alice", ttl=60)
    second = casework.claim(sessions, case_id, "alice", ttl=3600)
    assert second.claimed_by == "alice" and second.claim_expires_at > first.claim_expires_at


def test_a_lapsed_claim_returns_the_case_to_the_queue(engine, sessions, make_case):
    case_id = make_case()
    t0 = utcnow() - timedelta(hours=1)
    casework.claim(sessions, case_id, "alice", ttl=60, now=t0)
    # another moderator can take it once the claim has lapsed
    taken = casework.claim(sessions, case_id, "carol", now=t0 + timedelta(seconds=61))
    assert taken.claimed_by == "carol"
    # and alice, whose claim lapsed, can no longer resolve it
    with pytest.raises(Conflict):
        casework.resolve(sessions, case_id, "alice", "false_positive")
    with engine.connect() as conn:
        actions = [a for (a,) in conn.execute(select(AuditEntry.action).order_by(AuditEntry.seq))]
    assert actions == ["case.claim", "case.expire", "case.claim"]


def test_reading_the_queue_releases_lapsed_claims(sessions, make_case):
    lapsed, live = make_case(), make_case()
    casework.claim(sessions, lapsed, "alice", ttl=60, now=utcnow() - timedelta(minutes=5))
    casework.claim(sessions, live, "alice", ttl=600)
    assert [c.id for c in casework.list_queue(sessions, "orders", status="open")] == [lapsed]
    assert [c.id for c in casework.list_queue(sessions, "orders", status="claimed")] == [live]


def test_release_expired_job(sessions, make_case):
    ids = [make_case() for _ in range(3)]
    for cid in ids[:2]:
        casework.claim(sessions, cid, "alice", ttl=60, now=utcnow() - timedelta(minutes=5))
    casework.claim(sessions, ids[2], "alice", ttl=600)
    assert casework.release_expired(sessions) == 2
    assert casework.release_expired(sessions) == 0
    assert [_status(sessions, c) for c in ids] == ["open", "open", "claimed"]


def test_two_moderators_racing_for_one_case_one_wins(sessions, make_case):
    case_id = make_case()
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def grab(who):
        barrier.wait()
        try:
            casework.claim(sessions, case_id, who)
            results[who] = "won"
        except Conflict:
            results[who] = "lost"

    threads = [threading.Thread(target=grab, args=(w,)) for w in ("alice", "carol")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == ["lost", "won"]
    winner = next(w for w, r in results.items() if r == "won")
    with sessions() as s:
        assert s.get(Case, case_id).assignee == winner


def test_resolve_writes_actions_and_statements_in_the_same_transaction(sessions, make_case):
    case_id = make_case(subject_id="farm-7", queue="coupons", kind="coupon_redemption")
    casework.claim(sessions, case_id, "alice")
    casework.resolve(
        sessions,
        case_id,
        "alice",
        "confirmed_abuse",
        "shared phone with 6 accounts",
        actions=["suspend_account", {"type": "warn_seller", "target": "shop-9"}],
    )
    view = casework.get_case(sessions, case_id)
    assert {(a["type"], a["target"]) for a in view.actions} == {
        ("suspend_account", "farm-7"),
        ("warn_seller", "shop-9"),
    }
    # a warning restricts nothing, so only the suspension carries a statement of reasons
    assert [s["action_type"] for s in view.statements] == ["suspend_account"]
    assert view.notes[0]["body"] == "shared phone with 6 accounts"
    assert view.case.resolved_by == "alice"


def test_a_failing_action_rolls_the_resolution_back(sessions, make_case):
    case_id = make_case()  # no decisions: there is no order to cancel by default
    casework.claim(sessions, case_id, "alice")
    with pytest.raises(ValidationFailed, match="no order"):
        casework.resolve(sessions, case_id, "alice", "confirmed_abuse", actions=["cancel_order"])
    assert _status(sessions, case_id) == "claimed"
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxAction)) == 0
        assert s.scalar(select(func.count()).select_from(Statement)) == 0


@pytest.mark.parametrize(
    "resolution, actions, match",
    [
        ("false_positive", ["suspend_account"], "only a confirmed_abuse"),
        ("confirmed_abuse", ["nuke_account"], "unknown action"),
        ("confirmed_abuse", [{"type": "warn_seller", "target": ""}], "target"),
        ("maybe", [], "resolution must be"),
    ],
)
def test_bad_resolutions_are_refused(sessions, make_case, resolution, actions, match):
    case_id = make_case()
    casework.claim(sessions, case_id, "alice")
    with pytest.raises(ValidationFailed, match=match):
        casework.resolve(sessions, case_id, "alice", resolution, actions=actions)
    assert _status(sessions, case_id) == "claimed"


def test_bulk_resolve_is_all_or_nothing(sessions, make_case):
    ids = [make_case(subject_id=f"b{i}") for i in range(4)]
    casework.claim(sessions, ids[0], "senior")  # own claim: fine
    casework.claim(sessions, ids[1], "alice")  # someone else's: blocks the batch
    with pytest.raises(Conflict, match=ids[1]):
        casework.bulk_resolve(sessions, ids, "confirmed_abuse", actor="senior", actions=["suspend_account"])
    assert [_status(sessions, c) for c in ids] == ["claimed", "claimed", "open", "open"]
    rest = [ids[0], ids[2], ids[3]]
    assert (
        casework.bulk_resolve(sessions, rest, "confirmed_abuse", actor="senior", actions=["suspend_account"])
        == 3
    )
    for cid in rest:
        view = casework.get_case(sessions, cid)
        assert view.status == "resolved" and view.resolved_by == "senior"
        assert [a["type"] for a in view.actions] == ["suspend_account"]
        assert view.statements
    with pytest.raises(ValidationFailed):
        casework.bulk_resolve(sessions, [], "false_positive", actor="senior")


def test_an_upheld_appeal_reverses_every_action(sessions, make_case):
    case_id = make_case(subject_id="seller-3", shop_id="seller-3", queue="ip", kind="listing")
    casework.claim(sessions, case_id, "alice")
    casework.resolve(
        sessions, case_id, "alice", "confirmed_abuse",
        actions=[{"type": "take_down_listing", "target": "lst-1"}, "restrict_account"],
    )  # fmt: skip
    casework.appeal(sessions, case_id, "seller-3", "licensed reseller, invoice attached")
    with pytest.raises(Conflict, match="cannot decide its appeal"):
        casework.decide_appeal(sessions, case_id, "alice", True)
    casework.decide_appeal(sessions, case_id, "bob", True, "licence checked")
    actions = casework.get_case(sessions, case_id).actions
    originals = {a["id"]: a for a in actions if a["reverses"] is None}
    reversals = [a for a in actions if a["reverses"] is not None]
    assert {(a["type"], a["target"]) for a in reversals} == {
        ("reinstate_listing", "lst-1"),
        ("lift_restriction", "seller-3"),
    }
    assert {a["reverses"] for a in reversals} == set(originals)


def test_a_rejected_appeal_reverses_nothing(sessions, make_case):
    case_id = make_case()
    casework.claim(sessions, case_id, "alice")
    casework.resolve(sessions, case_id, "alice", "confirmed_abuse", actions=["suspend_account"])
    casework.appeal(sessions, case_id, "buyer-1", "please")
    assert casework.decide_appeal(sessions, case_id, "bob", False).status == "appeal_rejected"
    assert [a["type"] for a in casework.get_case(sessions, case_id).actions] == ["suspend_account"]


def test_notes(sessions, make_case):
    case_id = make_case()
    note_id = casework.add_note(sessions, case_id, "alice", "<script>alert(1)</script> stored as typed")
    view = casework.get_case(sessions, case_id)
    assert view.notes == [
        {
            "id": note_id,
            "author": "alice",
            "body": "<script>alert(1)</script> stored as typed",
            "created_at": view.notes[0]["created_at"],
        }
    ]
    assert any(a["action"] == "case.note" for a in view.audit)
    with pytest.raises(ValidationFailed):
        casework.add_note(sessions, case_id, "alice", "   ")
    with pytest.raises(ValidationFailed):
        casework.add_note(sessions, case_id, "alice", "x" * (casework.MAX_NOTE + 1))
    with pytest.raises(NotFound):
        casework.add_note(sessions, "case_nope", "alice", "hello")
    with pytest.raises(NotFound):
        casework.get_case(sessions, "case_nope")


def test_queue_filters_sorts_and_counts(sessions, make_case):
    now = utcnow()
    low = make_case(priority=10.0, sla_due_at=now + timedelta(hours=1))
    high = make_case(priority=90.0, sla_due_at=now + timedelta(hours=5))
    late = make_case(priority=50.0, sla_due_at=now - timedelta(hours=1), subject_id="late_%")
    other = make_case(queue="reviews", kind="review")
    assert [c.id for c in casework.list_queue(sessions, "orders")] == [high, late, low]
    assert [c.id for c in casework.list_queue(sessions, "orders", sort="sla")] == [late, low, high]
    assert casework.list_queue(sessions, None)[0].id == high
    assert {c.id for c in casework.list_queue(sessions, None)} == {low, high, late, other}
    assert [c.id for c in casework.list_queue(sessions, "orders", search="late_%")] == [late]
    assert casework.list_queue(sessions, "orders", search="ate_%x") == []  # LIKE wildcards are literal
    casework.claim(sessions, high, "alice")
    assert [c.id for c in casework.list_queue(sessions, "orders", assignee="alice")] == [high]
    counts = casework.queue_counts(sessions)
    assert counts["orders"] == {"open": 2, "claimed": 1, "breached": 1, "appealed": 0}
    assert counts["reviews"]["open"] == 1
    assert casework.list_queue(sessions, "orders", limit=1, offset=1)[0].id == late
    with pytest.raises(ValidationFailed):
        casework.list_queue(sessions, status="nope")


def test_cli_release_expired(engine, sessions, make_case, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from api.cli import main

    case_id = make_case()
    casework.claim(sessions, case_id, "alice", ttl=60, now=utcnow() - timedelta(minutes=5))
    monkeypatch.setenv("RISKCTL_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", str(tmp_path / "instance"))
    r = CliRunner().invoke(main, ["cases", "release-expired"])
    assert r.exit_code == 0 and "released 1 expired claims" in r.output
    assert _status(sessions, case_id) == "open"
