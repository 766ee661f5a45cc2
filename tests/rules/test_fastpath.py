"""The indexed evaluator agrees with the straightforward one, signal for signal.

Random well-typed rules (thresholds, chains, equalities, membership, string functions,
regexes, arithmetic, coalesce, and/or/not nesting) over a small schema, and random
feature values -- including None, missing keys, NaN, infinities, huge ints and values of
the wrong type -- must give the same status, details and error reason from
``RulePack.evaluate`` (bitmask index) as from ``RulePack.evaluate_reference`` (each
rule's closure alone).
"""

from __future__ import annotations

import math
import random
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskctl import rulepack
from riskctl.decisions import Signal
from riskctl.features import FeatureSchema, FeatureSpec
from riskctl.features import FeatureType as T
from riskctl.rulepack import RulePack, RulePackError, build_pack

INTS = ["n.i1", "n.i2"]
FLOATS = ["n.f1", "n.f2"]
NUMS = INTS + FLOATS
STRS = ["s.a", "s.b"]
BOOLS = ["b.x", "b.y"]
LISTS = ["l.x"]
SCHEMA = FeatureSchema(
    [FeatureSpec(n, T.INT) for n in INTS]
    + [FeatureSpec(n, T.FLOAT) for n in FLOATS]
    + [FeatureSpec(n, T.STR) for n in STRS]
    + [FeatureSpec(n, T.BOOL) for n in BOOLS]
    + [FeatureSpec(n, T.STR_LIST) for n in LISTS]
)
WORDS = ["a", "b", "ab", "A", "", "ba"]
NUM_CONSTS = ["0", "1", "2", "3", "5", "-1", "2.5", "0.5", "3.0", "1e300", "9007199254740993", "1e999"]
PATTERNS = ["^a", "b$", "(?i)ab", "a|b", "^$", "a{2,}"]
OPS = ["<", "<=", ">", ">=", "==", "!="]


def word(draw: st.DrawFn) -> str:
    return repr(draw(st.sampled_from(WORDS)))


@st.composite
def num_expr(draw: st.DrawFn, depth: int = 2) -> str:
    pick = draw(st.integers(0, 9 if depth > 0 else 3))
    if pick == 0:
        return draw(st.sampled_from(NUMS))
    if pick == 1:
        return draw(st.sampled_from(NUM_CONSTS))
    if pick == 2:
        return f"coalesce({draw(st.sampled_from(NUMS))}, {draw(st.sampled_from(NUM_CONSTS))})"
    if pick == 3:
        return draw(st.sampled_from(["len(s.a)", "len(l.x)", "len(lower(s.b))"]))
    a, b = draw(num_expr(depth - 1)), draw(num_expr(depth - 1))
    if pick in (4, 5, 6):
        return f"({a} {'+-*'[pick - 4]} {b})"
    if pick == 7:
        return f"({a} / {draw(st.sampled_from(NUMS))})"
    if pick == 8:
        return f"{draw(st.sampled_from(['max', 'min']))}({a}, {b})"
    return draw(st.sampled_from([f"abs({a})", f"round({a})", f"-{a}", f"round({a}, 1)"]))


@st.composite
def atom(draw: st.DrawFn) -> str:
    pick = draw(st.integers(0, 13))
    if pick <= 3:  # the threshold shape, most common in real packs
        name = draw(st.sampled_from(NUMS)) if pick < 3 else draw(num_expr(1))
        const = draw(st.sampled_from(NUM_CONSTS))
        op = draw(st.sampled_from(OPS))
        return f"{name} {op} {const}" if draw(st.booleans()) else f"{const} {op} {name}"
    if pick == 4:
        return f"{draw(num_expr())} {draw(st.sampled_from(OPS))} {draw(num_expr())}"
    if pick == 5:
        lo, hi = sorted(draw(st.lists(st.sampled_from(NUM_CONSTS[:8]), min_size=2, max_size=2)), key=float)
        return f"{lo} <= {draw(st.sampled_from(NUMS))} < {hi}"
    if pick == 6:
        s = draw(st.sampled_from([*STRS, "lower(s.a)"]))
        return draw(
            st.sampled_from(
                [
                    f"{s} == {word(draw)}",
                    f"{s} != {word(draw)}",
                    f"{s} in [{word(draw)}, {word(draw)}]",
                    f"{s} not in [{word(draw)}]",
                    f"{s} == s.b",
                ]
            )
        )
    if pick == 7:
        n = draw(st.sampled_from(NUMS))
        return f"{n} {draw(st.sampled_from(['in', 'not in']))} [1, 2, 2.5, 3.0]"
    if pick == 8:
        f = draw(st.sampled_from(["contains", "startswith", "endswith"]))
        return f"{f}({draw(st.sampled_from([*STRS, 'lower(s.a)', 'upper(s.b)']))}, {word(draw)})"
    if pick == 9:
        return f"matches({draw(st.sampled_from(STRS))}, {draw(st.sampled_from(PATTERNS))!r})"
    if pick == 10:
        return draw(
            st.sampled_from(
                [
                    f"{word(draw)} in s.a",
                    f"{word(draw)} in l.x",
                    f"{word(draw)} not in l.x",
                    "s.a in l.x",
                    "in_list(s.b, l.x)",
                    f"in_list(s.a, [{word(draw)}])",
                ]
            )
        )
    if pick == 11:
        return draw(st.sampled_from(BOOLS))
    if pick == 12:
        b = draw(st.sampled_from(BOOLS))
        return draw(
            st.sampled_from([f"{b} == true", f"{b} != false", f"coalesce({b}, false)", f"{b} == b.y"])
        )
    return f"len(l.x) {draw(st.sampled_from(OPS))} {draw(st.sampled_from(['0', '1', '2']))}"


@st.composite
def bool_expr(draw: st.DrawFn, depth: int = 3) -> str:
    pick = draw(st.integers(0, 4 if depth > 0 else 0))
    if pick <= 1:
        return draw(atom())
    if pick == 2:
        return f"not ({draw(bool_expr(depth - 1))})"
    parts = draw(st.lists(bool_expr(depth - 1), min_size=2, max_size=3))
    return f" {'and' if pick == 3 else 'or'} ".join(f"({p})" for p in parts)


MISSING = object()
WEIRD = st.sampled_from([None, None, MISSING, math.nan, math.inf, "x", 2**60])
VALUES: dict[T, st.SearchStrategy[Any]] = {
    T.INT: st.one_of(
        st.integers(-2, 6), st.integers(-2, 6), st.sampled_from([True, 2.5, 3.0, 2**53 + 1]), WEIRD
    ),
    T.FLOAT: st.one_of(
        st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, 2.5, 3.0, 5.0, 1e300, -0.0]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-2, 6),
        WEIRD,
    ),
    T.STR: st.one_of(
        st.sampled_from(WORDS),
        st.text(alphabet="abAB", max_size=3),
        st.sampled_from([None, MISSING, 5, ("a",)]),
    ),
    T.BOOL: st.one_of(st.booleans(), st.booleans(), st.sampled_from([None, MISSING, 0, 1, 2, "yes", ""])),
    T.STR_LIST: st.one_of(
        st.lists(st.sampled_from(WORDS), max_size=3),
        st.frozensets(st.sampled_from(WORDS), max_size=3),
        st.sampled_from([None, MISSING, "ab"]),
    ),
}


@st.composite
def features(draw: st.DrawFn) -> dict[str, Any]:
    out = {}
    for name, spec in SCHEMA.items():
        value = draw(VALUES[spec.type])
        if value is not MISSING:
            out[name] = value
    return out


def view(signal: Signal) -> tuple[Any, ...]:
    """Everything but the timing."""
    return (
        signal.code,
        signal.status,
        signal.details,
        signal.score,
        signal.forced,
        signal.mode,
        signal.policy,
        signal.description,
        signal.source,
    )


def pack_of(expressions: list[str]) -> RulePack | None:
    rules = [
        {
            "id": f"R-{i:03d}",
            "description": e,
            "expression": e,
            "policy": "p",
            "score": 10,
            "mode": "shadow" if i % 3 == 0 else "live",
        }
        for i, e in enumerate(expressions)
    ]
    try:
        return build_pack({"x.yaml": {"kind": "order", "rules": rules}}, SCHEMA)
    except RulePackError as e:  # e.g. a constant sub-expression like 1 / 0
        assert all("constant expression fails" in p.message for p in e.problems), e.problems
        return None


def assert_agree(pack: RulePack, feats: dict[str, Any]) -> None:
    fast = [view(s) for s in pack.evaluate("order", feats)]
    slow = [view(s) for s in pack.evaluate_reference("order", feats)]
    assert fast == slow


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(bool_expr(), min_size=1, max_size=8), st.lists(features(), min_size=1, max_size=4))
def test_fast_path_agrees_with_reference(expressions: list[str], events: list[dict[str, Any]]) -> None:
    pack = pack_of(expressions)
    if pack is None:
        return
    for feats in events:
        assert_agree(pack, feats)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(bool_expr(), min_size=1, max_size=6), features())
def test_unindexed_rules_agree_too(expressions: list[str], feats: dict[str, Any]) -> None:
    with mock.patch.object(rulepack, "MAX_CLAUSES", 1):  # every `or` rule runs alone
        pack = pack_of(expressions)
    if pack is not None:
        assert_agree(pack, feats)


def _big_pack() -> RulePack:
    """Many rules sharing terms: clause bits far past 64, shared atoms, batched tests."""
    rnd = random.Random(11)
    expressions: list[str] = []
    while len(expressions) < 300:
        expressions.append(_random_rule(rnd))
    pack = pack_of(expressions)
    assert pack is not None
    return pack


def _random_rule(rnd: random.Random) -> str:
    def threshold() -> str:
        return f"{rnd.choice(NUMS)} {rnd.choice(OPS)} {rnd.choice(NUM_CONSTS[:9])}"

    shapes = [
        lambda: f"{threshold()} and {threshold()}",
        lambda: threshold(),
        lambda: f"{threshold()} or {rnd.choice(STRS)} == {rnd.choice(WORDS)!r}",
        lambda: f"contains(lower(s.a), {rnd.choice(WORDS)!r}) and {threshold()}",
        lambda: f"matches(s.b, {rnd.choice(PATTERNS)!r}) and not {rnd.choice(BOOLS)}",
        lambda: f"{rnd.choice(WORDS)!r} in l.x and {threshold()}",
        lambda: f"len(s.a) > {rnd.randrange(3)} and {rnd.choice(NUMS)} / n.f2 > 1",
        lambda: f"coalesce(n.i1, {rnd.randrange(4)}) >= {rnd.randrange(4)} and {threshold()}",
        lambda: f"not ({threshold()} or {threshold()})",
    ]
    return rnd.choice(shapes)()


BIG = _big_pack()


@settings(max_examples=100, deadline=None)
@given(features())
def test_big_pack_agrees(feats: dict[str, Any]) -> None:
    assert_agree(BIG, feats)
