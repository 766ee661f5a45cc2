"""Brushing-ring detection benchmark: FRAUDAR peeling vs connected components, same run.

    python bench/bench_rings.py [--quick] [--repeat 3]

For 10k, 50k and 100k synthetic orders (``--quick``: 10k only) with heavy-tailed shop
popularity, households sharing an address, two accounts on a shared device now and then, and
six injected rings (5-30 fake buyers each on 1-4 devices, 1-3 addresses, 1-3 cards, each
also buying from the five most popular shops as camouflage; every other ring ships some of
those camouflage orders to a parcel pickup point that hundreds of honest buyers also use), it
prints:

* ``detectors.rings`` (``RingDetector().detect``, graph building included): median wall time
  of ``--repeat`` runs, and precision/recall of ring buyers among the rings scoring >= 50;
* baseline ``components``: networkx connected components of the buyer-entity graph (buyers
  linked by shared devices, addresses, cards), every component with >= 4 buyers a "ring";
* baseline ``components+shop``: the same, keeping only components whose buyers are at least
  half at one shop that they are at least a quarter of the buyers of (the ring-shop filter
  the detector uses). The pickup point chains the rings that use it into one giant component
  with hundreds of honest buyers, which this filter then rightly refuses, losing those rings.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import median

import networkx as nx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors.rings import Order, RingDetector, build_graph  # noqa: E402
from tests.detectors.ring_traffic import Traffic, inject_ring, member_scores, normal_traffic  # noqa: E402

MIN_SCORE = 50.0
MIN_BUYERS = 4


def make_traffic(n_orders: int, seed: int = 0, rings: int = 6) -> Traffic:
    rng = np.random.default_rng(seed)
    traffic = normal_traffic(rng, n_orders=n_orders)
    popular = [f"shop-{i}" for i in range(5)]
    for i in range(rings):
        inject_ring(
            rng,
            traffic,
            name=f"ring{i}",
            n_buyers=int(rng.integers(5, 31)),
            n_devices=int(rng.integers(1, 5)),
            n_addresses=int(rng.integers(1, 4)),
            n_cards=int(rng.integers(1, 4)),
            camouflage=int(rng.integers(1, 4)),
            popular_shops=popular,
            # every other ring also ships camouflage orders to a busy parcel pickup point
            pickup="pickup-0" if i % 2 else None,
        )
    return traffic


def detector(orders: Sequence[Order]) -> list[set[str]]:
    return [set(r.buyers) for r in RingDetector().detect(orders) if r.score >= MIN_SCORE]


def components(orders: Sequence[Order], *, shop_filter: bool = False) -> list[set[str]]:
    g = nx.Graph()
    for o in orders:
        g.add_node(("b", o.buyer))
        for kind, value in (("d", o.device), ("a", o.address), ("p", o.payment)):
            if value:
                g.add_edge(("b", o.buyer), (kind, value))
    found = []
    shop_buyers: dict[str, set[str]] = defaultdict(set)
    buyer_shops: dict[str, set[str]] = defaultdict(set)
    if shop_filter:
        for o in orders:
            shop_buyers[o.shop].add(o.buyer)
            buyer_shops[o.buyer].add(o.shop)
    for comp in nx.connected_components(g):
        buyers = {name for kind, name in comp if kind == "b"}
        if len(buyers) < MIN_BUYERS:
            continue
        if shop_filter:
            per_shop = Counter(s for b in buyers for s in buyer_shops[b])
            if not any(
                n >= 0.5 * len(buyers) and n >= 0.25 * len(shop_buyers[s]) for s, n in per_shop.items()
            ):
                continue
        found.append(buyers)
    return found


def timed(fn: Callable[[], list[set[str]]], repeat: int) -> tuple[float, list[set[str]]]:
    times, result = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k orders only")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [10_000, 50_000, 100_000]
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    head = f"{'orders':>8} {'edges':>7} {'method':<16} {'median s':>9} {'rings':>5} {'precision':>9} {'recall':>7}"
    print(head)
    print("-" * len(head))
    for n in sizes:
        traffic = make_traffic(n)
        edges = build_graph(traffic.orders).matrix.nnz
        truth = traffic.ring_buyers
        methods = {
            "rings (FRAUDAR)": lambda t=traffic: detector(t.orders),
            "components": lambda t=traffic: components(t.orders),
            "components+shop": lambda t=traffic: components(t.orders, shop_filter=True),
        }
        base_time = None
        for name, fn in methods.items():
            seconds, found = timed(fn, args.repeat)
            precision, recall = member_scores(found, truth)
            if base_time is None:
                base_time = seconds
            ratio = f"  ({seconds / base_time:.2f}x rings' time)" if name != "rings (FRAUDAR)" else ""
            print(
                f"{len(traffic.orders):>8} {edges:>7} {name:<16} {seconds:>9.3f} {len(found):>5} "
                f"{precision:>9.3f} {recall:>7.3f}{ratio}"
            )
    print(f"\n{len(make_traffic(1000).rings)} injected rings per size; precision/recall of ring buyers.")


if __name__ == "__main__":
    main()
