"""Brushing-ring detection (detectors.rings) on synthetic traffic with known rings."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import sparse

from detectors.rings import Order, RingDetector, build_graph, core, find_rings, peel
from tests.detectors.ring_traffic import Traffic, inject_ring, member_scores, normal_traffic

MIN_SCORE = 50.0


def reported(rings):
    return [r for r in rings if r.score >= MIN_SCORE]


def one_ring(seed: int) -> Traffic:
    rng = np.random.default_rng(seed)
    traffic = normal_traffic(rng, n_orders=6000)
    inject_ring(rng, traffic, name="ring", n_buyers=15, n_devices=3, n_addresses=2, n_cards=2)
    return traffic


def two_camouflaged_rings(seed: int) -> Traffic:
    rng = np.random.default_rng(seed)
    traffic = normal_traffic(rng, n_orders=8000)
    popular = [f"shop-{i}" for i in range(3)]
    inject_ring(rng, traffic, name="alpha", n_buyers=20, camouflage=4, popular_shops=popular)
    inject_ring(
        rng,
        traffic,
        name="beta",
        n_buyers=8,
        n_devices=2,
        n_addresses=1,
        n_cards=1,
        camouflage=3,
        popular_shops=popular,
    )
    return traffic


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_ring_in_heavy_tailed_traffic_is_found_with_its_members(seed):
    traffic = one_ring(seed)
    rings = reported(find_rings(traffic.orders))
    precision, recall = member_scores([set(r.buyers) for r in rings], traffic.ring_buyers)
    assert precision >= 0.95 and recall >= 0.9, (precision, recall)
    assert len(rings) == 1
    ring = rings[0]
    assert ring.shops == ("ring-shop",)
    assert ring.main_shop == "ring-shop"
    # the devices, addresses and cards the fake accounts share are what links them
    assert set(ring.entities["device"]) <= {f"ring-dev-{i}" for i in range(3)}
    assert set(ring.entities["address"]) <= {"ring-addr-0", "ring-addr-1"}
    assert ring.linked_buyers == len(ring.buyers)
    assert ring.ratio >= 2.0
    orders = [o for o in traffic.orders if o.shop == "ring-shop" and o.buyer in set(ring.buyers)]
    assert ring.orders == len(orders)
    assert ring.amount == pytest.approx(sum(o.amount for o in orders))


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_two_rings_with_camouflage_at_popular_shops_are_told_apart(seed):
    traffic = two_camouflaged_rings(seed)
    rings = reported(find_rings(traffic.orders))
    precision, recall = member_scores([set(r.buyers) for r in rings], traffic.ring_buyers)
    assert precision >= 0.95 and recall >= 0.9, (precision, recall)
    by_shop = {r.main_shop: r for r in rings}
    assert set(by_shop) == {"alpha-shop", "beta-shop"}
    for buyers, shop in traffic.rings:
        ring = by_shop[shop]
        # one ring per ring: no buyer of the other ring, and the camouflage shops are not members
        assert set(ring.buyers) <= buyers
        assert ring.shops == (shop,)
        assert ring.other_shops >= 1
        assert shop in ring.explanation and f"{len(ring.buyers)} buyers" in ring.explanation


def test_rings_shipping_camouflage_to_a_busy_pickup_point_stay_apart():
    rng = np.random.default_rng(21)
    traffic = normal_traffic(rng, n_orders=8000, pickup_share=0.3)
    pickup = "pickup-0"
    assert len({o.buyer for o in traffic.orders if o.address == pickup}) > 200
    for name in ("east", "west"):
        inject_ring(rng, traffic, name=name, n_buyers=12, camouflage=2, pickup=pickup)
    rings = reported(find_rings(traffic.orders))
    assert sorted(r.main_shop for r in rings) == ["east-shop", "west-shop"]
    for ring in rings:
        assert pickup not in ring.entities.get("address", ())
        assert all(b.startswith(ring.main_shop.removesuffix("-shop")) for b in ring.buyers)
    precision, recall = member_scores([set(r.buyers) for r in rings], traffic.ring_buyers)
    assert precision == 1.0 and recall >= 0.9


def test_a_bigger_denser_ring_scores_higher_than_a_small_loose_one():
    rings = {r.main_shop: r for r in find_rings(two_camouflaged_rings(7).orders)}
    assert rings["alpha-shop"].score > rings["beta-shop"].score


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_normal_traffic_has_no_ring_above_the_threshold(seed):
    rng = np.random.default_rng(seed)
    traffic = normal_traffic(rng, n_orders=8000)
    # a popular shop with many legitimate buyers
    assert sum(o.shop == traffic.popular_shop for o in traffic.orders) > 500
    # a family of five at one address, each on their own device and card, who all shop at
    # the popular shop and at one small shop
    family = [f"fam-{i}" for i in range(5)]
    for i, buyer in enumerate(family):
        for shop in (traffic.popular_shop, "corner-shop", "shop-40"):
            traffic.orders.append(Order(buyer, shop, f"fam-dev-{i}", "fam-addr", f"fam-card-{i}", 20.0))
    rings = find_rings(traffic.orders)
    assert reported(rings) == []
    for ring in rings:
        assert traffic.popular_shop not in ring.shops


def test_the_popular_shop_is_not_a_ring_even_when_its_buyers_share_a_device_pool():
    # 300 honest buyers of one shop; a few pairs share a device (couples, shared tablets)
    orders = []
    for i in range(300):
        device = f"dev-{i // 2}" if i < 20 else f"dev-{i}"
        orders.append(Order(f"b-{i}", "mall", device, f"addr-{i}", f"card-{i}", 10.0))
        orders.append(Order(f"b-{i}", f"shop-{i % 50}", device, f"addr-{i}", f"card-{i}", 10.0))
    assert reported(find_rings(orders)) == []


def test_the_same_orders_in_another_order_give_the_same_rings():
    traffic = two_camouflaged_rings(8)
    first = find_rings(traffic.orders)
    shuffled = list(traffic.orders)
    random.Random(0).shuffle(shuffled)
    second = find_rings(shuffled)
    assert [r.ring_id for r in first] == [r.ring_id for r in second]
    assert [r.members for r in first] == [r.members for r in second]
    assert first[0].members == tuple(sorted(first[0].members))


def test_max_rings_caps_the_result():
    traffic = two_camouflaged_rings(9)
    assert len(find_rings(traffic.orders)) >= 2
    assert len(find_rings(traffic.orders, max_rings=1)) == 1


def test_no_orders_no_rings():
    assert find_rings([]) == []
    assert find_rings([Order("a", "s"), Order("b", "s")]) == []


def test_peeling_returns_a_planted_biclique():
    dense = sparse.random(200, 100, density=0.02, random_state=1, format="csr")
    dense.data[:] = 1.0
    m = dense.tolil()
    block_rows, block_cols = list(range(10, 22)), list(range(50, 58))
    for r in block_rows:
        for c in block_cols:
            m[r, c] = 1.0
    rows, cols, density = peel(m.tocsr(), np.ones(100))
    assert set(block_rows) <= set(rows.tolist()) and set(block_cols) <= set(cols.tolist())
    assert len(rows) + len(cols) <= 24
    assert density >= 12 * 8 / 20 - 1e-9


def test_core_keeps_only_nodes_with_enough_weight():
    m = sparse.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=float))
    rows, cols = core(m, 2.0)
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]
    rows, cols = core(m, 3.0)
    assert rows.size == 0 and cols.size == 0


def test_entities_one_buyer_used_carry_no_weight_and_popular_columns_weigh_less():
    orders = [Order(f"b{i}", "big", f"d{i}", "shared-addr" if i < 3 else f"a{i}") for i in range(40)]
    orders += [Order("b0", "small"), Order("b1", "small")]
    g = build_graph(orders)
    col = {c: i for i, c in enumerate(g.columns)}
    assert g.weights[col[("device", "d5")]] == 0.0
    assert g.matrix[:, col[("device", "d5")]].nnz == 0
    assert g.weights[col[("address", "shared-addr")]] > 0
    assert g.weights[col[("shop", "big")]] < g.weights[col[("shop", "small")]]


def test_ring_as_dict_is_plain_data():
    ring = find_rings(one_ring(1).orders)[0]
    data = ring.as_dict()
    assert data["ring_id"] == ring.ring_id and data["shops"][0] == "ring-shop"
    assert isinstance(data["entities"]["device"], list)
    assert 0 < data["score"] <= 100


def test_detector_parameters_are_only_stored():
    det = RingDetector(max_rings=3, min_buyers=5)
    assert det.max_rings == 3 and det.min_buyers == 5
