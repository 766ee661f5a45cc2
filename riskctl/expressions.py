"""The rule expression language: parsed and type-checked once, evaluated as closures.

An analyst writes a condition such as::

    velocity.buyer_shop.orders_1h >= 3 and account_age_minutes < 60
    payment.fingerprint in lists.block.payment
    contains(lower(review.text), "free gift") or matches(listing.title, "(?i)replica|1:1")

Dotted names are *feature names* from a :class:`~riskctl.features.FeatureSchema` (the
dots belong to the name; there is no attribute access). Everything else is a small,
closed grammar: literals (str, int, float, ``true``/``false``), list literals on the right
of ``in``, ``+ - * /``, comparisons (chains allowed), ``in``/``not in``, ``and``/``or``/
``not``, parentheses and a whitelist of pure functions (:data:`FUNCTIONS`, extensible
with :func:`register_function`).

How it is safe. The text is parsed with :func:`ast.parse` (parsing only; nothing runs),
then a strict whitelist walker turns the tree into a small typed IR (:class:`Node`).
Every node type not on the whitelist -- attribute access outside a dotted feature name,
calls of anything not in the function table, subscripts, lambdas, comprehensions,
f-strings, ``:=``, conditional expressions... -- is rejected with the rule id, the
column and a reason. The IR is then compiled into plain Python closures. Rule text is
never passed to ``eval``/``exec``/``compile`` and no Python source is generated.

Types. Every IR node carries a :class:`~riskctl.features.FeatureType`; the top level
must be ``bool``. Ordering comparisons and arithmetic need numbers (``int`` widens to
``float``), ``==`` needs two numbers or two values of the same type, ``and``/``or``/
``not`` need bools. A misspelt feature fails with the closest declared name.

Runtime semantics. A feature whose value is ``None`` (or missing from the mapping) is
*unavailable*: reading it raises :class:`FeatureUnavailable`, unless it is inside
``coalesce(x, default)``. ``and``/``or`` short-circuit and are *error absorbing*
(three-valued, as in SQL and Kleene logic): ``False and <error>`` and ``<error> and
False`` are both ``False``; an error only surfaces when the other operands cannot decide
the result. That is the right answer for risk ("3+ orders in an hour *and* a new
account" is a clear no for an old account even while Redis is down), and it makes the
result independent of operand order, which the rule-pack fast path relies on.
"""

from __future__ import annotations

import ast
import difflib
import io
import json
import math
import operator
import re
import threading
import tokenize
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

from riskctl.errors import RiskctlError
from riskctl.features import FeatureSchema, FeatureType

__all__ = [
    "BUILTIN_FUNCTIONS",
    "FUNCTIONS",
    "Arith",
    "BoolOp",
    "Call",
    "Coalesce",
    "Compare",
    "CompiledExpression",
    "Const",
    "Evaluator",
    "ExpressionError",
    "Feature",
    "FeatureUnavailable",
    "FunctionDef",
    "FunctionRegistry",
    "InConst",
    "InExpr",
    "Literal",
    "Matches",
    "Neg",
    "Node",
    "Not",
    "RuleError",
    "RuleEvalError",
    "SignatureError",
    "canonical",
    "compile_expression",
    "compile_node",
    "feature_names",
    "register_function",
    "to_dnf",
]

T = FeatureType
Evaluator = Callable[[Mapping[str, Any]], Any]
"""A compiled expression: features in, value out (raises on unavailable/runtime errors)."""

MAX_EXPRESSION_CHARS = 10_000
MAX_DEPTH = 64  # bounds recursion in the checker, the closures and the DNF expansion


# -- errors -------------------------------------------------------------------------------


class RuleError(RiskctlError):
    """A rule or rule pack is invalid. Raised at load time, never per request."""

    status = 422
    type_slug = "invalid-rule"
    title = "Invalid rule"


class ExpressionError(RuleError):
    """An expression was rejected: syntax, a forbidden construct, a name or a type."""

    def __init__(
        self,
        reason: str,
        *,
        rule_id: str | None = None,
        expression: str = "",
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.reason = reason
        self.rule_id = rule_id
        self.expression = expression
        self.line = line
        self.column = column
        where = ""
        if column is not None:
            where = f" (line {line}, column {column})" if line and line > 1 else f" (column {column})"
        prefix = f"rule {rule_id}: " if rule_id else ""
        super().__init__(f"{prefix}{reason}{where}", rule_id=rule_id, line=line, column=column)


class RuleEvalError(RiskctlError):
    """Base of runtime evaluation problems. Never escapes a rule pack: it becomes an
    ERROR signal for the one rule."""

    type_slug = "rule-eval-error"
    title = "A rule could not be evaluated"


class FeatureUnavailable(RuleEvalError):
    """A rule read a feature whose value is ``None`` (e.g. velocity while Redis is down)."""

    def __init__(self, name: str) -> None:
        # Not RiskctlError.__init__: with Redis down this is built hundreds of times per
        # event, and the base class's keyword plumbing triples the cost.
        detail = f"feature {name!r} is unavailable"
        Exception.__init__(self, detail)
        self.name = name
        self.detail = detail
        self.extra: dict[str, Any] = {"feature": name}


class SignatureError(Exception):
    """Raised by a function's type checker; turned into an :class:`ExpressionError`."""


# -- the typed IR -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    type: FeatureType


@dataclass(frozen=True, slots=True, eq=False)
class Const(Node):
    value: Any


@dataclass(frozen=True, slots=True, eq=False)
class Feature(Node):
    name: str


@dataclass(frozen=True, slots=True, eq=False)
class Neg(Node):
    operand: Node


@dataclass(frozen=True, slots=True, eq=False)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True, eq=False)
class Arith(Node):
    op: str  # + - * /
    left: Node
    right: Node


@dataclass(frozen=True, slots=True, eq=False)
class Compare(Node):
    op: str  # == != < <= > >=  (chains are expanded into ``and``)
    left: Node
    right: Node


@dataclass(frozen=True, slots=True, eq=False)
class BoolOp(Node):
    op: str  # and | or
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True, eq=False)
class InConst(Node):
    """``item in [literal, ...]`` (``not in`` is ``Not(InConst)``)."""

    item: Node
    values: frozenset[Any]


@dataclass(frozen=True, slots=True, eq=False)
class InExpr(Node):
    """``item in container`` where container is a ``list[str]`` or ``str`` expression."""

    item: Node
    container: Node


@dataclass(frozen=True, slots=True, eq=False)
class Call(Node):
    func: FunctionDef
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Coalesce(Node):
    value: Node
    default: Node


@dataclass(frozen=True, slots=True, eq=False)
class Matches(Node):
    subject: Node
    pattern: re.Pattern[str]


_ATOMIC = (Const, Feature, Call, Coalesce, Matches)


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    return repr(value)


def canonical(node: Node) -> str:
    """A deterministic text for ``node``: same meaning and spelling -> same text.

    Whitespace, redundant parentheses, chained-comparison sugar, constant
    sub-expressions and the order of list literals do not show. Used as the key for
    sharing sub-expressions and for the rule pack content hash.
    """

    def p(n: Node) -> str:
        return canonical(n) if isinstance(n, _ATOMIC) else f"({canonical(n)})"

    if isinstance(node, Const):
        return _lit(node.value)
    if isinstance(node, Feature):
        return node.name
    if isinstance(node, Neg):
        return f"-{p(node.operand)}"
    if isinstance(node, Not):
        return f"not {p(node.operand)}"
    if isinstance(node, Arith | Compare):
        return f"{p(node.left)} {node.op} {p(node.right)}"
    if isinstance(node, BoolOp):
        return f" {node.op} ".join(p(o) for o in node.operands)
    if isinstance(node, InConst):
        return f"{p(node.item)} in [{', '.join(sorted(_lit(v) for v in node.values))}]"
    if isinstance(node, InExpr):
        return f"{p(node.item)} in {p(node.container)}"
    if isinstance(node, Call):
        return f"{node.func.name}({', '.join(canonical(a) for a in node.args)})"
    if isinstance(node, Coalesce):
        return f"coalesce({canonical(node.value)}, {canonical(node.default)})"
    if isinstance(node, Matches):
        return f"matches({canonical(node.subject)}, {_lit(node.pattern.pattern)})"
    raise TypeError(f"unknown node {node!r}")  # pragma: no cover - closed set


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Neg | Not):
        return (node.operand,)
    if isinstance(node, Arith | Compare):
        return (node.left, node.right)
    if isinstance(node, BoolOp):
        return node.operands
    if isinstance(node, InConst):
        return (node.item,)
    if isinstance(node, InExpr):
        return (node.item, node.container)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Coalesce):
        return (node.value, node.default)
    if isinstance(node, Matches):
        return (node.subject,)
    return ()


def feature_names(node: Node) -> tuple[str, ...]:
    """Features read by ``node``, in first-seen order, without duplicates."""
    seen: dict[str, None] = {}

    def walk(n: Node) -> None:
        if isinstance(n, Feature):
            seen.setdefault(n.name, None)
        for c in children(n):
            walk(c)

    walk(node)
    return tuple(seen)


# -- functions ----------------------------------------------------------------------------

Checker = Callable[[Sequence[FeatureType]], FeatureType]


@dataclass(frozen=True, slots=True, eq=False)
class FunctionDef:
    """A whitelisted function. ``check`` maps argument types to the result type (or
    raises :class:`SignatureError`); ``impl`` must be pure: same arguments, same result,
    no side effects, safe to call from many threads (results may be constant-folded at
    load time and shared between rules)."""

    name: str
    impl: Callable[..., Any]
    check: Checker
    doc: str = ""


def _numeric_join(types: Sequence[FeatureType]) -> FeatureType:
    return T.INT if all(t is T.INT for t in types) else T.FLOAT


def _accepts(expected: tuple[FeatureType, ...], got: FeatureType) -> bool:
    return got in expected or (got is T.INT and T.FLOAT in expected)


def fixed_signature(params: Sequence[FeatureType | tuple[FeatureType, ...]], returns: FeatureType) -> Checker:
    """A checker for a fixed arity; each parameter is a type or a tuple of accepted types
    (``int`` is accepted where ``float`` is)."""
    allowed = [p if isinstance(p, tuple) else (p,) for p in params]

    def check(args: Sequence[FeatureType]) -> FeatureType:
        if len(args) != len(allowed):
            raise SignatureError(f"takes {len(allowed)} argument(s), got {len(args)}")
        for i, (got, ok) in enumerate(zip(args, allowed, strict=True), start=1):
            if not _accepts(ok, got):
                raise SignatureError(f"argument {i} must be {' or '.join(ok)}, got {got}")
        return returns

    return check


def _check_minmax(args: Sequence[FeatureType]) -> FeatureType:
    if len(args) < 2:
        raise SignatureError(f"takes at least 2 arguments, got {len(args)}")
    for i, a in enumerate(args, start=1):
        if not a.numeric:
            raise SignatureError(f"argument {i} must be a number, got {a}")
    return _numeric_join(args)


def _check_abs(args: Sequence[FeatureType]) -> FeatureType:
    if len(args) != 1 or not args[0].numeric:
        raise SignatureError("takes one number")
    return args[0]


def _check_round(args: Sequence[FeatureType]) -> FeatureType:
    if len(args) not in (1, 2) or not args[0].numeric:
        raise SignatureError("takes a number and optionally a number of digits (int)")
    if len(args) == 2:
        if args[1] is not T.INT:
            raise SignatureError(f"argument 2 (digits) must be int, got {args[1]}")
        return args[0]  # round(float, n) is a float, round(int, n) an int
    return T.INT


def _contains(haystack: str, needle: str) -> bool:
    return needle in haystack


_BUILTINS: tuple[FunctionDef, ...] = (
    FunctionDef("lower", str.lower, fixed_signature([T.STR], T.STR), "lower-case text"),
    FunctionDef("upper", str.upper, fixed_signature([T.STR], T.STR), "upper-case text"),
    FunctionDef(
        "len", len, fixed_signature([(T.STR, T.STR_LIST)], T.INT), "characters of a str, items of a list"
    ),
    FunctionDef(
        "contains",
        _contains,
        fixed_signature([T.STR, T.STR], T.BOOL),
        "contains(text, part): part occurs in text",
    ),
    FunctionDef(
        "startswith", str.startswith, fixed_signature([T.STR, T.STR], T.BOOL), "startswith(text, prefix)"
    ),
    FunctionDef("endswith", str.endswith, fixed_signature([T.STR, T.STR], T.BOOL), "endswith(text, suffix)"),
    FunctionDef("min", min, _check_minmax, "smallest of 2+ numbers"),
    FunctionDef("max", max, _check_minmax, "largest of 2+ numbers"),
    FunctionDef("abs", abs, _check_abs, "absolute value"),
    FunctionDef(
        "round", round, _check_round, "round(x) -> int, round(x, digits); halves round to even like Python"
    ),
)

# Special forms: checked and compiled by the language itself, not through the table.
SPECIAL_FORMS: Mapping[str, str] = {
    "matches": 'matches(text, "regex"): re.search with a literal pattern compiled at load',
    "coalesce": "coalesce(x, default): default when x reads an unavailable feature",
    "in_list": "in_list(value, list): same as `value in list`",
}
_RESERVED_NAMES = frozenset({"true", "false", *SPECIAL_FORMS})


class FunctionRegistry:
    """The functions rules may call. Registration is thread-safe; packs compiled earlier
    keep the definitions they were compiled with."""

    def __init__(self, defs: Iterable[FunctionDef] = ()) -> None:
        self._defs: dict[str, FunctionDef] = {}
        self._lock = threading.Lock()
        for d in defs:
            self.add(d)

    def add(self, fdef: FunctionDef, *, replace: bool = False) -> FunctionDef:
        if not fdef.name.isidentifier() or fdef.name.startswith("_"):
            raise ValueError(f"function name {fdef.name!r} must be a public identifier")
        if fdef.name in _RESERVED_NAMES:
            raise ValueError(f"{fdef.name!r} is reserved by the rule language")
        with self._lock:
            if fdef.name in self._defs and not replace:
                raise ValueError(f"function {fdef.name!r} is already registered")
            self._defs[fdef.name] = fdef
        return fdef

    def register(
        self,
        name: str,
        impl: Callable[..., Any],
        params: Sequence[FeatureType | tuple[FeatureType, ...]],
        returns: FeatureType,
        *,
        doc: str = "",
        replace: bool = False,
    ) -> FunctionDef:
        """Add a typed pure function, e.g. ``register("domain", f, [T.STR], T.STR)``."""
        return self.add(FunctionDef(name, impl, fixed_signature(params, returns), doc), replace=replace)

    def get(self, name: str) -> FunctionDef | None:
        return self._defs.get(name)

    def names(self) -> list[str]:
        return sorted([*self._defs, *SPECIAL_FORMS])

    def copy(self) -> FunctionRegistry:
        return FunctionRegistry(self._defs.values())


BUILTIN_FUNCTIONS: Mapping[str, FunctionDef] = {f.name: f for f in _BUILTINS}
"""The built-in definitions (the fast path recognises them by identity)."""

FUNCTIONS = FunctionRegistry(_BUILTINS)
"""The default registry used when a pack is compiled without an explicit one."""


def register_function(
    name: str,
    impl: Callable[..., Any],
    params: Sequence[FeatureType | tuple[FeatureType, ...]],
    returns: FeatureType,
    *,
    doc: str = "",
    replace: bool = False,
) -> FunctionDef:
    """Register a typed pure function in the default registry (:data:`FUNCTIONS`)."""
    return FUNCTIONS.register(name, impl, params, returns, doc=doc, replace=replace)


# -- closures -----------------------------------------------------------------------------

_ARITH: Mapping[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
COMPARE_OPS: Mapping[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compile_node(node: Node) -> Evaluator:
    """The reference evaluator of ``node``: a tree of closures, no shared state.

    Errors (``FeatureUnavailable``, ``ZeroDivisionError``...) propagate, except where
    ``and``/``or`` absorb them or ``coalesce`` replaces an unavailable feature.
    """
    if isinstance(node, Const):
        value = node.value
        return lambda f: value
    if isinstance(node, Feature):
        name = node.name

        def feature(f: Mapping[str, Any]) -> Any:
            v = f.get(name)
            if v is None:
                raise FeatureUnavailable(name)
            return v

        return feature
    if isinstance(node, Neg):
        inner = compile_node(node.operand)
        return lambda f: -inner(f)
    if isinstance(node, Not):
        inner = compile_node(node.operand)
        return lambda f: not inner(f)
    if isinstance(node, Arith | Compare):
        op = _ARITH[node.op] if isinstance(node, Arith) else COMPARE_OPS[node.op]
        if isinstance(node.left, Feature) and isinstance(node.right, Const | Feature):
            return _feature_op(op, node.left.name, node.right)
        left = compile_node(node.left)
        if isinstance(node.right, Const):  # the common `x >= 3`: one call fewer
            c = node.right.value
            return lambda f: op(left(f), c)
        right = compile_node(node.right)
        return lambda f: op(left(f), right(f))
    if isinstance(node, BoolOp):
        parts = tuple(compile_node(o) for o in node.operands)
        return _and(parts) if node.op == "and" else _or(parts)
    if isinstance(node, InConst):
        item, values = compile_node(node.item), node.values
        return lambda f: item(f) in values
    if isinstance(node, InExpr):
        item, container = compile_node(node.item), compile_node(node.container)
        return lambda f: item(f) in container(f)
    if isinstance(node, Call):
        impl = node.func.impl
        if len(node.args) == 1 and isinstance(node.args[0], Feature):
            name = node.args[0].name

            def call_feature(f: Mapping[str, Any]) -> Any:
                v = f.get(name)
                if v is None:
                    raise FeatureUnavailable(name)
                return impl(v)

            return call_feature
        args = tuple(compile_node(a) for a in node.args)
        if len(args) == 1:
            (a0,) = args
            return lambda f: impl(a0(f))
        if len(args) == 2:
            a0, a1 = args
            return lambda f: impl(a0(f), a1(f))
        return lambda f: impl(*[a(f) for a in args])
    if isinstance(node, Coalesce):
        value, default = compile_node(node.value), compile_node(node.default)

        def coalesce(f: Mapping[str, Any]) -> Any:
            try:
                return value(f)
            except FeatureUnavailable:
                return default(f)

        return coalesce
    if isinstance(node, Matches):
        subject, search = compile_node(node.subject), node.pattern.search
        return lambda f: search(subject(f)) is not None
    raise TypeError(f"unknown node {node!r}")  # pragma: no cover - closed set


def _feature_op(op: Callable[[Any, Any], Any], name: str, right: Const | Feature) -> Evaluator:
    """``feature <op> const`` and ``feature <op> feature`` in one closure: these are
    most rule atoms, and each nested closure call costs ~50 ns."""
    if isinstance(right, Const):
        c = right.value

        def feature_const(f: Mapping[str, Any]) -> Any:
            v = f.get(name)
            if v is None:
                raise FeatureUnavailable(name)
            return op(v, c)

        return feature_const
    other = right.name

    def feature_feature(f: Mapping[str, Any]) -> Any:
        v = f.get(name)
        if v is None:
            raise FeatureUnavailable(name)
        w = f.get(other)
        if w is None:
            raise FeatureUnavailable(other)
        return op(v, w)

    return feature_feature


def _and(parts: tuple[Evaluator, ...]) -> Evaluator:
    def and_(f: Mapping[str, Any]) -> bool:
        err: Exception | None = None
        for part in parts:
            try:
                if not part(f):
                    return False  # a definite False decides, whatever errored before
            except Exception as e:  # any failure is "unknown" (three-valued logic)
                if err is None:
                    err = e
        if err is not None:
            raise err
        return True

    return and_


def _or(parts: tuple[Evaluator, ...]) -> Evaluator:
    def or_(f: Mapping[str, Any]) -> bool:
        err: Exception | None = None
        for part in parts:
            try:
                if part(f):
                    return True
            except Exception as e:
                if err is None:
                    err = e
        if err is not None:
            raise err
        return False

    return or_


# -- DNF, for the rule pack index ---------------------------------------------------------


class Literal(NamedTuple):
    key: str  # canonical text of the atom
    atom: Node  # a bool-typed node that is not and/or/not/constant
    positive: bool


class _TooBig(Exception):
    pass


def to_dnf(node: Node, *, max_clauses: int = 64) -> list[tuple[Literal, ...]] | None:
    """``node`` as an OR of AND-clauses of (possibly negated) atoms, or ``None`` when that
    would take more than ``max_clauses`` clauses.

    Only De Morgan, double negation and distributivity are used -- they hold in the
    three-valued logic of :func:`compile_node` -- and nothing like ``x or not x = true``
    (false when x is unknown), so the DNF has the same value as the rule, errors
    included. An empty list is ``false``; a clause with no literals is ``true``.
    """

    def walk(n: Node, positive: bool) -> list[tuple[Literal, ...]]:
        if isinstance(n, Not):
            return walk(n.operand, not positive)
        if isinstance(n, Const):
            return [()] if bool(n.value) == positive else []
        if isinstance(n, BoolOp):
            conj = (n.op == "and") == positive
            parts = [walk(o, positive) for o in n.operands]
            if not conj:
                out = [c for part in parts for c in part]
            else:
                out = [()]
                for part in parts:
                    out = [a + b for a in out for b in part]
                    if len(out) > max_clauses:
                        raise _TooBig
            if len(out) > max_clauses:
                raise _TooBig
            return out
        return [(Literal(canonical(n), n, positive),)]

    try:
        raw = walk(node, True)
    except _TooBig:
        return None
    clauses: dict[frozenset[tuple[str, bool]], tuple[Literal, ...]] = {}
    for clause in raw:  # x and x == x; duplicate clauses collapse (both hold in 3VL)
        unique: dict[tuple[str, bool], Literal] = {}
        for lit in clause:
            unique.setdefault((lit.key, lit.positive), lit)
        clauses.setdefault(frozenset(unique), tuple(unique.values()))
    return list(clauses.values())


# -- the checker --------------------------------------------------------------------------

_FORBIDDEN: Mapping[type[ast.AST], str] = {
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.Subscript: "subscripting (x[...])",
    ast.Slice: "slicing",
    ast.NamedExpr: "assignment (:=)",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.IfExp: "a conditional expression (x if c else y)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Starred: "unpacking (*x)",
    ast.Dict: "a dict literal",
    ast.Set: "a set literal (use [...] after `in`)",
    ast.List: "a list literal outside `in [...]`",
    ast.Tuple: "a tuple outside `in (...)`",
}
_STATEMENTS: Mapping[type[ast.AST], str] = {
    ast.Import: "import",
    ast.ImportFrom: "import",
    ast.Assign: "assignment",
    ast.AugAssign: "assignment",
    ast.AnnAssign: "assignment",
    ast.Delete: "del",
    ast.FunctionDef: "def",
    ast.ClassDef: "class",
    ast.Global: "global",
}
_CMP_AST: Mapping[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}
_ARITH_AST: Mapping[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}


def _family(t: FeatureType) -> str:
    return "number" if t.numeric else t.value


def _const_type(value: Any) -> FeatureType | None:
    if isinstance(value, bool):
        return T.BOOL
    if isinstance(value, int):
        return T.INT
    if isinstance(value, float):
        return T.FLOAT
    if isinstance(value, str):
        return T.STR
    return None


class _Checker:
    def __init__(
        self,
        text: str,
        schema: FeatureSchema,
        kinds: frozenset[str],
        rule_id: str | None,
        functions: FunctionRegistry,
    ) -> None:
        self.text = text
        self.schema = schema
        self.kinds = kinds
        self.rule_id = rule_id
        self.functions = functions

    # errors ----------------------------------------------------------------------------
    def fail(self, node: ast.AST | None, reason: str) -> NoReturn:
        line = col = None
        if node is not None and hasattr(node, "lineno"):
            # The text is parsed wrapped as "(" + text + "\n)": line 1 is one column off.
            line = int(node.lineno)
            col = int(getattr(node, "col_offset", 0)) + (0 if line == 1 else 1)
        raise ExpressionError(reason, rule_id=self.rule_id, expression=self.text, line=line, column=col)

    def src(self, node: ast.AST) -> str:
        seg = ast.get_source_segment("(" + self.text + "\n)", node)
        return seg if seg is not None else "?"

    # entry -----------------------------------------------------------------------------
    def parse(self) -> ast.expr:
        if len(self.text) > MAX_EXPRESSION_CHARS:
            self.fail(None, f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
        if not self.text.strip():
            self.fail(None, "expression is empty")
        if not _parens_balanced(self.text):
            self.fail(None, "unbalanced parentheses")
        try:
            # Wrapped in parentheses so an expression may span several YAML lines (and
            # a `#` comment ends at the line end instead of swallowing what follows).
            tree = ast.parse("(" + self.text + "\n)", mode="eval")
        except SyntaxError as e:
            self.fail(None, self._syntax_reason(e))
        except (ValueError, RecursionError, MemoryError) as e:
            self.fail(None, f"cannot parse expression: {type(e).__name__}")
        return tree.body

    def _syntax_reason(self, e: SyntaxError) -> str:
        try:
            module = ast.parse(self.text.strip(), mode="exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return f"syntax error: {e.msg}"
        for stmt in module.body:
            if not isinstance(stmt, ast.Expr):
                what = _STATEMENTS.get(type(stmt), type(stmt).__name__.lower())
                return f"statements are not allowed ({what}); a rule is a single condition"
        return f"syntax error: {e.msg}"

    # nodes -----------------------------------------------------------------------------
    def visit(self, node: ast.expr, depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            self.fail(node, f"expression is nested more than {MAX_DEPTH} levels deep")
        d = depth + 1
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name | ast.Attribute):
            return self.name(node)
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            parts = [self.visit(v, d) for v in node.values]
            for v, part in zip(node.values, parts, strict=True):
                if part.type is not T.BOOL:
                    self.fail(v, f"`{op}` needs conditions (bool), but {self.src(v)!r} is {part.type}")
            return _fold_bool(op, parts)
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand, d)
            if isinstance(node.op, ast.Not):
                if operand.type is not T.BOOL:
                    what = self.src(node.operand)
                    self.fail(node, f"`not` needs a condition (bool), but {what!r} is {operand.type}")
                return self.fold(node, Not(T.BOOL, operand))
            if isinstance(node.op, ast.USub | ast.UAdd):
                if not operand.type.numeric:
                    self.fail(node, f"unary minus/plus needs a number, got {operand.type}")
                if isinstance(node.op, ast.UAdd):
                    return operand
                return self.fold(node, Neg(operand.type, operand))
            self.fail(node, "operator `~` is not allowed")
        if isinstance(node, ast.BinOp):
            return self.arith(node, d)
        if isinstance(node, ast.Compare):
            return self.compare(node, d)
        if isinstance(node, ast.Call):
            return self.call(node, d)
        what = _FORBIDDEN.get(type(node), type(node).__name__)
        self.fail(node, f"{what} is not allowed in rules")

    def constant(self, node: ast.Constant) -> Node:
        t = _const_type(node.value)
        if t is None:
            if node.value is None:
                self.fail(node, "None/null is not a value; use coalesce(x, default) for unavailable features")
            self.fail(node, f"{type(node.value).__name__} literals are not allowed")
        return Const(t, node.value)

    def name(self, node: ast.Name | ast.Attribute) -> Node:
        parts: list[str] = []
        cur: ast.expr = node
        while isinstance(cur, ast.Attribute):
            if cur.attr.startswith("_"):
                self.fail(cur, f"access to private or dunder attribute {cur.attr!r} is not allowed")
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            self.fail(node, "attribute access is not allowed (dots only appear inside feature names)")
        if cur.id.startswith("_"):
            self.fail(cur, f"private or dunder name {cur.id!r} is not allowed")
        parts.append(cur.id)
        name = ".".join(reversed(parts))
        if name in ("true", "false"):
            return Const(T.BOOL, name == "true")
        spec = self.schema.get(name)
        if spec is None:
            if name in self.functions.names():
                self.fail(node, f"{name!r} is a function; call it like {name}(...)")
            hint = difflib.get_close_matches(name, list(self.schema), n=1, cutoff=0.6)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            self.fail(node, f"unknown feature {name!r}{suggestion}")
        missing = sorted(k for k in self.kinds if spec.kinds and k not in spec.kinds)
        if missing:
            self.fail(
                node,
                f"feature {name!r} is not available for event kind "
                f"{', '.join(missing)} (only {', '.join(sorted(spec.kinds))})",
            )
        return Feature(spec.type, name)

    def arith(self, node: ast.BinOp, d: int) -> Node:
        op = _ARITH_AST.get(type(node.op))
        if op is None:
            self.fail(node, f"operator {type(node.op).__name__} is not allowed; use + - * /")
        left, right = self.visit(node.left, d), self.visit(node.right, d)
        if not (left.type.numeric and right.type.numeric):
            text = T.STR in (left.type, right.type)
            extra = " (text cannot be added; use contains()/lower()...)" if text else ""
            self.fail(node, f"arithmetic `{op}` needs numbers, got {left.type} {op} {right.type}{extra}")
        t = T.FLOAT if op == "/" else _numeric_join([left.type, right.type])
        return self.fold(node, Arith(t, op, left, right))

    def compare(self, node: ast.Compare, d: int) -> Node:
        left_ast: ast.expr = node.left
        left = self.visit(node.left, d)
        pairs: list[Node] = []
        last = len(node.ops) - 1
        for i, (op_ast, right_ast) in enumerate(zip(node.ops, node.comparators, strict=True)):
            if isinstance(op_ast, ast.Is | ast.IsNot):
                self.fail(node, "`is` is not allowed; use == or !=")
            literal = isinstance(right_ast, ast.List | ast.Tuple)
            if literal and not isinstance(op_ast, ast.In | ast.NotIn):
                self.fail(right_ast, "a list literal may only follow `in` / `not in`")
            if literal and i != last:
                self.fail(right_ast, "a list literal cannot be compared further")
            negate = isinstance(op_ast, ast.NotIn)
            if isinstance(right_ast, ast.List | ast.Tuple):  # only after in / not in, last
                test = self.in_literal(node, left, left_ast, right_ast, d)
                pairs.append(self.fold(node, Not(T.BOOL, test)) if negate else test)
                continue
            right = self.visit(right_ast, d)
            if isinstance(op_ast, ast.In | ast.NotIn):
                test = self.in_expr(node, left, left_ast, right, right_ast)
                pairs.append(self.fold(node, Not(T.BOOL, test)) if negate else test)
            else:
                op = _CMP_AST[type(op_ast)]
                self.check_comparable(node, op, left, right)
                pairs.append(self.fold(node, Compare(T.BOOL, op, left, right)))
            left, left_ast = right, right_ast
        # a < b < c  ==  a < b and b < c (b is pure, evaluating it twice is harmless)
        return pairs[0] if len(pairs) == 1 else _fold_bool("and", pairs)

    def check_comparable(self, node: ast.AST, op: str, left: Node, right: Node) -> None:
        lt, rt = left.type, right.type
        if op in ("==", "!="):
            if (lt.numeric and rt.numeric) or (lt is rt and lt is not T.STR_LIST):
                return
            self.fail(node, f"cannot compare {lt} {op} {rt}")
        if not (lt.numeric and rt.numeric):
            self.fail(node, f"`{op}` needs numbers, got {lt} {op} {rt}")

    def in_literal(
        self, node: ast.AST, item: Node, item_ast: ast.expr, list_ast: ast.List | ast.Tuple, d: int
    ) -> Node:
        if item.type is T.STR_LIST:
            self.fail(item_ast, "a list cannot be the left side of `in`")
        values: list[Any] = []
        for elt in list_ast.elts:
            if isinstance(elt, ast.Starred):
                self.fail(elt, "unpacking (*x) is not allowed in rules")
            v = self.visit(elt, d)
            if not isinstance(v, Const):
                self.fail(elt, "list literal items must be constants (use `or` for features)")
            if _family(v.type) != _family(item.type):
                what = self.src(elt)
                self.fail(elt, f"list item {what} is {v.type} but the left side of `in` is {item.type}")
            values.append(v.value)
        return self.fold(node, InConst(T.BOOL, item, frozenset(values)))

    def in_expr(
        self, node: ast.AST, item: Node, item_ast: ast.expr, container: Node, container_ast: ast.expr
    ) -> Node:
        if container.type not in (T.STR_LIST, T.STR):
            self.fail(container_ast, f"the right side of `in` must be a list or text, got {container.type}")
        if item.type is not T.STR:
            self.fail(item_ast, f"the left side of `in` ({container.type}) must be str, got {item.type}")
        return self.fold(node, InExpr(T.BOOL, item, container))

    def call(self, node: ast.Call, d: int) -> Node:
        func = node.func
        if isinstance(func, ast.Attribute):
            self.name_or_attr_guard(func)
            dotted = ast.unparse(func)
            if dotted in self.schema:
                self.fail(node, f"feature {dotted!r} cannot be called")
            self.fail(node, f"method calls are not allowed; write {func.attr}(x) instead of x.{func.attr}()")
        if not isinstance(func, ast.Name):
            self.fail(node, "only whitelisted functions can be called")
        name = func.id
        if name.startswith("_"):
            self.fail(func, f"calling private or dunder name {name!r} is not allowed")
        if node.keywords:
            self.fail(node, f"{name}() takes no keyword arguments")
        for a in node.args:
            if isinstance(a, ast.Starred):
                self.fail(a, "unpacking (*x) is not allowed in rules")
        if name == "matches":
            return self.matches(node, d)
        if name == "in_list":
            if len(node.args) != 2:
                self.fail(node, "in_list(value, list) takes 2 arguments")
            item = self.visit(node.args[0], d)
            list_ast = node.args[1]
            if isinstance(list_ast, ast.List | ast.Tuple):
                return self.in_literal(node, item, node.args[0], list_ast, d)
            container = self.visit(list_ast, d)
            return self.in_expr(node, item, node.args[0], container, list_ast)
        if name == "coalesce":
            return self.coalesce(node, d)
        fdef = self.functions.get(name)
        if fdef is None:
            known = self.functions.names()
            hint = difflib.get_close_matches(name, known, n=1)
            suggestion = f"; did you mean {hint[0]}()?" if hint else ""
            self.fail(node, f"function {name!r} is not allowed{suggestion} (allowed: {', '.join(known)})")
        args = tuple(self.visit(a, d) for a in node.args)
        try:
            t = fdef.check([a.type for a in args])
        except SignatureError as e:
            self.fail(node, f"{name}() {e}")
        return self.fold(node, Call(t, fdef, args))

    def name_or_attr_guard(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            self.fail(node, f"access to private or dunder attribute {node.attr!r} is not allowed")

    def matches(self, node: ast.Call, d: int) -> Node:
        if len(node.args) != 2:
            self.fail(node, 'matches(text, "regex") takes 2 arguments')
        subject = self.visit(node.args[0], d)
        if subject.type is not T.STR:
            self.fail(node.args[0], f"matches() needs text as argument 1, got {subject.type}")
        pat_ast = node.args[1]
        if not (isinstance(pat_ast, ast.Constant) and isinstance(pat_ast.value, str)):
            self.fail(pat_ast, "matches() needs a literal regex string as argument 2")
        try:
            pattern = re.compile(pat_ast.value)
        except (re.error, RecursionError, OverflowError) as e:
            self.fail(pat_ast, f"invalid regex {pat_ast.value!r}: {e}")
        return self.fold(node, Matches(T.BOOL, subject, pattern))

    def coalesce(self, node: ast.Call, d: int) -> Node:
        if len(node.args) != 2:
            self.fail(node, "coalesce(x, default) takes 2 arguments")
        value, default = self.visit(node.args[0], d), self.visit(node.args[1], d)
        if value.type.numeric and default.type.numeric:
            t = _numeric_join([value.type, default.type])
        elif value.type is default.type:
            t = value.type
        else:
            self.fail(node, f"coalesce() default is {default.type} but the value is {value.type}")
        if isinstance(value, Const):
            return value
        return Coalesce(t, value, default)

    # constant folding ------------------------------------------------------------------
    def fold(self, node: ast.AST, n: Node) -> Node:
        """Evaluate a node whose inputs are all constants now, once (pure functions)."""
        if not all(isinstance(c, Const) for c in children(n)) or isinstance(n, Feature):
            return n
        try:
            value = compile_node(n)({})
        except Exception as e:
            self.fail(node, f"constant expression fails: {type(e).__name__}: {e}")
        t = n.type
        if t.numeric:  # int/int arithmetic may stay int; round() may return int
            t = T.INT if isinstance(value, int) and not isinstance(value, bool) else T.FLOAT
        return Const(t, value)


def _fold_bool(op: str, parts: list[Node]) -> Node:
    """``x and true`` -> ``x``; ``x and false`` -> ``false`` (also in 3-valued logic);
    nested ``and`` inside ``and`` is flattened."""
    absorbing = op == "or"  # `or` is decided by true, `and` by false
    flat: list[Node] = []
    for p in parts:
        if isinstance(p, Const):
            if bool(p.value) == absorbing:
                return Const(T.BOOL, absorbing)
            continue
        if isinstance(p, BoolOp) and p.op == op:
            flat.extend(p.operands)
        else:
            flat.append(p)
    if not flat:
        return Const(T.BOOL, not absorbing)
    return flat[0] if len(flat) == 1 else BoolOp(T.BOOL, op, tuple(flat))


def _parens_balanced(text: str) -> bool:
    """Refuse ``a) or (b`` -- it would otherwise parse once wrapped in parentheses."""
    depth = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
                if depth < 0:
                    return False
    except (tokenize.TokenError, SyntaxError):
        return True  # ast.parse reports a precise syntax error
    return True


# -- public entry point -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class CompiledExpression:
    """A checked expression: its IR, canonical text, features read and evaluator."""

    text: str
    node: Node
    canonical: str
    features: tuple[str, ...]
    evaluate: Evaluator

    @property
    def type(self) -> FeatureType:
        return self.node.type

    @property
    def is_constant(self) -> bool:
        return isinstance(self.node, Const)

    def __call__(self, features: Mapping[str, Any]) -> Any:
        return self.evaluate(features)


def compile_expression(
    text: str,
    schema: FeatureSchema,
    *,
    kinds: Iterable[str] = (),
    rule_id: str | None = None,
    functions: FunctionRegistry | None = None,
    require_bool: bool = True,
) -> CompiledExpression:
    """Parse, type-check and compile ``text`` against ``schema``.

    ``kinds``: event kinds the expression will run for; every feature read must be
    declared for each of them. Raises :class:`ExpressionError` (with ``rule_id``).
    """
    checker = _Checker(text, schema, frozenset(kinds), rule_id, functions or FUNCTIONS)
    tree = checker.parse()
    try:
        node = checker.visit(tree)
    except RecursionError:
        checker.fail(None, "expression is nested too deeply")
    if require_bool and node.type is not T.BOOL:
        checker.fail(tree, f"a rule must be a condition (bool), but this expression is {node.type}")
    return CompiledExpression(text, node, canonical(node), feature_names(node), compile_node(node))
