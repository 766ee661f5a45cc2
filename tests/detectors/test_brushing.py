"""Order brushing: the fast scan equals a brute-force reading of the definition."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors._jit import python_version
from detectors.brushing import _scan_windows, ascending, detect_brushing

HOUR = 3600


def brute_force(shops, buyers, times, threshold=3):
    """The definition, literally: every shop, every order time t, the orders in [t, t+1h]."""
    by_shop = defaultdict(list)
    for i, (s, b, t) in enumerate(zip(shops, buyers, times, strict=True)):
        by_shop[s].append((t, b, i))
    out = {}
    for shop, orders in by_shop.items():
        brushing = set()
        windows = set()
        for t0, _, _ in orders:
            inside = [(b, i) for t, b, i in orders if t0 <= t <= t0 + HOUR]
            if len(inside) >= threshold * len({b for b, _ in inside}):
                brushing |= {i for _, i in inside}
                windows.add((t0, len(inside), len({b for b, _ in inside})))
        if not brushing:
            out[shop] = ((), frozenset(), frozenset())
            continue
        counts = Counter(buyers[i] for i in brushing)
        top = max(counts.values())
        out[shop] = (
            tuple(sorted(b for b, c in counts.items() if c == top)),
            frozenset(brushing),
            frozenset(windows),
        )
    return out


def fast(shops, buyers, times):
    report = detect_brushing(shops, buyers, times, order_ids=np.arange(len(shops)))
    found = {s.shop_id: s for s in report.shops}
    out = {}
    for shop in report.shop_ids:
        if shop not in found:
            out[shop] = ((), frozenset(), frozenset())
            continue
        s = found[shop]
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        windows = frozenset((int((w.start - epoch).total_seconds()), w.orders, w.buyers) for w in s.windows)
        assert len(windows) == len(s.windows)  # one window per distinct start time
        out[shop] = (s.suspicious, frozenset(s.order_ids), windows)
    return out


def random_orders(rng, n_shops, max_orders, grid):
    """Small shops, few buyers, times on a coarse grid: ties, equal times and t+1h edges abound."""
    shops, buyers, times = [], [], []
    for shop in range(n_shops):
        n = int(rng.integers(1, max_orders + 1))
        pool = int(rng.integers(1, 6))
        base = int(rng.integers(0, 3)) * 86_400
        for _ in range(n):
            shops.append(shop * 7 + 3)
            buyers.append(int(rng.integers(0, pool)) + 100 * int(rng.integers(0, 3)))
            times.append(base + int(rng.integers(0, 12)) * grid)
    return shops, buyers, times


@pytest.mark.parametrize("grid", [450, 600, 900, 1200, 1800])
def test_scan_equals_brute_force_on_random_shops(grid):
    rng = np.random.default_rng(grid)
    shops, buyers, times = random_orders(rng, 300, 25, grid)
    expected = brute_force(shops, buyers, times)
    assert fast(shops, buyers, times) == expected
    # the generator must actually exercise both outcomes and ties
    assert any(v[0] for v in expected.values())
    assert any(not v[0] for v in expected.values())
    assert any(len(v[0]) > 1 for v in expected.values())


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # shop
            st.integers(0, 4),  # buyer
            st.integers(0, 16).map(lambda k: k * 450 + 86_400),  # multiples of 7.5 min: t+1h exact
        ),
        min_size=1,
        max_size=60,
    )
)
def test_scan_equals_brute_force_property(orders):
    shops, buyers, times = (list(c) for c in zip(*orders, strict=True))
    assert fast(shops, buyers, times) == brute_force(shops, buyers, times)


def test_hand_worked_example():
    # shop 10 (times from 10:00):
    #   o1 10:00 u900, o2 10:10 u900, o3 10:30 u10000, o4 11:00 u900, o5 11:00 u10000,
    #   o6 11:00 u10000, o7 11:40 u3, o8 12:00 u10000, o9 13:30 u4
    # [10:00, 11:00] holds o1..o6 (the 11:00 orders included: closed interval): 6 orders,
    # 2 buyers -> 3.0, brushing. [10:10, 11:10] 5/2, [10:30, 11:30] 4/2, [11:00, 12:00] 5/3
    # and the rest are not. Brushing orders o1..o6: u900 3, u10000 3 -> a tie, both, and in
    # numeric order (lexicographic would put 10000 first).
    # shop 2: u7 at 10:00, 10:30, 11:00:01 -> at most 2 orders in any window: not brushing.
    t0 = 10 * HOUR
    rows = [
        ("o1", 10, 900, t0),
        ("o2", 10, 900, t0 + 600),
        ("o3", 10, 10000, t0 + 1800),
        ("o4", 10, 900, t0 + HOUR),
        ("o5", 10, 10000, t0 + HOUR),
        ("o6", 10, 10000, t0 + HOUR),
        ("o7", 10, 3, t0 + HOUR + 2400),
        ("o8", 10, 10000, t0 + 2 * HOUR),
        ("o9", 10, 4, t0 + 3 * HOUR + 1800),
        ("p1", 2, 7, t0),
        ("p2", 2, 7, t0 + 1800),
        ("p3", 2, 7, t0 + HOUR + 1),
    ]
    ids, shops, buyers, times = (list(c) for c in zip(*rows, strict=True))
    report = detect_brushing(shops, buyers, times, order_ids=ids, amounts=[10.0] * 9 + [1.0] * 3)
    assert report.shop_ids == (2, 10)
    assert report.suspicious_by_shop() == {2: (), 10: (900, 10000)}
    assert report.table().to_dict("list") == {"shopid": ["2", "10"], "userid": ["0", "900&10000"]}
    (shop,) = report.shops
    assert shop.order_ids == ("o1", "o2", "o3", "o4", "o5", "o6")
    assert [(w.start.hour, w.end.hour, w.orders, w.buyers) for w in shop.windows] == [(10, 11, 6, 2)]
    assert shop.buyer_orders == {900: 3, 10000: 3}
    assert shop.top_share == 0.5
    assert shop.amount == 60.0
    assert shop.max_ratio == 3.0


def test_one_second_past_the_hour_is_outside_the_window():
    report = detect_brushing(["s"] * 3, ["u"] * 3, [0, 1800, HOUR + 1])
    assert report.shops == ()
    report = detect_brushing(["s"] * 3, ["u"] * 3, [0, 1800, HOUR])
    assert report.suspicious_by_shop() == {"s": ("u",)}


def test_many_orders_at_one_instant():
    # 7 orders in the same second by 2 buyers (4 + 3): one window, 3.5 orders per buyer
    shops = ["s"] * 12
    buyers = ["a"] * 4 + ["b"] * 3 + ["c", "d", "e", "f", "g"]
    late = [0] * 7 + [HOUR + 1] * 5
    report = detect_brushing(shops, buyers, late, order_ids=list(range(12)))
    (shop,) = report.shops
    assert shop.suspicious == ("a",)
    assert shop.order_ids == tuple(range(7))
    assert [(w.orders, w.buyers) for w in shop.windows] == [(7, 2)]
    # the same crowd exactly an hour later is inside the window: 12 orders, 7 buyers
    assert detect_brushing(shops, buyers, [0] * 7 + [HOUR] * 5).shops == ()


def test_ids_sort_numerically_only_when_all_numeric():
    assert ascending(["10", "9", "100"]) == ["9", "10", "100"]
    assert ascending([10, 9, 100]) == [9, 10, 100]
    assert ascending(["b10", "b9", "a"]) == ["a", "b10", "b9"]
    assert ascending(["10", "x9"]) == ["10", "x9"]


def test_datetimes_and_epoch_seconds_give_the_same_answer():
    rng = np.random.default_rng(7)
    shops, buyers, secs = random_orders(rng, 50, 20, 900)
    as_dt = np.asarray(secs, dtype=np.int64).astype("datetime64[s]")
    as_text = [datetime.fromtimestamp(s, UTC).isoformat() for s in secs]
    a = detect_brushing(shops, buyers, secs).table()
    assert a.equals(detect_brushing(shops, buyers, as_dt).table())
    assert a.equals(detect_brushing(shops, buyers, as_text).table())


def test_compiled_and_python_kernels_agree():
    rng = np.random.default_rng(11)
    n = 4000
    shop = np.sort(rng.integers(0, 200, n)).astype(np.int64)
    t = rng.integers(0, 40, n).astype(np.int64) * 300
    order = np.lexsort((t, shop))
    shop, t = shop[order], t[order]
    buyer = rng.integers(0, 8, n).astype(np.int64)
    fast_out = _scan_windows(shop, t, buyer, 8, 3600, 3, 1)
    slow_out = python_version(_scan_windows)(shop, t, buyer, 8, 3600, 3, 1)
    assert fast_out[0].any()
    for a, b in zip(fast_out, slow_out, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_fractional_threshold_is_exact():
    # 5 orders by 2 buyers: ratio 2.5
    report = detect_brushing(["s"] * 5, ["a", "a", "a", "b", "b"], [0] * 5, threshold=2.5)
    assert report.suspicious_by_shop() == {"s": ("a",)}
    assert detect_brushing(["s"] * 5, ["a", "a", "a", "b", "b"], [0] * 5, threshold=2.51).shops == ()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same length"):
        detect_brushing(["s"], ["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="missing"):
        detect_brushing(["s", None], ["a", "b"], [0, 1])
    with pytest.raises(TypeError):
        detect_brushing(["s"], ["a"], [0.5])


def test_no_orders():
    report = detect_brushing([], [], np.array([], dtype="datetime64[s]"))
    assert report.shop_ids == () and report.shops == ()
    assert report.table().empty


def test_times_centuries_apart_give_the_same_answer():
    # the (shop, time) key would overflow int64 here, so the two-key sort is used instead
    rng = np.random.default_rng(5)
    shops, buyers, times = random_orders(rng, 600, 15, 900)
    times = [t + (s % 3) * 10**10 for s, t in zip(shops, times, strict=True)]
    assert fast(shops, buyers, times) == brute_force(shops, buyers, times)


def test_many_numeric_ids_sort_by_value_then_text():
    ids = [str(v) for v in np.random.default_rng(3).integers(0, 10**12, 500)] + ["007", "7", "07"]
    assert ascending(ids) == sorted(ids, key=lambda x: (int(x), x))
