"""Rule evaluation cost per event with 10, 100 and 1,000 rules of one kind.

    python bench/bench_rules.py [--events 2000] [--repeat 5] [--seed 7]

A synthetic schema of ~200 features (velocity counters, amounts, detector scores, text,
flags, lists) and generated rules of realistic shapes: ~80% conjunctions of 1-3
comparisons (``velocity.x.y_1h >= k and account_age_minutes < m``, sometimes with an
equality on a text feature or a flag), ~20% general (list membership, contains(lower()),
regexes, len(), ratios, or-rules, coalesce). Events draw realistic values: counters are
mostly 0-2, so most rules do not hit.

Prints the median cost per event of ``RulePack.evaluate`` (fast path) and of
``evaluate_reference`` (each rule's closure alone), the fixed cost, and the marginal cost
per extra rule, (t1000 - t10) / 990, against the 0.05 µs target. Not a test.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from riskctl.features import FeatureSchema, FeatureSpec, FeatureType
from riskctl.rulepack import RulePack, build_pack

T = FeatureType
TARGET_US = 0.05

ENTITIES = ["buyer", "device", "card", "shop", "buyer_shop", "ip24", "address", "email_domain"]
METRICS = ["orders", "amount", "buyers", "cards", "devices", "failed_payments"]
WINDOWS = ["1h", "24h", "7d"]
TEXT = [
    "order.currency",
    "order.payment_method",
    "buyer.email_domain",
    "shipping.country",
    "shipping.city",
    "device.os",
    "device.browser",
    "payment.fingerprint",
    "payment.bin_country",
    "ip.country",
    "buyer.name",
    "shipping.address_line",
    "order.note",
    "buyer.email",
    "device.id",
    "coupon.code",
]
FLAGS = [
    "order.has_coupon",
    "ip_is_v6",
    "buyer.email_verified",
    "device.is_emulator",
    "payment.is_prepaid",
    "shipping.is_po_box",
    "buyer.phone_verified",
    "order.is_gift",
    "ip.is_datacenter",
    "ip.is_tor",
    "device.is_new",
    "buyer.has_avatar",
]
LISTS = [
    "lists.block.payment",
    "lists.block.device",
    "lists.watch.email_domain",
    "lists.block.ip_country",
    "lists.watch.city",
]
DETECTORS = [
    f"detector.{d}.score"
    for d in (
        "orders_iforest",
        "orders_lof",
        "graph_ring",
        "text_dup",
        "price_outlier",
        "coupon_abuse",
        "session_bot",
        "card_testing",
    )
]
NUMERIC_MISC = [
    "order.amount",
    "order.quantity",
    "order.item_count",
    "order.max_unit_price",
    "account_age_minutes",
    "hour_of_day",
    "shipping.distance_km",
    "buyer.lifetime_orders",
    "buyer.refund_rate",
    "shop.rating",
]
VOCAB = {
    "order.currency": ["EUR", "USD", "GBP", "PLN", "CHF"],
    "order.payment_method": ["card", "paypal", "sepa", "klarna", "crypto", "gift_card"],
    "buyer.email_domain": ["gmail.com", "yahoo.com", "mailinator.com", "proton.me", "web.de"],
    "shipping.country": ["DE", "FR", "NL", "PL", "US", "NG", "RU"],
    "ip.country": ["DE", "FR", "NL", "PL", "US", "NG", "RU", "VN"],
    "payment.bin_country": ["DE", "FR", "NL", "PL", "US", "NG", "BR"],
    "device.os": ["ios", "android", "windows", "macos", "linux"],
    "device.browser": ["safari", "chrome", "firefox", "headless-chrome", "edge"],
}
WORDS = [
    "gift",
    "urgent",
    "free",
    "crypto",
    "wire",
    "test",
    "asap",
    "reseller",
    "bulk",
    "fast",
    "please",
    "cheap",
    "replica",
    "voucher",
    "transfer",
]


def build_schema() -> FeatureSchema:
    specs = [FeatureSpec(f"velocity.{e}.{m}_{w}", T.INT) for e in ENTITIES for m in METRICS for w in WINDOWS]
    specs += [FeatureSpec(n, T.FLOAT) for n in NUMERIC_MISC + DETECTORS]
    specs += [FeatureSpec(n, T.STR) for n in TEXT]
    specs += [FeatureSpec(n, T.BOOL) for n in FLAGS]
    specs += [FeatureSpec(n, T.STR_LIST) for n in LISTS]
    return FeatureSchema(specs)


class Gen:
    """Rules an analyst might write. Each simple rule has one *selective* condition (a
    velocity burst, a high detector score, a big amount) and maybe looser extra ones;
    about half of the general rules are gated by such a condition too."""

    def __init__(self, schema: FeatureSchema, rnd: random.Random) -> None:
        self.rnd = rnd
        self.velocity = [n for n in schema if n.startswith("velocity.")]

    def selective(self) -> str:
        r = self.rnd
        pick = r.random()
        if pick < 0.6:
            return f"{r.choice(self.velocity)} >= {r.choice([3, 4, 5, 5, 8, 10, 15, 20, 30])}"
        if pick < 0.8:
            return f"{r.choice(DETECTORS)} > {r.choice([0.8, 0.9, 0.95, 0.99])}"
        if pick < 0.9:
            return f"order.amount >= {r.choice([1000, 2000, 5000])}"
        return f"order.quantity >= {r.choice([20, 50, 100])}"

    def loose(self) -> str:
        r = self.rnd
        pick = r.randrange(8)
        if pick == 0:
            return f"account_age_minutes < {r.choice([10, 30, 60, 120, 1440])}"
        if pick == 1:
            return f"order.amount > {r.choice([50, 100, 250, 500])}"
        if pick == 2:
            return f"{r.choice([0, 1, 2])} <= hour_of_day <= {r.choice([4, 5, 6])}"
        if pick == 3:
            return f"buyer.lifetime_orders < {r.choice([1, 2, 3])}"
        if pick == 4:
            return f"{r.choice(self.velocity)} >= 2"
        if pick == 5:
            name = r.choice(list(VOCAB))
            return f'{name} == "{r.choice(VOCAB[name])}"'
        if pick == 6:
            return r.choice(["", "not "]) + r.choice(FLAGS)
        return f"shop.rating < {r.choice([2.5, 3.0, 3.5])}"

    def simple(self) -> str:
        parts = [self.selective()] + [self.loose() for _ in range(self.rnd.choice([0, 1, 1, 2]))]
        self.rnd.shuffle(parts)
        return " and ".join(parts)

    def gated(self, condition: str, p: float = 0.5) -> str:
        return f"{condition} and {self.selective()}" if self.rnd.random() < p else condition

    def general(self) -> str:
        r = self.rnd
        shape = r.randrange(9)
        if shape == 0:  # block lists: standalone
            return r.choice(
                [
                    "payment.fingerprint in lists.block.payment",
                    "device.id in lists.block.device",
                    "buyer.email_domain in lists.watch.email_domain and order.amount > 200",
                ]
            )
        if shape == 1:
            text = r.choice(["order.note", "buyer.name", "shipping.address_line"])
            return self.gated(f'contains(lower({text}), "{r.choice(WORDS)}")')
        if shape == 2:
            pattern = r.choice(["^[a-z]+[0-9]{4,}@", "(?i)test|temp", "[.]ru$", "^.{1,3}@"])
            return self.gated(f'matches(buyer.email, "{pattern}")')
        if shape == 3:
            return self.gated(
                r.choice(["len(order.note) > 120", "len(buyer.name) < 3", "len(shipping.address_line) < 8"]),
                0.7,
            )
        if shape == 4:  # burstiness of one entity
            e = r.choice(["buyer", "device", "card"])
            return self.gated(
                f"velocity.{e}.orders_1h / max(velocity.{e}.orders_24h, 1) > {r.choice([0.5, 0.8, 0.9])}"
            )
        if shape == 5:
            return f"{self.selective()} or {self.selective()}"
        if shape == 6:
            return f"coalesce({r.choice(self.velocity)}, 0) >= {r.choice([5, 10])} and {self.loose()}"
        if shape == 7:
            name = r.choice(list(VOCAB))
            a, b = r.sample(VOCAB[name], 2)
            return f'{name} in ["{a}", "{b}"] and {self.selective()}'
        return f"shipping.country != payment.bin_country and {self.selective()}"

    def rule(self, i: int) -> dict[str, Any]:
        expr = self.general() if self.rnd.random() < 0.2 else self.simple()
        return {
            "id": f"ORD-{i:04d}",
            "description": f"synthetic rule {i}",
            "expression": expr,
            "score": self.rnd.choice([10, 20, 30, 40, 60]),
            "policy": "bench",
        }


BENIGN = [
    "hello",
    "thanks",
    "street",
    "anna",
    "main",
    "road",
    "blue",
    "size",
    "red",
    "door",
    "ring",
    "bell",
    "box",
    "floor",
    "left",
    "right",
    "office",
    "back",
]


def event(rnd: random.Random, schema: FeatureSchema) -> dict[str, Any]:
    """One order's features. Counters nest (1h <= 24h <= 7d) and are mostly 0-2; text is
    mostly benign words with the odd suspicious one; detector scores are mostly low."""
    f: dict[str, Any] = {}
    for name, spec in schema.items():
        if name.startswith("velocity."):
            continue
        if name.startswith("detector."):
            f[name] = rnd.betavariate(2, 8)
        elif spec.type is T.FLOAT:
            f[name] = round(rnd.lognormvariate(4, 1.2), 2)
        elif spec.type is T.BOOL:
            f[name] = rnd.random() < 0.2
        elif spec.type is T.STR:
            if name in VOCAB:
                f[name] = rnd.choice(VOCAB[name])
            else:
                f[name] = " ".join(
                    rnd.choice(WORDS) if rnd.random() < 0.02 else rnd.choice(BENIGN)
                    for _ in range(rnd.randrange(1, 8))
                )
        elif spec.type is T.STR_LIST:
            f[name] = frozenset(f"tok{rnd.randrange(10_000)}" for _ in range(50))
    windows: dict[str, int] = {}
    for name in schema:
        if name.startswith("velocity."):
            stem, window = name.rsplit("_", 1)
            if stem not in windows:
                windows[stem] = int(rnd.expovariate(0.9))  # the 7d count
            week = windows[stem]
            day = sum(rnd.random() < 0.4 for _ in range(week))
            hour = sum(rnd.random() < 0.3 for _ in range(day))
            f[name] = {"7d": week, "24h": day, "1h": hour}[window]
    f["order.quantity"] = 1 + int(rnd.expovariate(0.5))
    f["order.item_count"] = 1 + int(rnd.expovariate(0.7))
    f["buyer.lifetime_orders"] = float(int(rnd.expovariate(0.1)))
    f["buyer.refund_rate"] = rnd.betavariate(1, 12)
    f["shop.rating"] = round(rnd.uniform(2.8, 5.0), 1)
    f["account_age_minutes"] = rnd.choice([5.0, 45.0, 300.0, 20_000.0, 200_000.0, 900_000.0])
    f["hour_of_day"] = rnd.randrange(24)
    f["buyer.email"] = rnd.choice(
        ["anna.k@example.com"] * 20 + ["bob1234@mail.ru", "x@y.de", "test@tmp.io", "maria@web.de"]
    )
    return f


def median_us(fn: Callable[[dict[str, Any]], Any], events: list[dict[str, Any]], repeat: int) -> float:
    """Median over events of the best-of-``repeat`` time of one call, in µs."""
    per_event = []
    clock = time.perf_counter_ns
    for ev in events:
        best = min(_timed(fn, ev, clock) for _ in range(repeat))
        per_event.append(best / 1000)
    return statistics.median(per_event)


def _timed(fn: Callable[[dict[str, Any]], Any], ev: dict[str, Any], clock: Callable[[], int]) -> int:
    t = clock()
    fn(ev)
    return clock() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    schema = build_schema()
    rnd = random.Random(args.seed)
    gen = Gen(schema, rnd)
    all_rules = [gen.rule(i) for i in range(1000)]
    events = [event(rnd, schema) for _ in range(args.events)]
    degraded = [
        {k: (None if k.startswith("velocity.") else v) for k, v in ev.items()}
        for ev in events[: max(1, args.events // 10)]
    ]

    print(
        f"schema: {len(schema)} features; events: {len(events)}; per event the best of "
        f"{args.repeat} calls, then the median over events; python {sys.version.split()[0]}"
    )
    print(
        "fast: RulePack.evaluate; ref: evaluate_reference (each rule's closure alone); "
        "degraded: every velocity feature unavailable (Redis down), most rules ERROR"
    )
    print()
    header = f"{'rules':>6} {'fast µs':>9} {'ref µs':>9} {'hits/ev':>8} {'degraded µs':>12}  index"
    print(header)
    print("-" * len(header))
    fast: dict[int, float] = {}
    for n in (10, 100, 1000):
        started = time.perf_counter()
        pack: RulePack = build_pack({"bench.yaml": {"kind": "order", "rules": all_rules[:n]}}, schema)
        load_ms = (time.perf_counter() - started) * 1000

        def run(ev: dict[str, Any], pack: RulePack = pack) -> Any:
            return pack.evaluate("order", ev)

        def ref(ev: dict[str, Any], pack: RulePack = pack) -> Any:
            return pack.evaluate_reference("order", ev)

        for ev in events[:200]:  # warm up, and check the two evaluators agree
            a = [(s.code, s.status) for s in run(ev)]
            b = [(s.code, s.status) for s in ref(ev)]
            assert a == b, "fast path and reference disagree"
        fast[n] = median_us(run, events, args.repeat)
        t_ref = median_us(ref, events[: max(1, len(events) // 4)], 1)
        t_deg = median_us(run, degraded, args.repeat)
        hits = statistics.mean(sum(s.status == "hit" for s in run(ev)) for ev in events[:500])
        stats = pack.stats("order")
        print(
            f"{n:>6} {fast[n]:>9.2f} {t_ref:>9.1f} {hits:>8.2f} {t_deg:>12.1f}  "
            f"{stats['dict_terms']} dict + {stats['bisect_terms']} bisect + "
            f"{stats['lazy_terms']} lazy terms, {stats['atoms']} atoms, "
            f"{stats['unindexed_rules']} unindexed; load {load_ms:.0f} ms"
        )
    marginal = (fast[1000] - fast[10]) / 990
    fixed = fast[10] - 10 * marginal
    print()
    print(f"fixed cost             ~{fixed:.2f} µs per event")
    print(
        f"marginal cost per rule  {marginal:.4f} µs  (target < {TARGET_US} µs: "
        f"{'OK' if marginal < TARGET_US else 'MISSED'})"
    )
    print(f"  100-rule slope        {(fast[100] - fast[10]) / 90:.4f} µs per rule")


if __name__ == "__main__":
    main()
