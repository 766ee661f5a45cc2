"""Rule packs: rules as data, loaded and type-checked once, evaluated without ``eval``.

Layout on disk
--------------
A pack is a directory of YAML files (read in name order; ``*.yaml``/``*.yml``, hidden
files skipped) or one YAML file. Every file has the same shape, so a small pack can live
in one file and a big one can be split per abuse kind::

    # rules/pack.yaml -- optional; thresholds may also sit in each kind's file
    description: Marketplace default policy
    thresholds:
      order: {review: 50, block: 80}
      review: {review: 40, block: 90}

    # rules/orders.yaml
    kind: order                      # default `kinds` of the rules below
    rules:
      - id: ORD-001
        description: 3+ orders by one buyer at one shop within an hour, new account
        expression: velocity.buyer_shop.orders_1h >= 3 and account_age_minutes < 60
        score: 40                    # or `outcome: review|block|allow` to force one
        policy: marketplace-policy §4.2 fake transactions
        mode: live                   # or shadow: evaluated and logged, never counted
        tags: [velocity, new-account]

Unknown keys are errors (with a "did you mean"), as are duplicate YAML keys, duplicate
rule ids across files, a kind's thresholds declared twice, and any expression problem.
:func:`load_pack` collects *all* problems of a pack into one :class:`RulePackError`;
:func:`check_pack` returns them (plus warnings) for ``riskctl rules check``.

Version
-------
``RulePack.version`` is the sha256 of the canonical JSON of the parsed pack: the
effective thresholds of every kind and the rules sorted by id, each with its fields
normalised (kinds/tags sorted, whitespace in description/policy collapsed, the
expression in :func:`~riskctl.expressions.canonical` form). File names, file order,
rule order, YAML style, comments, whitespace and redundant parentheses in expressions
do not change it; any change of meaning (a threshold, a score, a mode, an operator, a
description) does.

Evaluation
----------
``evaluate(kind, features)`` returns one :class:`~riskctl.decisions.Signal` per enabled
rule of the kind, in rule id order. The cost must stay nearly flat in the number of
rules, so rules are not run one by one (see :class:`_KindIndex`): every rule is turned
into an OR of AND-clauses of *atoms* once, atoms are grouped by the *term* they test
(``velocity.x`` in ``velocity.x >= 3``), and each group is decided from the term's value
with one dict lookup (int thresholds through a lookup table, ``==``, ``in [...]``) or
one ``bisect`` (other numeric thresholds), which yields the bitmask of clauses it kills;
clauses are the bits of one Python int. The straightforward evaluator
(:meth:`RulePack.evaluate_reference`, each rule's closure alone) is kept as the
specification; tests check that both agree on random rules and hostile feature values.

Signals: a ``no_hit`` signal is a prebuilt instance shared between events (empty
``details``, ``duration_us`` 0.0) -- treat signals as immutable. Hits and errors are built
per event with ``details`` = the values of every feature the rule reads (plus
``"_error"``, the reason, for errors: rules cannot read names starting with ``_``, so
the key never collides). ``duration_us`` of an indexed hit or error is the shared index
time divided by the number of indexed rules; rules run alone (unindexable rules, errors
of multi-clause rules) carry their own measured time; :meth:`RulePack.evaluate_reference`
times every rule.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from itertools import compress, pairwise, repeat
from operator import getitem, not_, or_
from pathlib import Path
from time import perf_counter
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from riskctl.decisions import Mode, Outcome, Signal, SignalStatus, Source, Thresholds
from riskctl.expressions import (
    BUILTIN_FUNCTIONS,
    COMPARE_OPS,
    Call,
    Coalesce,
    Compare,
    CompiledExpression,
    Const,
    Evaluator,
    ExpressionError,
    Feature,
    FeatureUnavailable,
    FunctionRegistry,
    InConst,
    InExpr,
    Matches,
    Node,
    RuleError,
    canonical,
    compile_expression,
    compile_node,
    to_dnf,
)
from riskctl.features import FeatureSchema, FeatureType

__all__ = [
    "DEFAULT_THRESHOLDS",
    "KINDS",
    "Problem",
    "Rule",
    "RulePack",
    "RulePackError",
    "build_pack",
    "check_pack",
    "load_pack",
]

KINDS: Final = ("order", "review", "coupon_redemption", "listing")
Kind = Literal["order", "review", "coupon_redemption", "listing"]
DEFAULT_THRESHOLDS: Final = Thresholds()
MAX_CLAUSES: Final = 64  # a rule whose condition expands to more and-clauses runs alone
Severity = Literal["error", "warning"]


# -- problems -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of the loader/linter: where, which rule, what."""

    file: str
    rule_id: str | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = self.file + (f": {self.rule_id}" if self.rule_id else "")
        return f"{where}: {self.severity}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rule_id": self.rule_id,
            "message": self.message,
            "severity": self.severity,
        }


class RulePackError(RuleError):
    """A pack failed to load; ``problems`` lists every error found, not just the first."""

    type_slug = "invalid-rule-pack"
    title = "Invalid rule pack"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(
            f"rule pack has {len(self.problems)} error(s):\n{lines}",
            problems=[p.to_dict() for p in self.problems],
        )


# -- file models --------------------------------------------------------------------------


class _Model(BaseModel):
    # strict: a quoted "40" is not a score and "yes" is not a bool -- YAML already types
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ThresholdsModel(_Model):
    review: float = Field(ge=0, le=100)
    block: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdsModel:
        if self.review > self.block:
            raise ValueError("the review threshold must not be above the block threshold")
        return self


class RuleModel(_Model):
    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*$", max_length=64)
    description: str = Field(min_length=1)
    expression: str = Field(min_length=1)
    policy: str = Field(min_length=1)
    kinds: list[Kind] | None = Field(default=None, min_length=1)
    score: float | None = Field(default=None, ge=0, le=100)
    outcome: Literal["allow", "review", "block"] | None = None
    mode: Literal["live", "shadow"] = "live"
    tags: list[str] = Field(default_factory=list)
    enabled: bool = True

    @model_validator(mode="after")
    def _score_or_outcome(self) -> RuleModel:
        if (self.score is None) == (self.outcome is None):
            raise ValueError("give exactly one of `score` (0-100) or `outcome` (allow|review|block)")
        return self


class RuleFileModel(_Model):
    description: str = ""
    kind: Kind | None = None
    thresholds: dict[Kind, ThresholdsModel] = Field(default_factory=dict)
    rules: list[Any] = Field(default_factory=list)  # each validated alone, to name its id


# -- rules --------------------------------------------------------------------------------


def _lit(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def _squash(text: str) -> str:
    """Collapse whitespace: a folded YAML scalar and a plain one read (and hash) alike."""
    return " ".join(text.split())


def _reason(e: BaseException) -> str:
    if isinstance(e, FeatureUnavailable):
        return str(e)
    return f"{type(e).__name__}: {e}"


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """A compiled rule. ``score`` is its contribution on a hit; ``outcome`` forces one."""

    id: str
    description: str
    kinds: frozenset[str]
    expression: CompiledExpression
    policy: str
    score: float = 0.0
    outcome: Outcome | None = None
    mode: Mode = Mode.LIVE
    tags: frozenset[str] = frozenset()
    enabled: bool = True
    source: str = ""  # the file it came from (not part of the version hash)

    def canonical(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "kinds": sorted(self.kinds),
            "expression": self.expression.canonical,
            "score": self.score,
            "outcome": self.outcome.label if self.outcome is not None else None,
            "mode": self.mode.value,
            "policy": self.policy,
            "tags": sorted(self.tags),
            "enabled": self.enabled,
        }

    def signal(
        self, status: SignalStatus, details: dict[str, Any] | None = None, duration_us: float = 0.0
    ) -> Signal:
        return Signal(
            Source.RULE,
            self.id,
            status,
            self.description,
            self.score,
            self.outcome,
            self.mode,
            {} if details is None else details,
            duration_us,
            self.policy,
        )

    def values(self, features: Mapping[str, Any]) -> dict[str, Any]:
        """The evidence: every feature this rule reads, as it was for this event."""
        get = features.get
        return {name: get(name) for name in self.expression.features}

    def evaluate(self, features: Mapping[str, Any]) -> Signal:
        """The reference evaluation of this rule alone, timed. Never raises."""
        started = perf_counter()
        try:
            hit = bool(self.expression.evaluate(features))
        except Exception as e:  # unavailable feature, division by zero...: ERROR, not a crash
            took = (perf_counter() - started) * 1e6
            return self.signal(SignalStatus.ERROR, {**self.values(features), "_error": _reason(e)}, took)
        took = (perf_counter() - started) * 1e6
        if hit:
            return self.signal(SignalStatus.HIT, self.values(features), took)
        return self.signal(SignalStatus.NO_HIT, None, took)


# -- the fast path ------------------------------------------------------------------------

_MARK: Final = None
"""In a kill table: "this value needs the exact path". ``int | None`` raises TypeError,
which stops the vectorised reduce; then only the marked terms are resolved one by one."""

_FLIP: Final = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_EXACT_FLOAT: Final = 2.0**53  # below this, int <-> float conversion of a constant is exact
_STR_TESTS: Final = {"contains", "startswith", "endswith"}


class _Atom:
    """A bool leaf of a rule (``x >= 3``, ``contains(t, "a")``, ``flag``...), shared by
    every clause that uses it. ``pos``/``neg``: clauses using it plain / negated."""

    __slots__ = ("key", "neg", "node", "pos", "ref")

    def __init__(self, key: str, node: Node) -> None:
        self.key = key
        self.node = node
        self.ref = compile_node(node)
        self.pos = 0
        self.neg = 0


def _plain(term: Node) -> tuple[str, bool, Any] | None:
    """(feature, has_default, default) when the term is ``f`` or ``coalesce(f, const)``."""
    if isinstance(term, Feature):
        return term.name, False, None
    if isinstance(term, Coalesce) and isinstance(term.value, Feature) and isinstance(term.default, Const):
        return term.value.name, True, term.default.value
    return None


def _bisectable(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) < _EXACT_FLOAT
    )


def _classify(node: Node) -> tuple[Node, str, Any]:
    """Split an atom into (term, test, parameter). Tests: ``cmp`` (numeric threshold,
    bisect), ``in``/``ne`` (hashable constants, dict), ``contains``/``startswith``/
    ``endswith``/``matches`` (batched per term), ``truth`` (the atom is its own term)."""
    if isinstance(node, Compare):
        left, op, right = node.left, node.op, node.right
        if isinstance(left, Const) and not isinstance(right, Const):
            left, op, right = right, _FLIP[op], left
        if isinstance(right, Const) and not isinstance(left, Const):
            if left.type.numeric and _bisectable(right.value):
                return left, "cmp", (op, float(right.value))
            if op in ("==", "!="):
                return left, "in" if op == "==" else "ne", frozenset({right.value})
    if isinstance(node, InConst) and not isinstance(node.item, Const):
        return node.item, "in", node.values
    if (
        isinstance(node, Call)
        and node.func.name in _STR_TESTS
        and len(node.args) == 2
        and node.func is BUILTIN_FUNCTIONS[node.func.name]
        and isinstance(node.args[1], Const)
        and not isinstance(node.args[0], Const)
    ):
        return node.args[0], node.func.name, node.args[1].value
    if isinstance(node, InExpr) and isinstance(node.item, Const) and not isinstance(node.container, Const):
        return node.container, "contains", node.item.value
    if isinstance(node, Matches) and not isinstance(node.subject, Const):
        return node.subject, "matches", node.pattern
    return node, "truth", None


_LUT_SLACK: Final = 64  # int lookup tables also cover this far past the last threshold
_LUT_SPAN: Final = 512  # an int term whose thresholds span more keys uses bisect
_NONE_TO_NAN: Final = {None: math.nan}  # .get(v, v): None -> NaN (bisect-able), else v


class _Unit:
    """Atoms decided together from one term's value.

    ``kill(value)`` returns the bitmask of clauses that the value makes false. It raises
    on anything unusual (unavailable, NaN, inf, a value of the wrong type); then
    :meth:`_KindIndex._resolve` falls back to the atoms' own reference closures, which
    is exact by definition. ``run(features)`` is getter + kill in one closure.
    """

    __slots__ = ("atoms", "getter", "key", "kill", "name", "run", "strict_name", "uses")

    def __init__(
        self,
        key: str,
        name: str | None,
        getter: Evaluator,
        atoms: list[_Atom],
        kill: Callable[[Any], int],
        strict: bool = False,
    ) -> None:
        self.key = key
        self.name = name
        self.strict_name = name if strict else None  # a plain feature without a default
        self.getter = getter
        self.atoms = atoms
        self.uses: int = reduce(or_, (a.pos | a.neg for a in atoms), 0)
        self.kill = kill
        self.run: Callable[[Mapping[str, Any]], int] = lambda f: kill(getter(f))


def _threshold_table(cmps: list[tuple[str, float, _Atom]]) -> tuple[list[float], list[int | None]]:
    """Sorted boundaries and, per region between them, the clauses killed there.

    ``v >= c`` and ``v < c`` flip at ``c``; ``v > c`` and ``v <= c`` flip at the next
    float above ``c`` (for |c| < 2**53 that is exact for ints too); ``==``/``!=`` use
    both. So ``bisect_right(bounds, v)`` names a region in which every atom of the term
    has one known truth value. A final ``+inf`` boundary isolates ``inf`` and ``NaN``
    (bisect puts NaN last) in a region marked for the exact path.
    """
    points: set[float] = set()
    for op, c, _ in cmps:
        if op in (">=", "<", "==", "!="):
            points.add(c)
        if op in (">", "<=", "==", "!="):
            points.add(math.nextafter(c, math.inf))
    bounds = sorted(points)
    table: list[int | None] = []
    for rep in (-math.inf, *bounds):  # region r is [bounds[r-1], bounds[r])
        k = 0
        for op, c, atom in cmps:
            k |= atom.neg if COMPARE_OPS[op](rep, c) else atom.pos
        table.append(k)
    table.append(_MARK)
    return [*bounds, math.inf], table


def _int_lut(bounds: list[float], table: list[int | None]) -> dict[Any, int | None] | None:
    """For int-typed terms: value -> killed clauses for every int from min(0, first
    threshold - 1) to the last threshold + slack. One dict lookup (~20 ns) instead of an
    int-vs-float bisect (~100 ns). A float equal to an int hashes and compares alike, so
    3.0 correctly finds 3; anything else misses and takes the exact path."""
    finite = bounds[:-1]
    lo = min(0, math.floor(finite[0]) - 1)
    hi = max(0, math.ceil(finite[-1])) + _LUT_SLACK
    if hi - lo > _LUT_SPAN:
        return None
    return {k: table[bisect_right(bounds, k)] for k in range(lo, hi + 1)}


def _hash_table(
    tests: list[tuple[str, frozenset[Any], _Atom]],
) -> tuple[dict[Any, int | None], int | None]:
    """Value -> clauses killed, for ``==``/``!=``/``in [...]`` against constants and bare
    bool atoms. A value equal to no constant gets the default. None is marked (it means
    unavailable, or a coalesce default to substitute), and so is the default when a bare
    truth test is present (``2`` is truthy but equals neither true nor false)."""
    keys: set[Any] = set()
    for how, values, _ in tests:
        keys |= {True, False} if how == "truth" else values
    table: dict[Any, int | None] = {}
    for key in keys:
        k = 0
        for how, values, atom in tests:
            truth = bool(key) if how == "truth" else (key in values) == (how == "in")
            k |= atom.neg if truth else atom.pos
        table[key] = k
    default: int | None = _MARK
    if not any(how == "truth" for how, _, _ in tests):
        default = reduce(or_, (atom.neg if how == "ne" else atom.pos for how, _, atom in tests), 0)
    table[None] = _MARK
    return table, default


def _family(how: str, params: list[Any], atoms: list[_Atom]) -> Callable[[Any], int]:
    """The string tests of one term, batched: one C-level ``map`` over the constants."""
    kf = [a.pos for a in atoms]  # killed when the test is false
    kt = [a.neg for a in atoms]  # killed when it is true (negated uses)
    all_kf: int = reduce(or_, kf, 0)
    masks: Callable[[Iterable[Any]], int]
    if not any(kt) and sum(k.bit_count() for k in kf) == all_kf.bit_count():
        # No clause uses two of these tests (the usual case) and most tests are false:
        # killed = every using clause minus the clauses of the few true tests.
        def masks(results: Iterable[Any]) -> int:
            return all_kf ^ reduce(or_, compress(kf, results), 0)
    else:

        def masks(results: Iterable[Any]) -> int:
            res = list(results)
            return reduce(or_, compress(kf, map(not_, res)), 0) | reduce(or_, compress(kt, res), 0)

    if how == "contains":  # == `needle in v`, for str and list values alike
        return lambda v: masks(map(v.__contains__, params))
    if how == "startswith":
        return lambda v: masks(map(v.startswith, params))
    if how == "endswith":
        return lambda v: masks(map(v.endswith, params))
    if how == "matches":
        search = re.Pattern.search
        return lambda v: masks(map(search, params, repeat(v)))
    raise ValueError(how)  # pragma: no cover


def _threshold_kill(bounds: list[float], table: list[int | None]) -> Callable[[Any], int]:
    return lambda v: table[bisect_right(bounds, v)] | 0  # type: ignore[operator]  # None raises


def _threshold_run(
    getter: Evaluator, bounds: list[float], table: list[int | None]
) -> Callable[[Mapping[str, Any]], int]:
    return lambda f: table[bisect_right(bounds, getter(f))] | 0  # type: ignore[operator]


def _hash_kill(hdict: dict[Any, int | None], default: int | None) -> Callable[[Any], int]:
    return lambda v: hdict.get(v, default) | 0  # type: ignore[operator]  # None raises


def _truth_kill(atoms: list[_Atom]) -> Callable[[Any], int]:
    # Truthiness is exactly how and/or/not and the top level read an atom's value.
    kt: int = reduce(or_, (a.neg for a in atoms), 0)
    kf: int = reduce(or_, (a.pos for a in atoms), 0)
    return lambda v: kt if v else kf


def _combine(kills: list[Callable[[Any], int]]) -> Callable[[Any], int]:
    if len(kills) == 1:
        return kills[0]
    return lambda v: reduce(or_, [k(v) for k in kills], 0)


def _plain_getter(name: str, has_default: bool, default: Any) -> Evaluator:
    if has_default:

        def get_or_default(f: Mapping[str, Any]) -> Any:
            v = f.get(name)
            return default if v is None else v

        return get_or_default

    def get(f: Mapping[str, Any]) -> Any:
        v = f.get(name)
        if v is None:
            raise FeatureUnavailable(name)
        return v

    return get


@dataclass
class _Term:
    node: Node
    cmps: list[tuple[str, float, _Atom]] = field(default_factory=list)
    hashed: list[tuple[str, frozenset[Any], _Atom]] = field(default_factory=list)
    truths: list[_Atom] = field(default_factory=list)
    families: dict[str, list[tuple[Any, _Atom]]] = field(default_factory=dict)


class _KindIndex:
    """All enabled rules of one event kind, compiled into clause bitmasks.

    Every rule becomes an OR of AND-clauses (:func:`~riskctl.expressions.to_dnf`); each
    clause is one bit of a Python int. Per event:

    1. Plain features tested against constants are decided in two vectorised passes
       (C-level ``map``/``reduce``, no Python loop): int thresholds and ``==``/``!=``/
       ``in [...]`` by one dict lookup each (value -> clauses killed), other numeric
       thresholds by one ``bisect_right`` into sorted boundaries. OR-ed together that
       is ``dead``, the clauses some false atom kills.
    2. Everything else (``len(x)``, ``lower(x)`` with its ``contains`` tests batched,
       regexes, ratios, ``a in list_feature``...) runs lazily, one term at a time, and
       only if a clause that is still alive needs it.
    3. Alive clauses with nothing unknown are hits. A value the tables cannot decide
       (None, NaN, inf, a wrong type) sends only that term down the exact path, the
       atoms' own closures; atoms that raise are *unknown*, and a rule with an alive
       but unknown clause and no hit is an ERROR (three-valued logic: nothing left can
       decide it). The reason is the first failing atom in clause order, which is what
       the reference evaluator reports; a rule with several clauses is re-run alone to
       get its reason exactly.

    The per-event work is one pass over distinct *terms* (bounded by the schema); the
    per-rule work is a bit in an int and a pointer copy of its prebuilt no_hit signal.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self.nohit = [r.signal(SignalStatus.NO_HIT) for r in self.rules]
        atoms: dict[str, _Atom] = {}
        clause_rule: list[int] = []
        self.clause_keys: dict[int, tuple[str, ...]] = {}  # single-clause rules: atom keys
        fallback: list[int] = []
        for ri, rule in enumerate(self.rules):
            dnf = to_dnf(rule.expression.node, max_clauses=MAX_CLAUSES)
            if dnf is None:
                fallback.append(ri)
                continue
            for clause in dnf:
                bit = 1 << len(clause_rule)
                clause_rule.append(ri)
                if len(dnf) == 1:
                    self.clause_keys[ri] = tuple(lit.key for lit in clause)
                for lit in clause:
                    atom = atoms.get(lit.key)
                    if atom is None:
                        atom = atoms[lit.key] = _Atom(lit.key, lit.atom)
                    if lit.positive:
                        atom.pos |= bit
                    else:
                        atom.neg |= bit
        self.clause_rule = clause_rule
        self.all = (1 << len(clause_rule)) - 1
        self.fallback = fallback
        self.n_indexed = max(1, len(self.rules) - len(fallback))
        self.n_atoms = len(atoms)

        terms: dict[str, _Term] = {}
        for atom in atoms.values():
            node, how, param = _classify(atom.node)
            term = terms.setdefault(canonical(node), _Term(node))
            if how == "cmp":
                term.cmps.append((param[0], param[1], atom))
            elif how in ("in", "ne"):
                term.hashed.append((how, param, atom))
            elif how == "truth":
                term.truths.append(atom)
            else:
                term.families.setdefault(how, []).append((param, atom))

        dict_units: list[tuple[_Unit, dict[Any, int | None], int | None]] = []
        bisect_units: list[tuple[_Unit, list[float], list[int | None]]] = []
        lazy_plain: list[_Unit] = []
        lazy_computed: list[_Unit] = []
        for key, term in terms.items():
            plain = _plain(term.node)
            getter = _plain_getter(*plain) if plain else compile_node(term.node)
            name = plain[0] if plain else None
            strict = plain is not None and not plain[1]
            kills: list[Callable[[Any], int]] = []
            lazy_atoms: list[_Atom] = []
            if term.cmps:
                cmp_atoms = [a for _, _, a in term.cmps]
                bounds, table = _threshold_table(term.cmps)
                kill = _threshold_kill(bounds, table)
                lut = _int_lut(bounds, table) if term.node.type is FeatureType.INT else None
                if plain and lut is not None:
                    dict_units.append((_Unit(key, name, getter, cmp_atoms, kill, strict), lut, _MARK))
                elif plain:
                    bisect_units.append((_Unit(key, name, getter, cmp_atoms, kill, strict), bounds, table))
                else:
                    kills.append(kill)
                    lazy_atoms += cmp_atoms
            hashed = term.hashed
            if plain:  # a plain bool feature's truth is one more dict key
                hashed = hashed + [("truth", frozenset(), a) for a in term.truths]
            elif term.truths:
                kills.append(_truth_kill(term.truths))
                lazy_atoms += term.truths
            if hashed:
                hdict, hdefault = _hash_table(hashed)
                hash_atoms = [a for _, _, a in hashed]
                kill = _hash_kill(hdict, hdefault)
                if plain:
                    dict_units.append((_Unit(key, name, getter, hash_atoms, kill, strict), hdict, hdefault))
                else:
                    kills.append(kill)
                    lazy_atoms += hash_atoms
            for how, items in term.families.items():
                kills.append(_family(how, [p for p, _ in items], [a for _, a in items]))
                lazy_atoms += [a for _, a in items]
            if kills:
                unit = _Unit(key, name, getter, lazy_atoms, _combine(kills), strict)
                if len(kills) == 1 and term.cmps and not plain:  # fuse: one call less
                    unit.run = _threshold_run(getter, *_threshold_table(term.cmps))
                (lazy_plain if plain else lazy_computed).append(unit)

        # Parallel lists for the vectorised passes (typed Any: they feed C-level map()).
        self.d_units = [u for u, _, _ in dict_units]
        self.d_names: list[Any] = [u.name for u in self.d_units]
        self.d_dicts: list[Any] = [d for _, d, _ in dict_units]
        self.d_defaults: list[Any] = [d for _, _, d in dict_units]
        self.b_units = [u for u, _, _ in bisect_units]
        self.b_names: list[Any] = [u.name for u in self.b_units]
        self.b_bounds: list[Any] = [b for _, b, _ in bisect_units]
        self.b_tables: list[Any] = [t for _, _, t in bisect_units]
        self.lazy = lazy_plain + lazy_computed  # cheap first: they kill clauses for the rest

    def stats(self) -> dict[str, int]:
        return {
            "rules": len(self.rules),
            "clauses": len(self.clause_rule),
            "atoms": self.n_atoms,
            "dict_terms": len(self.d_units),
            "bisect_terms": len(self.b_units),
            "lazy_terms": len(self.lazy),
            "unindexed_rules": len(self.fallback),
        }

    @staticmethod
    def _resolve(
        unit: _Unit, features: Mapping[str, Any], errors: dict[str, BaseException]
    ) -> tuple[int, int]:
        """The exact path for one term: (killed, unknown) clause masks."""
        if unit.strict_name is not None and features.get(unit.strict_name) is None:
            # Unavailable (the degraded-mode case, hundreds per event): no raise/catch.
            e: Exception = FeatureUnavailable(unit.strict_name)
            for a in unit.atoms:
                errors[a.key] = e
            return 0, unit.uses
        try:
            value = unit.getter(features)
        except Exception as e:
            # Every atom of the term evaluates the term first, so each fails just so.
            for a in unit.atoms:
                errors[a.key] = e
            return 0, unit.uses
        try:
            return unit.kill(value), 0
        except Exception:  # noqa: S110 - NaN, inf, odd types: ask each atom
            pass
        killed = unknown = 0
        for a in unit.atoms:
            try:
                killed |= a.neg if a.ref(features) else a.pos
            except Exception as e:
                unknown |= a.pos | a.neg
                errors[a.key] = e
        return killed, unknown

    def _vectorised(self, features: Mapping[str, Any], errors: dict[str, BaseException]) -> tuple[int, int]:
        """Pass 1: every plain term against its table, as C-level map/reduce. A marked
        entry (None) makes ``or`` raise; only then are the per-term masks materialised
        and the odd terms resolved one by one."""
        get = features.get
        try:
            dead = reduce(or_, map(dict.get, self.d_dicts, map(get, self.d_names), self.d_defaults), 0)
            if self.b_names:
                raw = list(map(get, self.b_names))
                dead = reduce(
                    or_,
                    map(
                        getitem,
                        self.b_tables,
                        map(bisect_right, self.b_bounds, map(_NONE_TO_NAN.get, raw, raw)),
                    ),
                    dead,
                )
            return dead, 0
        except Exception:  # noqa: S110 - a mark, an unhashable or unorderable value
            pass
        try:
            dmasks = list(map(dict.get, self.d_dicts, map(get, self.d_names), self.d_defaults))
        except Exception:
            dmasks = [None] * len(self.d_units)
        try:
            raw = list(map(get, self.b_names))
            bmasks = list(
                map(getitem, self.b_tables, map(bisect_right, self.b_bounds, map(_NONE_TO_NAN.get, raw, raw)))
            )
        except Exception:
            bmasks = [None] * len(self.b_units)
        dead = unknown = 0
        for unit, mask in zip((*self.d_units, *self.b_units), (*dmasks, *bmasks), strict=True):
            if mask is None:
                killed, unk = self._resolve(unit, features, errors)
                dead |= killed
                unknown |= unk
            else:
                dead |= mask
        return dead, unknown

    def evaluate(self, features: Mapping[str, Any]) -> list[Signal]:
        started = perf_counter()
        errors: dict[str, BaseException] = {}
        dead, unknown = self._vectorised(features, errors)
        alive = self.all & ~dead
        for unit in self.lazy:
            if unit.uses & alive:  # some clause still needs this term
                try:
                    killed = unit.run(features)
                except Exception:
                    killed, unk = self._resolve(unit, features, errors)
                    unknown |= unk
                if killed:
                    alive &= ~killed

        out = list(self.nohit)
        if not (alive or self.fallback):
            return out
        share = (perf_counter() - started) * 1e6 / self.n_indexed
        rules, clause_rule = self.rules, self.clause_rule
        done: set[int] = set()
        hits = alive & ~unknown if unknown else alive
        while hits:
            low = hits & -hits
            hits ^= low
            ri = clause_rule[low.bit_length() - 1]
            if ri not in done:
                done.add(ri)
                rule = rules[ri]
                out[ri] = rule.signal(SignalStatus.HIT, rule.values(features), share)
        pending = alive & unknown
        while pending:  # alive, unknown and no hit: an ERROR signal
            low = pending & -pending
            pending ^= low
            ri = clause_rule[low.bit_length() - 1]
            if ri in done:
                continue
            done.add(ri)
            rule = rules[ri]
            keys = self.clause_keys.get(ri)
            if keys is None:  # several clauses: which error surfaces needs the rule itself
                out[ri] = rule.evaluate(features)
                continue
            details = rule.values(features)
            for k in keys:  # the first unknown atom in clause order
                if k in errors:
                    details["_error"] = _reason(errors[k])
                    break
            out[ri] = rule.signal(SignalStatus.ERROR, details, share)
        for ri in self.fallback:
            out[ri] = rules[ri].evaluate(features)
        return out


# -- the pack -----------------------------------------------------------------------------


class RulePack:
    """An immutable, versioned set of compiled rules with per-kind thresholds.

    Satisfies :class:`riskctl.policy.Policy`. Thread-safe: nothing changes after
    construction and evaluation keeps its state in locals.
    """

    def __init__(
        self,
        rules: Iterable[Rule],
        thresholds: Mapping[str, Thresholds] | None = None,
        *,
        description: str = "",
        source: str = "",
    ) -> None:
        ordered = sorted(rules, key=lambda r: r.id)
        for a, b in pairwise(ordered):
            if a.id == b.id:
                raise ValueError(f"duplicate rule id {a.id!r}")
        self._rules = tuple(ordered)
        given = dict(thresholds or {})
        self._thresholds = {k: given.get(k, DEFAULT_THRESHOLDS) for k in sorted({*KINDS, *given})}
        self.description = description
        self.source = source
        self._version = hashlib.sha256(
            json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ).hexdigest()
        kinds = sorted({k for r in self._rules for k in r.kinds})
        self._by_kind = {k: _KindIndex([r for r in self._rules if r.enabled and k in r.kinds]) for k in kinds}

    def canonical(self) -> dict[str, Any]:
        """What the version hashes (see the module docstring)."""
        return {
            "format": 1,
            "thresholds": {k: {"review": t.review, "block": t.block} for k, t in self._thresholds.items()},
            "rules": [r.canonical() for r in self._rules],
        }

    @property
    def version(self) -> str:
        return self._version

    @property
    def short_version(self) -> str:
        return self._version[:12]

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def rules_for(self, kind: str) -> tuple[Rule, ...]:
        """Enabled rules evaluated for ``kind``, in the order of the returned signals."""
        index = self._by_kind.get(kind)
        return index.rules if index is not None else ()

    def thresholds(self, kind: str) -> Thresholds:
        return self._thresholds.get(kind, DEFAULT_THRESHOLDS)

    def evaluate(self, kind: str, features: Mapping[str, Any]) -> list[Signal]:
        """One signal per enabled rule of ``kind`` (rule id order). Never raises for a
        rule's sake: unavailable features and runtime errors become ERROR signals."""
        index = self._by_kind.get(kind)
        return index.evaluate(features) if index is not None else []

    def evaluate_reference(self, kind: str, features: Mapping[str, Any]) -> list[Signal]:
        """The straightforward evaluator: each rule's closure alone, individually timed.
        Same statuses/details as :meth:`evaluate`; slower. For tests and explain views."""
        return [rule.evaluate(features) for rule in self.rules_for(kind)]

    def stats(self, kind: str) -> dict[str, int]:
        """Shape of the kind's index (rules, clauses, atoms, terms, unindexed rules)."""
        index = self._by_kind.get(kind)
        return index.stats() if index is not None else {}

    def __repr__(self) -> str:
        return f"<RulePack {self.short_version} rules={len(self._rules)}>"


# -- loading ------------------------------------------------------------------------------


def _duplicate_keys(text: str) -> list[str]:
    """Duplicate mapping keys (PyYAML silently keeps the last one). Composes nodes only;
    no object is constructed."""
    found: list[str] = []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return found  # safe_load reports it
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        found.append(f"duplicate key {k.value!r} (line {k.start_mark.line + 1})")
                    seen.add(k.value)
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return found


def _read(path: Path) -> tuple[dict[str, Any], list[Problem]]:
    """File name -> parsed YAML (``yaml.safe_load`` only), and the problems met."""
    problems: list[Problem] = []
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
        )
        if not files:
            problems.append(Problem(str(path), None, "no *.yaml rule files in this directory"))
    elif path.is_file():
        files = [path]
    else:
        return {}, [Problem(str(path), None, "no such file or directory")]
    docs: dict[str, Any] = {}
    for file in files:
        name = file.name if path.is_dir() else str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem(name, None, f"cannot read: {e}"))
            continue
        try:
            docs[name] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            problems.append(Problem(name, None, f"invalid YAML: {e}".replace("\n", " ")))
            continue
        problems.extend(Problem(name, None, msg) for msg in _duplicate_keys(text))
    return docs, problems


def _validation_problems(
    e: ValidationError, file: str, rule_id: str | None, fields: Iterable[str]
) -> list[Problem]:
    out = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            hint = difflib.get_close_matches(key, list(fields), n=1)
            where = f" in {'.'.join(str(x) for x in err['loc'][:-1])}" if len(err["loc"]) > 1 else ""
            msg = f"unknown key {key!r}{where}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        elif err["type"] == "missing":
            msg = f"missing required key {loc!r}"
        else:
            text = str(err["msg"]).removeprefix("Value error, ")
            msg = f"{loc}: {text}" if loc else text
        out.append(Problem(file, rule_id, msg))
    return out


def _build(
    documents: Mapping[str, Any],
    schema: FeatureSchema,
    functions: FunctionRegistry | None,
    source: str,
) -> tuple[RulePack | None, list[Problem]]:
    problems: list[Problem] = []
    rules: list[Rule] = []
    seen_ids: dict[str, str] = {}
    thresholds: dict[str, Thresholds] = {}
    threshold_file: dict[str, str] = {}
    descriptions: list[str] = []
    for file, data in documents.items():
        if data is None:
            problems.append(Problem(file, None, "empty file", "warning"))
            continue
        if not isinstance(data, dict):
            problems.append(Problem(file, None, f"expected a mapping at the top, got {type(data).__name__}"))
            continue
        try:
            doc = RuleFileModel.model_validate(data)
        except ValidationError as e:
            problems.extend(_validation_problems(e, file, None, RuleFileModel.model_fields))
            continue
        if doc.description:
            descriptions.append(_squash(doc.description))
        for kind, t in doc.thresholds.items():
            if kind in thresholds:
                where = threshold_file[kind]
                problems.append(Problem(file, None, f"thresholds for {kind!r} are already set in {where}"))
                continue
            thresholds[kind] = Thresholds(review=t.review, block=t.block)
            threshold_file[kind] = file
        for i, raw in enumerate(doc.rules):
            rid = raw.get("id") if isinstance(raw, dict) else None
            label = rid if isinstance(rid, str) else f"rules[{i}]"
            if not isinstance(raw, dict):
                problems.append(Problem(file, label, f"a rule must be a mapping, got {type(raw).__name__}"))
                continue
            duplicate = isinstance(rid, str) and rid in seen_ids
            if duplicate:  # reported even when either copy has other problems too
                problems.append(Problem(file, label, f"duplicate rule id (also in {seen_ids[label]})"))
            elif isinstance(rid, str):
                seen_ids[rid] = file
            try:
                model = RuleModel.model_validate(raw)
            except ValidationError as e:
                problems.extend(_validation_problems(e, file, label, RuleModel.model_fields))
                continue
            if duplicate:
                continue
            kinds = frozenset(model.kinds or ([doc.kind] if doc.kind else []))
            if not kinds:
                problems.append(
                    Problem(file, model.id, "no event kind: set `kinds:` on the rule or `kind:` on the file")
                )
                continue
            try:
                expr = compile_expression(
                    model.expression, schema, kinds=kinds, rule_id=model.id, functions=functions
                )
            except ExpressionError as e:
                problems.append(Problem(file, model.id, str(e).removeprefix(f"rule {model.id}: ")))
                continue
            rule = Rule(
                id=model.id,
                description=_squash(model.description),
                kinds=kinds,
                expression=expr,
                policy=_squash(model.policy),
                score=float(model.score) if model.score is not None else 0.0,
                outcome=Outcome.parse(model.outcome) if model.outcome is not None else None,
                mode=Mode(model.mode),
                tags=frozenset(model.tags),
                enabled=model.enabled,
                source=file,
            )
            rules.append(rule)
            if isinstance(expr.node, Const):
                problems.append(
                    Problem(file, rule.id, f"the condition is always {_lit(expr.node.value)}", "warning")
                )
            elif to_dnf(expr.node, max_clauses=MAX_CLAUSES) is None:
                problems.append(
                    Problem(
                        file,
                        rule.id,
                        f"the condition expands to more than {MAX_CLAUSES} "
                        "and-clauses; it is evaluated on its own (slower)",
                        "warning",
                    )
                )
    default = DEFAULT_THRESHOLDS
    for used in sorted({k for r in rules for k in r.kinds} - set(thresholds)):
        problems.append(
            Problem(
                source or "<pack>",
                None,
                f"no thresholds for {used!r}; using review={default.review:g}, block={default.block:g}",
                "warning",
            )
        )
    if any(p.severity == "error" for p in problems):
        return None, problems
    return RulePack(rules, thresholds, description=" ".join(descriptions), source=source), problems


def build_pack(
    documents: Mapping[str, Any],
    schema: FeatureSchema,
    *,
    functions: FunctionRegistry | None = None,
    source: str = "",
) -> RulePack:
    """A pack from already-parsed documents (file name -> YAML data). Raises
    :class:`RulePackError` with every error found."""
    pack, problems = _build(documents, schema, functions, source)
    if pack is None:
        raise RulePackError([p for p in problems if p.severity == "error"])
    return pack


def load_pack(
    path: Path | str, schema: FeatureSchema, *, functions: FunctionRegistry | None = None
) -> RulePack:
    """Load, validate, type-check and compile a pack directory or file."""
    path = Path(path)
    documents, problems = _read(path)
    pack, more = _build(documents, schema, functions, str(path))
    errors = [p for p in (*problems, *more) if p.severity == "error"]
    if errors or pack is None:
        raise RulePackError(errors)
    return pack


def check_pack(
    path: Path | str, schema: FeatureSchema, *, functions: FunctionRegistry | None = None
) -> list[Problem]:
    """Every error and warning of a pack, for the linter; empty means clean."""
    path = Path(path)
    documents, problems = _read(path)
    _, more = _build(documents, schema, functions, str(path))
    return [*problems, *more]
