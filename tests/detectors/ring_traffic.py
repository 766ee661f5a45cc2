"""Synthetic marketplace orders with known brushing rings (fixed seeds), for tests and bench.

Normal traffic: buyers with their own device(s), address and card, ordering from shops whose
popularity is heavy-tailed (Zipf), a few households of 2-5 buyers sharing one address, and a
few people using two accounts on one device, and parcel pickup points: addresses shared by
hundreds of unrelated buyers (lockers, campus mailrooms) that chain everyone who uses them
into one big "linked" group. A ring: a shop's fake buyers on a handful of
devices, addresses and cards, each placing a few orders at the shop and, as camouflage, some
orders at popular shops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detectors.rings import Order


@dataclass
class Traffic:
    orders: list[Order] = field(default_factory=list)
    rings: list[tuple[frozenset[str], str]] = field(default_factory=list)  # (buyers, shop)
    popular_shop: str = ""
    family: frozenset[str] = frozenset()

    @property
    def ring_buyers(self) -> set[str]:
        return {b for buyers, _ in self.rings for b in buyers}


def normal_traffic(
    rng: np.random.Generator,
    *,
    n_orders: int,
    n_shops: int | None = None,
    prefix: str = "",
    pickup_share: float = 0.1,
) -> Traffic:
    n_buyers = max(10, n_orders // 3)
    n_shops = n_shops or max(20, n_orders // 25)
    popularity = 1.0 / np.arange(1, n_shops + 1) ** 1.1
    popularity /= popularity.sum()
    shops = [f"{prefix}shop-{i}" for i in range(n_shops)]
    devices: list[list[str]] = []
    addresses: list[str] = []
    cards: list[str | None] = []
    for b in range(n_buyers):
        own = [f"{prefix}dev-{b}"] + ([f"{prefix}dev-{b}-2"] if rng.random() < 0.1 else [])
        devices.append(own)
        addresses.append(f"{prefix}addr-{b}")
        cards.append(f"{prefix}card-{b}" if rng.random() < 0.8 else None)
    # Households: 2-5 buyers at one address (one of them pays for some orders).
    b = 0
    family: list[str] = []
    while b < n_buyers * 0.04:
        size = int(rng.integers(2, 6))
        head = int(rng.integers(0, n_buyers))
        for m in rng.integers(0, n_buyers, size=size - 1).tolist():
            addresses[m] = addresses[head]
            if rng.random() < 0.3:
                cards[m] = cards[head]
            if not family:
                family = [f"{prefix}buyer-{head}"]
            if len(family) < 5 and family[0] == f"{prefix}buyer-{head}":
                family.append(f"{prefix}buyer-{m}")
        b += size
    # Two accounts on one device (a couple, a shared tablet).
    for _ in range(max(1, n_buyers // 100)):
        x, y = rng.integers(0, n_buyers, size=2).tolist()
        devices[y] = [*devices[y], devices[x][0]]
    # Parcel pickup points: some buyers send some orders there instead of home.
    n_pickups = max(1, n_buyers // 2000)
    pickup_of = {
        int(b): f"{prefix}pickup-{int(rng.integers(0, n_pickups))}"
        for b in np.flatnonzero(rng.random(n_buyers) < pickup_share)
    }
    per_buyer = rng.geometric(1 / 3, size=n_buyers)
    buyer_of = np.repeat(np.arange(n_buyers), per_buyer)[:n_orders]
    shop_of = rng.choice(n_shops, size=len(buyer_of), p=popularity)
    amounts = np.round(rng.lognormal(3.3, 0.8, size=len(buyer_of)), 2)
    traffic = Traffic(popular_shop=shops[0], family=frozenset(family))
    for k, (bi, si) in enumerate(zip(buyer_of.tolist(), shop_of.tolist(), strict=True)):
        devs = devices[bi]
        pickup = pickup_of.get(bi)
        traffic.orders.append(
            Order(
                buyer=f"{prefix}buyer-{bi}",
                shop=shops[si],
                device=devs[k % len(devs)],
                address=pickup if pickup and k % 2 else addresses[bi],
                payment=cards[bi],
                amount=float(amounts[k]),
            )
        )
    return traffic


def inject_ring(
    rng: np.random.Generator,
    traffic: Traffic,
    *,
    name: str,
    n_buyers: int = 20,
    n_devices: int = 3,
    n_addresses: int = 3,
    n_cards: int = 2,
    orders_per_buyer: tuple[int, int] = (2, 5),
    camouflage: int = 2,
    popular_shops: list[str] | None = None,
    pickup: str | None = None,
) -> None:
    """Add a ring; with ``pickup``, every other camouflage order ships to that (shared) address."""
    shop = f"{name}-shop"
    buyers = [f"{name}-buyer-{i}" for i in range(n_buyers)]
    devices = [f"{name}-dev-{i}" for i in range(n_devices)]
    addresses = [f"{name}-addr-{i}" for i in range(n_addresses)]
    cards = [f"{name}-card-{i}" for i in range(n_cards)]
    popular = popular_shops or [traffic.popular_shop]
    # A few honest buyers of the ring's shop too.
    honest = sorted({o.buyer for o in traffic.orders})
    for b in rng.choice(len(honest), size=min(len(honest), 5), replace=False).tolist():
        traffic.orders.append(Order(honest[b], shop, f"{honest[b]}-d", f"{honest[b]}-a", None, 30.0))
    for b in buyers:
        dev = devices[int(rng.integers(0, n_devices))]
        addr = addresses[int(rng.integers(0, n_addresses))]
        card = cards[int(rng.integers(0, n_cards))]
        for _ in range(int(rng.integers(orders_per_buyer[0], orders_per_buyer[1] + 1))):
            traffic.orders.append(Order(b, shop, dev, addr, card, float(np.round(rng.uniform(40, 120), 2))))
        for k in range(camouflage):
            target = popular[int(rng.integers(0, len(popular)))]
            to = pickup if pickup and k % 2 == 0 else addr
            traffic.orders.append(Order(b, target, dev, to, card, float(np.round(rng.uniform(10, 60), 2))))
    traffic.rings.append((frozenset(buyers), shop))


def member_scores(found: list[set[str]], truth: set[str]) -> tuple[float, float]:
    """(precision, recall) of found buyers against the ring buyers."""
    got = set().union(*found) if found else set()
    if not got:
        return (1.0 if not truth else 0.0), (0.0 if truth else 1.0)
    tp = len(got & truth)
    return tp / len(got), (tp / len(truth) if truth else 1.0)
