"""Rule packs: loading YAML, collecting every problem, the version hash, signals."""

from __future__ import annotations

import random
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from riskctl.decisions import Mode, Outcome, SignalStatus, Source, Thresholds, decide
from riskctl.rulepack import RulePack, RulePackError, build_pack, check_pack, load_pack

from .conftest import SCHEMA, make_pack, rule


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


PACK_YAML = """\
    description: test policy
    thresholds:
      review: {review: 40, block: 90}
"""

ORDERS_YAML = """\
    kind: order
    thresholds:
      order: {review: 50, block: 80}
    rules:
      - id: ORD-001
        description: 3+ orders by one buyer at one shop within an hour from a new account
        expression: velocity.buyer_shop.orders_1h >= 3 and account_age_minutes < 60
        score: 40
        policy: marketplace-policy §4.2 fake transactions
        tags: [velocity, new-account]
      - id: ORD-002
        description: blocked card
        expression: payment.fingerprint in lists.block.payment
        outcome: block
        policy: marketplace-policy §2.1 payment fraud
      - id: ORD-003
        description: high anomaly score (trial)
        expression: detector.orders_iforest.score > 0.9
        score: 30
        mode: shadow
        policy: marketplace-policy §4.2 fake transactions
"""

REVIEWS_YAML = """\
    kind: review
    rules:
      - id: REV-001
        description: >
          very short five-star review
          from a new account
        expression: |
          len(review.text) < 20      # almost nothing said
          and review.rating == 5
          and account_age_minutes < 1440
        score: 30
        policy: marketplace-policy §5.1 fake reviews
"""


@pytest.fixture
def pack_dir(tmp_path: Path) -> Path:
    return write(
        tmp_path / "rules", {"pack.yaml": PACK_YAML, "orders.yaml": ORDERS_YAML, "reviews.yaml": REVIEWS_YAML}
    )


# -- loading ------------------------------------------------------------------------------


def test_load_directory(pack_dir: Path) -> None:
    pack = load_pack(pack_dir, SCHEMA)
    assert [r.id for r in pack.rules] == ["ORD-001", "ORD-002", "ORD-003", "REV-001"]
    assert [r.id for r in pack.rules_for("order")] == ["ORD-001", "ORD-002", "ORD-003"]
    assert pack.thresholds("order") == Thresholds(50, 80)
    assert pack.thresholds("review") == Thresholds(40, 90)
    assert pack.thresholds("listing") == Thresholds()  # defaults
    rev = pack.rules_for("review")[0]
    assert rev.description == "very short five-star review from a new account"
    assert rev.source == "reviews.yaml"
    ord1 = pack.rules_for("order")[0]
    assert ord1.tags == {"velocity", "new-account"}
    assert ord1.policy == "marketplace-policy §4.2 fake transactions"
    assert len(pack.version) == 64
    assert check_pack(pack_dir, SCHEMA) == [
        p for p in check_pack(pack_dir, SCHEMA) if p.severity == "warning"
    ]


def test_load_single_file(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(
        textwrap.dedent("""\
        thresholds:
          order: {review: 50, block: 80}
        rules:
          - id: ORD-001
            kinds: [order, coupon_redemption]
            description: new account
            expression: account_age_minutes < 5
            score: 20
            policy: p
    """),
        encoding="utf-8",
    )
    pack = load_pack(path, SCHEMA)
    assert [r.id for r in pack.rules_for("coupon_redemption")] == ["ORD-001"]
    signals = pack.evaluate("coupon_redemption", {"account_age_minutes": 1.0})
    assert [s.status for s in signals] == [SignalStatus.HIT]


def test_every_problem_is_collected(tmp_path: Path) -> None:
    d = write(
        tmp_path / "bad",
        {
            "a.yaml": """\
            kind: order
            thresholds:
              order: {review: 50, block: 80}
            rules:
              - id: ORD-001
                description: typo in a key
                expression: order.amount > 100
                scroe: 40
                policy: p
              - id: ORD-002
                description: misspelt feature
                expression: velocity.buyer_shop.order_1h >= 3
                score: 40
                policy: p
              - id: ORD-003
                description: both
                expression: order.amount > 1
                score: 40
                outcome: block
                policy: p
              - id: ORD-004
                description: no policy
                expression: order.amount > 1
                score: 40
              - id: ORD-005
                description: quoted score
                expression: order.amount > 1
                score: "40"
                policy: p
              - just a string
        """,
            "b.yaml": """\
            thresholds:
              order: {review: 60, block: 90}
            rules:
              - id: ORD-001
                kinds: [order]
                description: duplicate id
                expression: order.amount > 1
                score: 10
                policy: p
              - id: REV-001
                description: no kind anywhere
                expression: account_age_minutes < 1
                score: 10
                policy: p
              - id: ORD-006
                kinds: [order]
                description: duplicate key
                expression: order.amount > 1
                expression: order.amount > 2
                score: 10
                policy: p
        """,
            "c.yaml": "rules: [unclosed\n",
            "d.yaml": "colour: blue\n",
        },
    )
    with pytest.raises(RulePackError) as info:
        load_pack(d, SCHEMA)
    found = {(p.file, p.rule_id, p.message) for p in info.value.problems}

    def has(file: str, rule_id: str | None, fragment: str) -> bool:
        return any(f == file and r == rule_id and fragment in m for f, r, m in found)

    assert has("a.yaml", "ORD-001", "unknown key 'scroe'; did you mean 'score'?")
    assert has(
        "a.yaml",
        "ORD-002",
        "unknown feature 'velocity.buyer_shop.order_1h'; did you mean 'velocity.buyer_shop.orders_1h'?",
    )
    assert has("a.yaml", "ORD-003", "give exactly one of `score`")
    assert has("a.yaml", "ORD-004", "missing required key 'policy'")
    assert has("a.yaml", "ORD-005", "score: Input should be a valid number")
    assert has("a.yaml", "rules[5]", "a rule must be a mapping")
    assert has("b.yaml", "ORD-001", "duplicate rule id (also in a.yaml)")
    assert has("b.yaml", "REV-001", "no event kind")
    assert has("b.yaml", None, "duplicate key 'expression'")
    assert has("b.yaml", None, "thresholds for 'order' are already set in a.yaml")
    assert has("c.yaml", None, "invalid YAML")
    assert has("d.yaml", None, "unknown key 'colour'")
    assert all(p.severity == "error" for p in info.value.problems)
    assert "ORD-002" in str(info.value)
    assert info.value.status == 422
    assert check_pack(d, SCHEMA)  # the linter sees the same


def test_warnings_do_not_stop_loading(tmp_path: Path) -> None:
    d = write(
        tmp_path / "w",
        {
            "x.yaml": """\
        kind: listing
        rules:
          - id: LST-001
            description: always
            expression: 1 < 2
            score: 1
            policy: p
    """
        },
    )
    problems = check_pack(d, SCHEMA)
    messages = [(p.severity, p.message) for p in problems]
    assert ("warning", "the condition is always true") in messages
    assert any(s == "warning" and "no thresholds for 'listing'" in m for s, m in messages)
    load_pack(d, SCHEMA)


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(RulePackError, match="no such file"):
        load_pack(tmp_path / "nope", SCHEMA)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RulePackError, match=r"no \*\.yaml rule files"):
        load_pack(tmp_path / "empty", SCHEMA)


def test_yaml_is_data_only(tmp_path: Path) -> None:
    d = write(tmp_path / "evil", {"x.yaml": "!!python/object/apply:os.system ['id']\n"})
    with pytest.raises(RulePackError, match="invalid YAML"):
        load_pack(d, SCHEMA)


def test_bad_ids_and_kinds() -> None:
    with pytest.raises(RulePackError) as info:
        build_pack(
            {
                "x.yaml": {
                    "rules": [
                        rule("ORD 1", "order.amount > 1", kinds=["order"]),
                        rule("ORD-2", "order.amount > 1", kinds=["orders"]),
                        rule("ORD-3", "order.amount > 1", kinds=["order"], score=101),
                        rule("ORD-4", "order.amount > 1", kinds=["order"], mode="dry-run"),
                    ]
                }
            },
            SCHEMA,
        )
    by_rule = {p.rule_id: p.message for p in info.value.problems}
    assert "id: String should match pattern" in by_rule["ORD 1"]
    assert "kinds.0: Input should be 'order'" in by_rule["ORD-2"]
    assert "score: Input should be less than or equal to 100" in by_rule["ORD-3"]
    assert "mode: Input should be 'live' or 'shadow'" in by_rule["ORD-4"]


def test_thresholds_are_validated() -> None:
    with pytest.raises(RulePackError, match="must not be above the block threshold"):
        build_pack({"x.yaml": {"thresholds": {"order": {"review": 90, "block": 50}}}}, SCHEMA)


# -- version ------------------------------------------------------------------------------


def test_version_ignores_formatting_and_order(tmp_path: Path, pack_dir: Path) -> None:
    # The same pack: flow style, other key and rule order, comments, other files,
    # other whitespace and redundant parentheses in expressions.
    other = write(
        tmp_path / "other",
        {
            "all.yml": """\
            # everything in one file
            thresholds: {review: {block: 90, review: 40}, order: {block: 80, review: 50}}
            rules:
              - {id: REV-001, kinds: [review], score: 30, policy: marketplace-policy §5.1 fake reviews,
                 description: very short five-star review from a new account,
                 expression: "(len(review.text)<20) and review.rating==5 and (account_age_minutes < 1440)"}
              - id: ORD-003
                kinds: [order]
                mode: shadow
                policy: marketplace-policy §4.2 fake transactions
                score: 30.0
                expression: detector.orders_iforest.score>0.9
                description: "high anomaly score (trial)"
        """,
            "more.yaml": """\
            kind: order
            rules:
              - id: ORD-002
                outcome: block
                policy: marketplace-policy §2.1 payment fraud
                description: blocked card
                expression: payment.fingerprint in lists.block.payment
              - id: ORD-001
                tags: [new-account, velocity]
                description: 3+ orders by one buyer at one shop within an hour from a new account
                expression: >
                  velocity.buyer_shop.orders_1h >= 3
                  and account_age_minutes < 60
                score: 40
                policy: marketplace-policy §4.2 fake transactions
        """,
        },
    )
    assert load_pack(other, SCHEMA).version == load_pack(pack_dir, SCHEMA).version


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("score: 40", "score: 41"),
        ("orders_1h >= 3", "orders_1h > 3"),
        ("account_age_minutes < 60", "account_age_minutes < 61"),
        ("outcome: block", "outcome: review"),
        ("mode: shadow", "mode: live"),
        ("order: {review: 50, block: 80}", "order: {review: 50, block: 81}"),
        ("blocked card", "blocked card!"),
        ("§2.1 payment fraud", "§2.2 payment fraud"),
        ("tags: [velocity, new-account]", "tags: [velocity]"),
        ("score: 40\n", "score: 40\n    enabled: false\n"),
    ],
)
def test_version_changes_with_meaning(tmp_path: Path, pack_dir: Path, old: str, new: str) -> None:
    text = textwrap.dedent(ORDERS_YAML)
    assert old in text
    changed = write(
        tmp_path / "changed",
        {"pack.yaml": PACK_YAML, "reviews.yaml": REVIEWS_YAML, "orders.yaml": text.replace(old, new, 1)},
    )
    assert load_pack(changed, SCHEMA).version != load_pack(pack_dir, SCHEMA).version


# -- evaluation ---------------------------------------------------------------------------

FEATURES: dict[str, Any] = {
    "velocity.buyer_shop.orders_1h": 4,
    "velocity.device.buyers_24h": 1,
    "account_age_minutes": 30.0,
    "order.amount": 120.0,
    "order.quantity": 3,
    "order.currency": "EUR",
    "order.has_coupon": False,
    "payment.fingerprint": "fp1",
    "lists.block.payment": frozenset({"fp1"}),
    "detector.orders_iforest.score": 0.95,
    "ip_is_v6": False,
    "hour_of_day": 3,
}


def test_signals_one_per_rule_in_id_order(pack_dir: Path) -> None:
    pack = load_pack(pack_dir, SCHEMA)
    signals = pack.evaluate("order", FEATURES)
    assert [(s.code, s.status) for s in signals] == [
        ("ORD-001", SignalStatus.HIT),
        ("ORD-002", SignalStatus.HIT),
        ("ORD-003", SignalStatus.HIT),
    ]
    ord1, ord2, ord3 = signals
    assert ord1.source is Source.RULE
    assert ord1.score == 40 and ord1.forced is None and ord1.counts
    assert ord1.details == {"velocity.buyer_shop.orders_1h": 4, "account_age_minutes": 30.0}
    assert ord1.policy == "marketplace-policy §4.2 fake transactions"
    assert ord1.description.startswith("3+ orders")
    assert ord1.duration_us >= 0
    assert ord2.forced is Outcome.BLOCK
    assert ord3.mode is Mode.SHADOW and not ord3.counts  # shadow: hit, logged, never counted
    verdict = decide(signals, pack.thresholds("order"))
    assert verdict.outcome is Outcome.BLOCK
    assert "ORD-003" not in [r.code for r in verdict.reasons]
    assert pack.evaluate("listing", FEATURES) == []
    assert pack.evaluate("no-such-kind", FEATURES) == []


def test_no_hit_signals_are_cheap_and_empty() -> None:
    pack = make_pack(rule("ORD-001", "order.amount > 1000"))
    (signal,) = pack.evaluate("order", FEATURES)
    assert signal.status is SignalStatus.NO_HIT
    assert signal.details == {} and not signal.counts
    assert pack.evaluate("order", FEATURES)[0] is signal  # prebuilt and shared


def test_shadow_rules_do_not_count() -> None:
    pack = make_pack(
        rule("ORD-001", "order.amount > 100", mode="shadow", score=100),
        thresholds={"order": {"review": 50, "block": 80}},
    )
    (signal,) = pack.evaluate("order", FEATURES)
    assert signal.status is SignalStatus.HIT and not signal.counts
    assert decide([signal], pack.thresholds("order")).outcome is Outcome.ALLOW


def test_disabled_rules_are_not_evaluated() -> None:
    pack = make_pack(
        rule("ORD-001", "order.amount > 100", enabled=False), rule("ORD-002", "order.amount > 100")
    )
    assert [s.code for s in pack.evaluate("order", FEATURES)] == ["ORD-002"]
    assert [r.id for r in pack.rules] == ["ORD-001", "ORD-002"]


def test_unavailable_feature_is_an_error_signal_and_the_check_goes_on() -> None:
    pack = make_pack(
        rule("ORD-001", "velocity.device.buyers_24h >= 5"),
        rule("ORD-002", "velocity.device.buyers_24h >= 5 and order.amount > 1000"),  # decided: no
        rule("ORD-003", "order.amount > 100"),
        rule("ORD-004", "coalesce(velocity.device.buyers_24h, 0) >= 5"),
        rule("ORD-005", "order.amount > 100 and velocity.device.buyers_24h >= 5 or ip_is_v6"),
    )
    features = {**FEATURES, "velocity.device.buyers_24h": None}
    for evaluate in (pack.evaluate, pack.evaluate_reference):
        signals = {s.code: s for s in evaluate("order", features)}
        assert signals["ORD-001"].status is SignalStatus.ERROR
        assert signals["ORD-001"].details == {
            "velocity.device.buyers_24h": None,
            "_error": "feature 'velocity.device.buyers_24h' is unavailable",
        }
        assert not signals["ORD-001"].counts
        assert signals["ORD-002"].status is SignalStatus.NO_HIT
        assert signals["ORD-003"].status is SignalStatus.HIT
        assert signals["ORD-004"].status is SignalStatus.NO_HIT
        assert signals["ORD-005"].status is SignalStatus.ERROR


def test_runtime_error_is_an_error_signal() -> None:
    pack = make_pack(
        rule("ORD-001", "order.amount / (order.quantity - 3) > 1"),
        rule("ORD-002", "order.amount > 100"),
        rule("ORD-003", "round(detector.orders_iforest.score) == 1"),
    )
    features = {**FEATURES, "detector.orders_iforest.score": float("nan")}
    for evaluate in (pack.evaluate, pack.evaluate_reference):
        s1, s2, s3 = evaluate("order", features)
        assert s1.status is SignalStatus.ERROR
        assert s1.details["_error"] == "ZeroDivisionError: float division by zero"
        assert s2.status is SignalStatus.HIT
        assert s3.status is SignalStatus.ERROR
        assert s3.details["_error"].startswith("ValueError")


def test_wrong_value_types_never_crash() -> None:
    pack = make_pack(
        rule("ORD-001", "order.quantity >= 3"),
        rule("ORD-002", "order.currency == 'EUR'"),
        rule("ORD-003", "contains(order.currency, 'U')"),
        rule("ORD-004", "ip_is_v6"),
    )
    features = {**FEATURES, "order.quantity": "3", "order.currency": ["EUR"], "ip_is_v6": "yes"}
    statuses = [s.status for s in pack.evaluate("order", features)]
    # "3" >= 3 fails; ["EUR"] == "EUR" is false; "U" in ["EUR"] is false; "yes" is truthy
    assert statuses == [SignalStatus.ERROR, SignalStatus.NO_HIT, SignalStatus.NO_HIT, SignalStatus.HIT]
    assert statuses == [s.status for s in pack.evaluate_reference("order", features)]


def test_rules_for_several_kinds_and_kind_checks() -> None:
    pack = build_pack(
        {
            "x.yaml": {
                "rules": [
                    rule("GEN-001", "account_age_minutes < 5", kinds=["order", "review"]),
                ]
            }
        },
        SCHEMA,
    )
    assert [s.code for s in pack.evaluate("review", {"account_age_minutes": 1.0})] == ["GEN-001"]
    with pytest.raises(RulePackError, match="not available for event kind listing"):
        build_pack(
            {"x.yaml": {"rules": [rule("GEN-002", "account_age_minutes < 5", kinds=["order", "listing"])]}},
            SCHEMA,
        )


def test_pack_is_a_policy(pack_dir: Path) -> None:
    from riskctl.policy import Policy, PolicyHolder

    pack: Policy = load_pack(pack_dir, SCHEMA)
    holder = PolicyHolder(pack_dir, SCHEMA)
    assert holder.current.version == pack.version


def test_duplicate_ids_in_the_constructor() -> None:
    pack = make_pack(rule("ORD-001", "order.amount > 1"))
    with pytest.raises(ValueError, match="duplicate rule id"):
        RulePack([*pack.rules, *pack.rules])


def test_thread_safety() -> None:
    rnd = random.Random(3)
    rules = [
        rule(
            f"ORD-{i:03d}",
            f"velocity.buyer_shop.orders_1h >= {rnd.randrange(1, 6)} and "
            f"order.amount > {rnd.randrange(0, 200)} or "
            f"contains(order.currency, '{rnd.choice('EURSD')}')",
        )
        for i in range(60)
    ]
    pack = make_pack(*rules)
    events = [
        {
            **FEATURES,
            "velocity.buyer_shop.orders_1h": rnd.choice([None, 0, 1, 2, 3, 5, 8]),
            "order.amount": rnd.uniform(0, 300),
            "order.currency": rnd.choice(["EUR", "USD", "GBP"]),
        }
        for _ in range(400)
    ]

    def summary(ev: dict[str, Any]) -> list[tuple[str, str, Any]]:
        return [(s.code, s.status.value, s.details.get("_error")) for s in pack.evaluate("order", ev)]

    expected = [summary(ev) for ev in events]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            assert list(pool.map(summary, events)) == expected
