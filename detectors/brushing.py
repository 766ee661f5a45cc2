"""Order brushing: a shop inflating its sales with a few accounts buying again and again.

Pure scoring code (numpy and pandas only; no Flask, database or Redis).

Definition (exact)
------------------
For each shop, a *window* is the closed interval ``[t, t + 1 h]`` where ``t`` is the time of
one of that shop's orders (orders at the same time give the same window). A window is
*brushing* when ``orders in it / distinct buyers in it >= 3``. A shop's *brushing orders*
are the union of the orders in its brushing windows. Its *suspicious buyers* are the
buyer(s) with the most brushing orders — every one of them on a tie. A shop with no brushing
window has no suspicious buyer (reported as ``"0"``).

How it is computed
------------------
Orders are sorted by (shop, time). Windows of one shop start at its distinct times in
increasing order and their ends are non-decreasing, so one two-pointer pass per shop keeps a
count per buyer and the number of distinct buyers in the current window, each order being
added and removed once: O(n) after the O(n log n) sort. The loop is a numba kernel when
numba is present (``_jit``), the same function in plain Python otherwise.

The kernel lives here rather than in ``_kernels``: it calls no other kernel, so numba's
per-file cache check (the reason ``_kernels`` is one module) covers it completely.

The ratio test is done in integers (``orders * den >= num * buyers`` for a threshold of
``num / den`` as written in decimal), so there is no floating-point edge at exactly 3.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._jit import kernel

WINDOW = np.timedelta64(1, "h")
THRESHOLD = 3.0
NO_SUSPECT = "0"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMERIC = re.compile(r"^[0-9]+$")


@kernel
def _scan_windows(
    shop: NDArray[np.int64],
    t: NDArray[np.int64],
    buyer: NDArray[np.int64],
    n_buyers: int,
    width: int,
    num: int,
    den: int,
) -> tuple[NDArray[np.bool_], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Brushing mask and brushing windows of orders sorted by (shop, t).

    A window is brushing when ``orders * den >= num * buyers`` (threshold = num / den).
    Returns (in_brushing[n], window_start_index, window_end_index (exclusive), window_buyers).
    """
    n = t.shape[0]
    counts = np.zeros(n_buyers, np.int64)
    in_brushing = np.zeros(n, np.bool_)
    win_s = np.empty(n, np.int64)
    win_e = np.empty(n, np.int64)
    win_d = np.empty(n, np.int64)
    n_win = 0
    i = 0
    while i < n:
        j = i
        while j < n and shop[j] == shop[i]:
            j += 1
        # one shop: orders [i, j); window [s, e) holds `distinct` buyers
        s = i
        e = i
        distinct = 0
        covered = i
        while s < j:
            limit = t[s] + width
            while e < j and t[e] <= limit:
                b = buyer[e]
                if counts[b] == 0:
                    distinct += 1
                counts[b] += 1
                e += 1
            if (e - s) * den >= num * distinct:
                win_s[n_win] = s
                win_e[n_win] = e
                win_d[n_win] = distinct
                n_win += 1
                k = s if s > covered else covered
                while k < e:
                    in_brushing[k] = True
                    k += 1
                if e > covered:
                    covered = e
            ts = t[s]
            while s < j and t[s] == ts:
                b = buyer[s]
                counts[b] -= 1
                if counts[b] == 0:
                    distinct -= 1
                s += 1
        i = j
    return in_brushing, win_s[:n_win], win_e[:n_win], win_d[:n_win]


@dataclass(frozen=True)
class BrushingWindow:
    start: datetime  # aware UTC; the time of the order that opens the window
    end: datetime  # start + window, inclusive
    orders: int
    buyers: int

    @property
    def ratio(self) -> float:
        return self.orders / self.buyers

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "orders": self.orders,
            "buyers": self.buyers,
            "ratio": round(self.ratio, 3),
        }


@dataclass(frozen=True)
class ShopBrushing:
    """One brushing shop and the evidence for it."""

    shop_id: Any
    suspicious: tuple[Any, ...]  # the top buyer(s), ascending
    windows: tuple[BrushingWindow, ...]  # every brushing window, by start
    order_ids: tuple[Any, ...]  # the brushing orders, by time
    buyer_orders: dict[Any, int]  # brushing orders per buyer
    top_share: float  # brushing orders of one top buyer / all brushing orders
    amount: float | None  # sum of the brushing orders' amounts, when amounts were given

    @property
    def max_ratio(self) -> float:
        return max(w.ratio for w in self.windows)


@dataclass(frozen=True)
class BrushingReport:
    shop_ids: tuple[Any, ...]  # every shop of the input, ascending
    shops: tuple[ShopBrushing, ...]  # brushing shops only, ascending by shop id

    def suspicious_by_shop(self) -> dict[Any, tuple[Any, ...]]:
        """Every shop of the input → its suspicious buyers (empty: none)."""
        found = {s.shop_id: s.suspicious for s in self.shops}
        return {shop: found.get(shop, ()) for shop in self.shop_ids}

    def table(self) -> pd.DataFrame:
        """``shopid,userid`` for every shop: ``0`` or the suspicious ids joined by ``&``."""
        found = {s.shop_id: "&".join(str(u) for u in s.suspicious) for s in self.shops}
        return pd.DataFrame(
            {
                "shopid": [str(s) for s in self.shop_ids],
                "userid": [found.get(s, NO_SUSPECT) for s in self.shop_ids],
            }
        )


def ascending(ids: Iterable[Any]) -> list[Any]:
    """Numeric order when every id is an integer or a string of digits, else lexicographic."""
    items = list(ids)
    if not all(isinstance(x, int | np.integer) or (isinstance(x, str) and _NUMERIC.match(x)) for x in items):
        return sorted(items, key=str)
    if len(items) < 64:
        return sorted(items, key=lambda x: (int(x), str(x)))
    # many ids (every shop of a large scan): sort by value, then text ("007" after "7")
    try:
        values = np.array([int(x) for x in items], dtype=np.int64)
    except OverflowError:
        return sorted(items, key=lambda x: (int(x), str(x)))
    text = np.array([str(x) for x in items])
    return [items[i] for i in np.lexsort((text, values))]


def _as_microseconds(times: Any) -> NDArray[np.int64]:
    arr = np.asarray(times)
    if arr.dtype.kind in "iu":  # integers are epoch seconds
        return arr.astype(np.int64) * 1_000_000
    if arr.dtype.kind == "f":
        raise TypeError("times must be datetimes or integer epoch seconds, not floats")
    if arr.dtype.kind != "M":
        arr = pd.to_datetime(pd.Series(times), utc=True).dt.tz_localize(None).to_numpy()
    return arr.astype("datetime64[us]").astype(np.int64)


def _shop_time_order(shop_codes: NDArray[np.int64], t: NDArray[np.int64], n_shops: int) -> NDArray[np.int64]:
    """Stable order by (shop, time): equal times keep the input order, so results are repeatable."""
    if t.size == 0:
        return np.arange(0, dtype=np.int64)
    t0 = int(t.min())
    span = int(t.max()) - t0 + 1
    if n_shops * span < 2**62:  # one int64 key sorts ~3x faster than lexsort's two passes
        return np.argsort(shop_codes * span + (t - t0), kind="stable")
    return np.lexsort((t, shop_codes))


def _threshold_fraction(threshold: float) -> tuple[int, int]:
    # the decimal the user wrote (2.51 -> 251/100), compared in integers inside the kernel
    frac = Fraction(str(float(threshold)))
    if frac <= 0 or frac.denominator > 10**6 or frac.numerator > 10**9:
        raise ValueError("threshold must be a positive number with at most 6 decimals (e.g. 3, 2.5)")
    return frac.numerator, frac.denominator


def detect_brushing(
    shop_ids: Sequence[Any] | NDArray[Any],
    buyer_ids: Sequence[Any] | NDArray[Any],
    times: Any,
    order_ids: Sequence[Any] | NDArray[Any] | None = None,
    amounts: Sequence[float] | NDArray[np.float64] | None = None,
    *,
    window: np.timedelta64 | timedelta = WINDOW,
    threshold: float = THRESHOLD,
) -> BrushingReport:
    """Find brushing shops and their suspicious buyers (see the module docstring).

    ``times``: datetime64 values, aware datetimes / ISO strings (taken as UTC), or integer
    epoch seconds. ``order_ids`` default to the row positions.
    """
    shop_codes, shop_uniques = pd.factorize(np.asarray(shop_ids, dtype=object), sort=False)
    buyer_codes, buyer_uniques = pd.factorize(np.asarray(buyer_ids, dtype=object), sort=False)
    t = _as_microseconds(times)
    n = len(shop_codes)
    if (shop_codes < 0).any() or (buyer_codes < 0).any():
        raise ValueError("every order needs a shop id and a buyer id (found a missing one)")
    if not (len(buyer_codes) == len(t) == n):
        raise ValueError("shop_ids, buyer_ids and times must have the same length")
    if order_ids is not None and len(order_ids) != n:
        raise ValueError("order_ids must have one id per order")
    amount_arr = None if amounts is None else np.asarray(amounts, dtype=np.float64)
    if amount_arr is not None and len(amount_arr) != n:
        raise ValueError("amounts must have one value per order")
    width = int(pd.Timedelta(window) // pd.Timedelta(microseconds=1))
    num, den = _threshold_fraction(threshold)

    shop_codes = shop_codes.astype(np.int64)
    buyer_codes = buyer_codes.astype(np.int64)
    order = _shop_time_order(shop_codes, t, len(shop_uniques))
    s_shop, s_t, s_buyer = shop_codes[order], t[order], buyer_codes[order]
    in_b, w_s, w_e, w_d = _scan_windows(s_shop, s_t, s_buyer, len(buyer_uniques), width, num, den)

    all_shops = tuple(ascending(shop_uniques.tolist()))
    idx = np.flatnonzero(in_b)
    if idx.size == 0:
        return BrushingReport(all_shops, ())

    # brushing orders per (shop, buyer), then the top count of each shop
    b_shop, b_buyer = s_shop[idx], s_buyer[idx]
    nb = max(len(buyer_uniques), 1)
    keys, counts = np.unique(b_shop * nb + b_buyer, return_counts=True)
    k_shop, k_buyer = keys // nb, keys % nb
    starts = np.flatnonzero(np.r_[True, k_shop[1:] != k_shop[:-1]])
    top = np.maximum.reduceat(counts, starts)
    group_of = np.cumsum(np.r_[False, k_shop[1:] != k_shop[:-1]])
    is_top = counts == top[group_of]

    # every per-shop slice below is contiguous: keys sorted by shop, orders by (shop, time)
    order_bounds = np.searchsorted(b_shop, k_shop[starts], side="left")
    order_bounds = np.r_[order_bounds, idx.size]
    win_shop = s_shop[w_s]
    win_bounds = np.searchsorted(win_shop, k_shop[starts], side="left")
    win_bounds = np.r_[win_bounds, w_s.size]
    key_bounds = np.r_[starts, keys.size]
    sorted_orders = order if order_ids is None else np.asarray(order_ids, dtype=object)[order]
    b_orders = sorted_orders[idx]
    b_amount = None if amount_arr is None else amount_arr[order][idx]

    shops = []
    for g, code in enumerate(k_shop[starts]):
        k0, k1 = key_bounds[g], key_bounds[g + 1]
        o0, o1 = order_bounds[g], order_bounds[g + 1]
        v0, v1 = win_bounds[g], win_bounds[g + 1]
        buyers = buyer_uniques[k_buyer[k0:k1]]
        per_buyer = {b: int(c) for b, c in zip(buyers.tolist(), counts[k0:k1].tolist(), strict=True)}
        windows = tuple(
            BrushingWindow(
                start=_EPOCH + timedelta(microseconds=int(s_t[s])),
                end=_EPOCH + timedelta(microseconds=int(s_t[s]) + width),
                orders=int(e - s),
                buyers=int(d),
            )
            for s, e, d in zip(w_s[v0:v1], w_e[v0:v1], w_d[v0:v1], strict=True)
        )
        shops.append(
            ShopBrushing(
                shop_id=shop_uniques[code],
                suspicious=tuple(ascending(buyers[is_top[k0:k1]].tolist())),
                windows=windows,
                order_ids=tuple(b_orders[o0:o1].tolist()),
                buyer_orders=per_buyer,
                top_share=float(top[g]) / float(o1 - o0),
                amount=None if b_amount is None else float(b_amount[o0:o1].sum()),
            )
        )
    rank = {shop: i for i, shop in enumerate(all_shops)}
    shops.sort(key=lambda s: rank[s.shop_id])
    return BrushingReport(all_shops, tuple(shops))
