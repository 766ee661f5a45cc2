"""The rule expression language: what is rejected at load, and what accepted rules mean."""

from __future__ import annotations

import math
from typing import Any

import pytest

from riskctl.errors import RiskctlError
from riskctl.expressions import (
    FUNCTIONS,
    ExpressionError,
    FeatureUnavailable,
    RuleError,
    compile_expression,
    to_dnf,
)
from riskctl.features import FeatureType as T

from .conftest import SCHEMA


def compile_order(text: str, **kw: Any) -> Any:
    return compile_expression(text, SCHEMA, kinds={"order"}, rule_id="ORD-9", **kw)


# -- rejected at load ---------------------------------------------------------------------

REJECTED = [
    # names
    (
        "velocity.buyer_shop.order_1h >= 3",
        "unknown feature 'velocity.buyer_shop.order_1h'; did you mean 'velocity.buyer_shop.orders_1h'?",
    ),
    ("order.amout > 3", "did you mean 'order.amount'?"),
    ("review.text == 'x'", "feature 'review.text' is not available for event kind order"),
    ("order.amount.real > 1", "unknown feature 'order.amount.real'"),
    ("lower > 1", "'lower' is a function"),
    # types
    ("order.currency == 3", "cannot compare str == int"),
    ("order.amount > '10'", "`>` needs numbers, got float > str"),
    ("order.currency < 'EUR'", "`<` needs numbers"),
    ("order.has_coupon and 3", "`and` needs conditions (bool), but '3' is int"),
    ("order.amount or order.has_coupon", "`or` needs conditions (bool)"),
    ("not order.amount", "`not` needs a condition"),
    ("order.currency + 'x' == 'y'", "arithmetic `+` needs numbers, got str + str"),
    ("-order.currency == 'a'", "unary minus/plus needs a number"),
    ("order.amount * 2", "a rule must be a condition (bool), but this expression is float"),
    ("order.currency", "must be a condition (bool), but this expression is str"),
    ("order.amount in ['a', 'b']", "list item 'a' is str but the left side of `in` is float"),
    ("order.amount in lists.block.payment", "the left side of `in` (list[str]) must be str"),
    ("order.currency in order.amount", "the right side of `in` must be a list or text"),
    ("lists.block.payment in ['a']", "a list cannot be the left side of `in`"),
    ("lists.block.payment == lists.block.payment", "cannot compare list[str] == list[str]"),
    ("order.currency in [order.currency]", "list literal items must be constants"),
    ("coalesce(order.amount, 'x') > 1", "coalesce() default is str but the value is float"),
    # functions
    ("matches(order.amount, 'x')", "matches() needs text as argument 1, got float"),
    ("matches(order.currency, '(')", "invalid regex '('"),
    ("matches(order.currency, order.currency)", "matches() needs a literal regex string"),
    ("lower(order.currency, 1) == 'a'", "lower() takes 1 argument(s), got 2"),
    ("contains(order.amount, 'a')", "contains() argument 1 must be str, got float"),
    ("len(order.amount) > 1", "len() argument 1 must be str or list[str], got float"),
    ("max(order.amount) > 1", "max() takes at least 2 arguments"),
    ("round(order.amount, 1.5) > 1", "digits) must be int"),
    ("lower(x=order.currency) == 'a'", "takes no keyword arguments"),
    ("eval('1')", "function 'eval' is not allowed"),
    ("exec('1')", "function 'exec' is not allowed"),
    ("open('/etc/passwd') == 1", "function 'open' is not allowed"),
    ("getattr(order.currency, 'upper') == 'A'", "function 'getattr' is not allowed"),
    ("any(x for x in lists.block.payment)", "function 'any' is not allowed"),
    ("order.currency.upper() == 'A'", "method calls are not allowed; write upper(x)"),
    ("(order.amount)(1)", "feature 'order.amount' cannot be called"),
    ("(order.amount > 1)(1)", "only whitelisted functions can be called"),
    # escapes
    ("().__class__", "access to private or dunder attribute '__class__'"),
    ("().__class__.__bases__[0].__subclasses__()", "private or dunder attribute"),
    ("order.currency.__class__ == 1", "access to private or dunder attribute '__class__'"),
    ("order._secret > 1", "access to private or dunder attribute '_secret'"),
    ("__builtins__ == 1", "private or dunder name '__builtins__'"),
    ("__import__('os').system('id')", "method calls are not allowed"),
    ("__import__('os')", "calling private or dunder name '__import__'"),
    ("'x'.join([]) == ''", "method calls are not allowed"),
    ("import os", "statements are not allowed (import)"),
    ("from os import system", "statements are not allowed (import)"),
    ("x = 1", "statements are not allowed (assignment)"),
    ("lambda: True", "lambda is not allowed"),
    ("(lambda: True)()", "only whitelisted functions can be called"),
    ("[x for x in lists.block.payment] == []", "comprehension is not allowed"),
    ("{x for x in lists.block.payment} == 1", "comprehension is not allowed"),
    ("lists.block.payment[0] == 'a'", "subscripting (x[...]) is not allowed"),
    ("(x := 1) > 0", "assignment (:=) is not allowed"),
    ("f'{order.currency}' == 'a'", "f-string is not allowed"),
    ("1 if order.has_coupon else 2", "conditional expression"),
    ("{'a': 1} == 1", "dict literal is not allowed"),
    ("{'a'} == 1", "a set literal (use [...] after `in`) is not allowed"),
    ("[1, 2] == 1", "a list literal outside `in [...]` is not allowed"),
    ("order.quantity == [1, 2]", "a list literal may only follow `in`"),
    ("order.currency in ['a'] == true", "a list literal cannot be compared further"),
    ("len(*lists.block.payment) > 1", "unpacking (*x) is not allowed"),
    ("order.currency is None", "`is` is not allowed"),
    ("order.amount > None", "None/null is not a value"),
    ("order.amount ** 2 > 1", "operator Pow is not allowed"),
    ("order.amount % 2 > 1", "operator Mod is not allowed"),
    ("~order.quantity > 1", "operator `~` is not allowed"),
    ("b'x' == 1", "bytes literals are not allowed"),
    ("1j == 1", "complex literals are not allowed"),
    # syntax and shape
    ("order.amount >", "syntax error"),
    ("order.amount > 1) or (order.amount < 0", "unbalanced parentheses"),
    ("", "expression is empty"),
    ("   ", "expression is empty"),
    ("1 / 0 > 0", "constant expression fails: ZeroDivisionError"),
    ("not " * 80 + "order.has_coupon", "nested more than 64 levels"),
    ("order.amount > 1 and " * 3000 + "true", "longer than 10000 characters"),
]


@pytest.mark.parametrize(("text", "reason"), REJECTED)
def test_rejected_with_rule_id_and_reason(text: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_order(text)
    message = str(info.value)
    assert message.startswith("rule ORD-9: "), message
    assert reason in message, message
    assert info.value.rule_id == "ORD-9"


def test_errors_belong_to_the_riskctl_hierarchy() -> None:
    assert issubclass(ExpressionError, RuleError)
    assert issubclass(RuleError, RiskctlError)
    assert issubclass(FeatureUnavailable, RiskctlError)


def test_error_reports_the_column() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_order("order.amount > 3 and order.amout > 1")
    assert info.value.column == 22
    assert "(column 22)" in str(info.value)


def test_multiline_expressions_with_comments() -> None:
    text = """velocity.buyer_shop.orders_1h >= 3   # a burst at one shop
              and account_age_minutes < 60      # from a new account"""
    assert (
        compile_order(text).canonical
        == compile_order("velocity.buyer_shop.orders_1h >= 3 and account_age_minutes < 60").canonical
    )
    with pytest.raises(ExpressionError) as info:
        compile_order("order.amount > 3\nand order.amout > 1")
    assert "(line 2, column 5)" in str(info.value)


# -- meaning ------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "velocity.buyer_shop.orders_1h": 4,
    "velocity.device.buyers_24h": None,  # unavailable
    "account_age_minutes": 30.0,
    "order.amount": 120.0,
    "order.quantity": 3,
    "order.currency": "EUR",
    "order.has_coupon": False,
    "payment.fingerprint": "fp1",
    "lists.block.payment": ["fp1", "fp9"],
    "detector.orders_iforest.score": 0.93,
    "ip_is_v6": True,
    "hour_of_day": 3,
}

SEMANTICS: list[tuple[str, Any]] = [
    ("velocity.buyer_shop.orders_1h >= 3 and account_age_minutes < 60", True),
    ("velocity.buyer_shop.orders_1h >= 5 and account_age_minutes < 60", False),
    ("velocity.buyer_shop.orders_1h >= 5 or account_age_minutes < 60", True),
    ("not order.has_coupon", True),
    ("not (order.has_coupon or ip_is_v6)", False),
    ("ip_is_v6 == true and ip_is_v6 != False", True),
    ("3 <= velocity.buyer_shop.orders_1h", True),
    # chained comparisons
    ("1 <= hour_of_day < 4", True),
    ("1 <= hour_of_day < 3", False),
    ("0 < order.quantity < 5 < order.amount", True),
    ("0 < order.quantity < 2 < order.amount", False),
    # membership
    ("payment.fingerprint in lists.block.payment", True),
    ("payment.fingerprint not in lists.block.payment", False),
    ("in_list(payment.fingerprint, lists.block.payment)", True),
    ("in_list(order.currency, ['USD', 'GBP'])", False),
    ("order.currency in ['EUR', 'USD']", True),
    ("order.currency not in ('EUR',)", False),
    ("order.quantity in [1, 2, 3.0]", True),
    ("order.quantity in []", False),
    ("'fp' in payment.fingerprint", True),
    ("'fp9' in lists.block.payment", True),
    # functions
    ("contains(lower(upper(order.currency)), 'eu')", True),
    ("startswith(order.currency, 'E') and endswith(order.currency, 'R')", True),
    ("matches(order.currency, '^E.R$')", True),
    ("matches(order.currency, '(?i)^eur$')", True),
    ("matches(order.currency, 'usd')", False),
    ("len(order.currency) == 3 and len(lists.block.payment) == 2", True),
    ("max(order.quantity, 10) == 10 and min(order.amount, 5) == 5", True),
    ("max(order.quantity, 1, 2.5) == 3", True),
    ("abs(-order.amount) == 120", True),
    ("round(order.amount / 7) == 17 and round(2.5) == 2 and round(order.amount / 7, 1) == 17.1", True),
    # arithmetic
    ("order.amount / order.quantity == 40", True),
    ("order.amount - 20 * 5 == 20", True),
    ("-order.quantity + 1 == -2", True),
    ("detector.orders_iforest.score > 0.9", True),
    # unavailable features and three-valued and/or
    ("velocity.device.buyers_24h >= 5", FeatureUnavailable),
    ("velocity.device.buyers_24h >= 5 and order.amount > 1000", False),
    ("order.amount > 1000 and velocity.device.buyers_24h >= 5", False),
    ("order.has_coupon and velocity.device.buyers_24h >= 5", False),
    ("velocity.device.buyers_24h >= 5 or order.amount > 100", True),
    ("order.amount > 100 or velocity.device.buyers_24h >= 5", True),
    ("velocity.device.buyers_24h >= 5 and order.amount > 100", FeatureUnavailable),
    ("velocity.device.buyers_24h >= 5 or order.amount > 1000", FeatureUnavailable),
    ("not (velocity.device.buyers_24h >= 5)", FeatureUnavailable),
    ("coalesce(velocity.device.buyers_24h, 0) >= 5", False),
    ("coalesce(velocity.device.buyers_24h, 7) >= 5", True),
    ("coalesce(velocity.device.buyers_24h + 1, 0) == 0", True),
    ("coalesce(velocity.buyer_shop.orders_1h, 0) == 4", True),
    # other runtime errors
    ("order.amount / (order.quantity - 3) > 1", ZeroDivisionError),
    ("order.amount / (order.quantity - 3) > 1 and order.quantity > 5", False),
]


@pytest.mark.parametrize(("text", "expected"), SEMANTICS)
def test_semantics(text: str, expected: Any) -> None:
    expr = compile_order(text)
    if isinstance(expected, type):
        with pytest.raises(expected):
            expr.evaluate(BASE)
    else:
        assert expr.evaluate(BASE) is expected


def test_missing_key_is_unavailable() -> None:
    features = {k: v for k, v in BASE.items() if k != "order.amount"}
    with pytest.raises(FeatureUnavailable) as info:
        compile_order("order.amount > 1").evaluate(features)
    assert info.value.name == "order.amount"
    assert "order.amount" in str(info.value)


def test_first_unknown_operand_is_the_reason() -> None:
    features = {**BASE, "order.amount": None}
    expr = compile_order("order.amount > 1 and velocity.device.buyers_24h > 1")
    with pytest.raises(FeatureUnavailable) as info:
        expr.evaluate(features)
    assert info.value.name == "order.amount"


def test_short_circuit_does_not_evaluate_the_rest() -> None:
    calls: list[str] = []

    def probe(x: str) -> bool:
        calls.append(x)
        return True

    registry = FUNCTIONS.copy()
    registry.register("probe", probe, [T.STR], T.BOOL)
    expr = compile_expression("order.has_coupon and probe(order.currency)", SCHEMA, functions=registry)
    assert expr.evaluate(BASE) is False
    assert calls == []
    expr = compile_expression("ip_is_v6 or probe(order.currency)", SCHEMA, functions=registry)
    assert expr.evaluate(BASE) is True
    assert calls == []


def test_nan_and_inf_compare_like_python() -> None:
    expr = compile_order("detector.orders_iforest.score > 0.5 or detector.orders_iforest.score <= 0.5")
    assert expr.evaluate({**BASE, "detector.orders_iforest.score": math.nan}) is False
    assert expr.evaluate({**BASE, "detector.orders_iforest.score": math.inf}) is True


# -- canonical form, constants, DNF -------------------------------------------------------


def test_canonical_form_ignores_spelling_but_not_meaning() -> None:
    a = compile_order("velocity.buyer_shop.orders_1h>=3 and (account_age_minutes<60)")
    b = compile_order("(velocity.buyer_shop.orders_1h >= 3)  and  account_age_minutes < 60")
    c = compile_order("velocity.buyer_shop.orders_1h > 3 and account_age_minutes < 60")
    assert a.canonical == b.canonical != c.canonical
    assert (
        compile_order("order.currency in ['USD', 'EUR']").canonical
        == compile_order('order.currency in ["EUR", "USD"]').canonical
    )


def test_constants_are_folded_once() -> None:
    expr = compile_order("order.amount > 60 * 24 and lower('ABC') == 'abc'")
    assert expr.canonical == "order.amount > 1440"
    assert compile_order("1 < 2").is_constant
    assert compile_order("order.has_coupon or true").canonical == "true"
    assert compile_order("order.has_coupon and true").canonical == "order.has_coupon"


def test_features_read_in_order() -> None:
    expr = compile_order(
        "order.amount > 1 and (payment.fingerprint in lists.block.payment or order.amount < 0)"
    )
    assert expr.features == ("order.amount", "payment.fingerprint", "lists.block.payment")


def test_dnf() -> None:
    expr = compile_order("order.amount > 1 and not (order.has_coupon or ip_is_v6)")
    (clause,) = to_dnf(expr.node) or []
    assert [(lit.key, lit.positive) for lit in clause] == [
        ("order.amount > 1", True),
        ("order.has_coupon", False),
        ("ip_is_v6", False),
    ]
    expr = compile_order("(order.amount > 1 or ip_is_v6) and (order.quantity > 1 or hour_of_day < 3)")
    assert len(to_dnf(expr.node) or []) == 4
    assert to_dnf(expr.node, max_clauses=3) is None


# -- the function table -------------------------------------------------------------------


def test_registered_functions_are_typed_and_callable() -> None:
    registry = FUNCTIONS.copy()
    registry.register("domain", lambda s: s.rsplit("@", 1)[-1], [T.STR], T.STR, doc="the part after @")
    features = {**BASE, "payment.fingerprint": "x@example.com"}
    expr = compile_expression("domain(payment.fingerprint) == 'example.com'", SCHEMA, functions=registry)
    assert expr.evaluate(features) is True
    with pytest.raises(ExpressionError, match="domain\\(\\) argument 1 must be str, got float"):
        compile_expression("domain(order.amount) == 'x'", SCHEMA, functions=registry)
    with pytest.raises(ExpressionError, match="function 'domain' is not allowed"):
        compile_expression("domain(payment.fingerprint) == 'x'", SCHEMA)  # not in the default table


def test_registry_guards_names() -> None:
    registry = FUNCTIONS.copy()
    for bad in ("matches", "coalesce", "in_list", "true", "_private", "not an identifier"):
        with pytest.raises(ValueError):
            registry.register(bad, str, [T.STR], T.STR)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("lower", str.lower, [T.STR], T.STR)
    registry.register("lower", str.casefold, [T.STR], T.STR, replace=True)
    assert FUNCTIONS.get("lower") is not registry.get("lower")


def test_int_widens_to_float_arguments() -> None:
    registry = FUNCTIONS.copy()
    registry.register("half", lambda x: x / 2, [T.FLOAT], T.FLOAT)
    expr = compile_expression("half(order.quantity) == 1.5", SCHEMA, functions=registry)
    assert expr.evaluate(BASE) is True
