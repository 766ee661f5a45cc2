"""Statements of reasons (DSA Art. 17): generated from the decision's signals and the rules'
policy references, stored with the action, and no field is ever empty."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from riskctl import casework, statements

REQUIRED = (
    "restriction",
    "facts_and_circumstances",
    "automated_detection",
    "automated_decision",
    "ground",
    "redress",
)

signal = st.fixed_dictionaries(
    {
        "source": st.sampled_from(["rule", "detector", "list"]),
        "code": st.text(min_size=0, max_size=8),
        "status": st.sampled_from(["hit", "no_hit", "error", "shadow"]),
        "mode": st.sampled_from(["live", "shadow"]),
    },
    optional={
        "description": st.one_of(st.none(), st.text(max_size=40)),
        "policy": st.one_of(st.none(), st.just(""), st.just("   "), st.text(max_size=40)),
        "score": st.floats(0, 100),
        "details": st.one_of(
            st.just({}),
            st.dictionaries(st.text(min_size=1, max_size=12), st.integers(), max_size=3),
            st.just({"drivers": [{"feature": "velocity.device.accounts_30d", "contribution": 0.4}]}),
        ),
    },
)


@settings(max_examples=150, deadline=None)
@given(
    action=st.sampled_from(sorted(statements.ACTIONS)),
    target=st.text(min_size=1, max_size=30).filter(str.strip),
    sigs=st.lists(signal, max_size=6),
    resolved_by=st.one_of(st.none(), st.just("alice")),
    note=st.one_of(st.none(), st.just(""), st.text(max_size=50)),
    queue=st.sampled_from(["orders", "reviews", "coupons", "ip"]),
    source=st.sampled_from(["decision", "scan", "manual"]),
)
def test_no_field_is_ever_empty(action, target, sigs, resolved_by, note, queue, source):
    case = {
        "id": "case_1",
        "queue": queue,
        "kind": "order",
        "subject_id": "s-1",
        "decision_count": len(sigs),
        "source": source,
    }
    body = statements.build(
        statement_id="sor_1",
        action=action,
        target=target,
        case=case,
        signals=sigs,
        resolved_by=resolved_by,
        resolution_note=note,
        at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert statements.empty_fields(body) == []
    assert set(REQUIRED) <= set(body)
    assert body["automated_decision"] is (resolved_by is None)
    assert isinstance(body["automated_detection"], bool)
    assert body["restriction"]["type"] and body["restriction"]["scope"].endswith(target)
    assert "appeal" in body["redress"]


def test_empty_fields_finds_blanks():
    assert statements.empty_fields({"a": "", "b": {"c": " "}, "d": [], "e": False, "f": None, "g": "x"}) == [
        "a",
        "b.c",
        "d",
        "f",
    ]


def test_facts_and_grounds_come_from_the_signals():
    hits = [
        {
            "source": "rule",
            "code": "IP-002",
            "status": "hit",
            "mode": "live",
            "description": "Listing title matches a registered brand sold below its floor price",
            "policy": "IP policy 1.1: counterfeit and trademark-infringing goods",
            "details": {"listing.brand_match": 0.97, "listing.price_ratio": 0.1},
        },
        {
            "source": "rule",
            "code": "IP-009",
            "status": "hit",
            "mode": "shadow",
            "policy": "Shadow rule policy",
        },
        {
            "source": "detector",
            "code": "detector.listing_iforest",
            "status": "hit",
            "mode": "live",
            "description": "listing anomaly",
            "details": {"drivers": [{"feature": "listing.price_ratio", "contribution": 0.5}]},
        },
    ]
    case = {"id": "case_9", "queue": "ip", "kind": "listing", "subject_id": "shop-2", "decision_count": 1}
    body = statements.build(
        statement_id="sor_9",
        action="take_down_listing",
        target="lst-1",
        case=case,
        signals=hits,
        resolved_by=None,
        resolution_note=None,
        at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert body["ground"]["type"] == "illegal_content"
    assert (
        body["ground"]["reference"] == "IP policy 1.1: counterfeit and trademark-infringing goods"
    )  # no shadow rule
    assert "listing.brand_match=0.97" in body["facts_and_circumstances"]
    assert "most unusual: listing.price_ratio" in body["facts_and_circumstances"]
    assert body["automated_detection"] is True and body["automated_decision"] is True


def test_stored_statements_for_a_resolved_case(sessions, make_case):
    case_id = make_case(queue="reviews", kind="review", subject_id="rev-5")
    casework.claim(sessions, case_id, "alice")
    casework.resolve(
        sessions,
        case_id,
        "alice",
        "confirmed_abuse",
        "paid review",
        actions=[{"type": "hide_review", "target": "rev-123"}, "restrict_account"],
    )
    stored = casework.get_case(sessions, case_id).statements
    assert sorted(s["action_type"] for s in stored) == ["hide_review", "restrict_account"]
    for s in stored:
        assert statements.empty_fields(s["body"]) == []
        assert s["body"]["automated_decision"] is False
        assert "paid review" in s["body"]["facts_and_circumstances"]


def test_the_api_offers_exactly_the_known_actions():
    from typing import get_args

    from api.cases import ActionName

    assert set(get_args(ActionName)) == set(statements.ACTIONS)
