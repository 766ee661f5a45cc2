"""Order-brushing scan benchmark: 1,000,000 orders, CSV in → CSV out, and the detector alone.

    python bench/bench_brushing.py [--orders 1000000] [--runs 3] [--baseline-orders 20000]

Data: shop sizes are heavy-tailed (Pareto, a few shops with tens of thousands of orders,
most with a handful), buyers Zipf-like over a pool a third the size of the orders, times
uniform over a week at one-second resolution, plus injected brushing: bursts of 4-12 orders
from one or two accounts inside 40 minutes at a few hundred shops.

It prints the median of ``--runs`` runs of
* end to end: ``read_orders_csv`` → ``scan_orders`` → ``write_table`` (what ``riskctl scan
  brushing --orders IN --out OUT`` does, without the process start);
* the detector alone (``detect_brushing`` on arrays already in memory);
* the same detector with the kernel as plain Python (a host without numba), on the subsample;
* a naive pandas baseline (per shop, per order time: a boolean mask over the shop's orders,
  ``nunique`` of the buyers) on a ``--baseline-orders`` subsample, with a check that it
  gives the same table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import detectors.brushing as brushing  # noqa: E402
from detectors._jit import HAVE_NUMBA, python_version  # noqa: E402
from riskctl.brushing_scan import read_orders_csv, scan_orders, write_table  # noqa: E402

WEEK = 7 * 86_400
START = np.datetime64("2026-11-01T00:00:00", "s")


def make_orders(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_brush_shops = max(1, n // 2500)
    burst_sizes = rng.integers(4, 13, n_brush_shops)
    n_background = n - int(burst_sizes.sum())
    # heavy-tailed shop sizes: Pareto weights over n/20 shops
    n_shops = max(1, n // 20)
    weights = rng.pareto(1.2, n_shops) + 1.0
    shop = rng.choice(n_shops, size=n_background, p=weights / weights.sum())
    n_buyers = max(1, n // 3)
    buyer = np.minimum(rng.zipf(1.3, n_background), n_buyers) - 1
    buyer = (
        buyer * 7919 + rng.integers(0, n_buyers, n_background) * (rng.random(n_background) < 0.7)
    ) % n_buyers
    t = rng.integers(0, WEEK, n_background)

    brush_shop = rng.choice(n_shops, n_brush_shops, replace=False)
    b_shop = np.repeat(brush_shop, burst_sizes)
    b_start = np.repeat(rng.integers(0, WEEK - 3600, n_brush_shops), burst_sizes)
    b_t = b_start + rng.integers(0, 2400, b_shop.size)
    ring = rng.integers(0, n_buyers, (n_brush_shops, 2))
    which = rng.integers(0, 2, b_shop.size) * (rng.random(b_shop.size) < 0.3)
    b_buyer = ring[np.repeat(np.arange(n_brush_shops), burst_sizes), which]

    shop = np.r_[shop, b_shop]
    buyer = np.r_[buyer, b_buyer]
    t = np.r_[t, b_t]
    perm = rng.permutation(n)
    return pd.DataFrame(
        {
            "orderid": np.arange(31_000_000_000, 31_000_000_000 + n),
            "shopid": shop[perm] + 10_000,
            "userid": buyer[perm] + 1_000_000,
            "event_time": (START + t[perm]).astype("datetime64[s]"),
        }
    )


def naive_pandas(orders: pd.DataFrame) -> pd.DataFrame:
    """The definition with pandas, no cleverness: O(orders^2) per shop."""
    hour = pd.Timedelta(hours=1)
    rows = []
    for shop, g in orders.groupby("shopid", sort=False):
        brushing_rows = np.zeros(len(g), dtype=bool)
        times = g["event_time"]
        for t in times.unique():
            mask = ((times >= t) & (times <= t + hour)).to_numpy()
            inside = g["userid"][mask]
            if len(inside) >= 3 * inside.nunique():
                brushing_rows |= mask
        if not brushing_rows.any():
            rows.append((str(shop), "0"))
            continue
        counts = g["userid"][brushing_rows].value_counts()
        top = counts[counts == counts.max()].index
        rows.append((str(shop), "&".join(brushing.ascending([str(u) for u in top]))))
    table = pd.DataFrame(rows, columns=["shopid", "userid"])
    return table


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline-orders", type=int, default=20_000)
    args = ap.parse_args()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus (load {load}), numba={HAVE_NUMBA}")
    t0 = time.perf_counter()
    orders = make_orders(args.orders)
    sizes = orders["shopid"].value_counts()
    print(
        f"generated {len(orders):,} orders in {time.perf_counter() - t0:.1f}s: {len(sizes):,} shops "
        f"(largest {sizes.iloc[0]:,}, median {int(sizes.median())}), {orders['userid'].nunique():,} buyers"
    )
    with tempfile.TemporaryDirectory(prefix="bench_brushing_") as tmp:
        src, dst = Path(tmp) / "orders.csv", Path(tmp) / "out.csv"
        orders.assign(event_time=orders["event_time"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(
            src, index=False
        )
        # warm the kernel (numba compile or cache load) outside the timings
        brushing.detect_brushing([1], [1], [0])

        def end_to_end() -> int:
            return write_table(scan_orders(read_orders_csv(src)), dst)

        e2e, n_rows = timed(end_to_end, args.runs)
        out = pd.read_csv(dst, dtype=str)
        n_brushing = int((out["userid"] != "0").sum())

    frame = read_orders_csv_from(orders)
    det, report = timed(lambda: scan_orders(frame), args.runs)
    print(
        f"shops in the output: {n_rows:,}; brushing shops: {n_brushing:,} ({len(report.shops):,} in memory)"
    )
    print(f"end to end (CSV -> CSV)  median {e2e:6.2f}s  {len(orders) / e2e:>12,.0f} orders/s")
    print(f"detector alone           median {det:6.2f}s  {len(orders) / det:>12,.0f} orders/s")

    sub = subsample(frame, args.baseline_orders)
    fast_t, fast_report = timed(lambda: scan_orders(sub), args.runs)
    naive_t, naive_table = timed(lambda: naive_pandas(sub), 1)
    ours = fast_report.table()
    same = (
        ours.set_index("shopid")["userid"]
        .sort_index()
        .equals(naive_table.set_index("shopid")["userid"].sort_index())
    )
    compiled = brushing._scan_windows
    brushing._scan_windows = python_version(compiled)  # type: ignore[assignment]
    try:
        py_t, py_report = timed(lambda: scan_orders(sub), args.runs)
    finally:
        brushing._scan_windows = compiled  # type: ignore[assignment]
    same_py = py_report.table().equals(ours)
    print(f"subsample of {len(sub):,} orders in {sub['shopid'].nunique():,} shops:")
    print(f"  detector (numba)       median {fast_t:7.3f}s  {len(sub) / fast_t:>12,.0f} orders/s")
    print(
        f"  detector (pure Python) median {py_t:7.3f}s  {len(sub) / py_t:>12,.0f} orders/s  same table: {same_py}"
    )
    print(
        f"  naive pandas (1 run)          {naive_t:7.3f}s  {len(sub) / naive_t:>12,.0f} orders/s  same table: {same}"
    )
    print(f"  speed-up over naive pandas: {naive_t / fast_t:,.0f}x")


def read_orders_csv_from(orders: pd.DataFrame) -> pd.DataFrame:
    """The frame ``read_orders_csv`` would give (ids as text), without the file."""
    return pd.DataFrame(
        {
            "orderid": orders["orderid"].astype(str),
            "shopid": orders["shopid"].astype(str),
            "userid": orders["userid"].astype(str),
            "event_time": orders["event_time"].to_numpy(dtype="datetime64[us]"),
        }
    )


def subsample(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Whole shops (a window needs all of a shop's orders), up to about ``n`` orders."""
    rng = np.random.default_rng(1)
    shops = np.asarray(frame["shopid"].unique(), dtype=object)
    rng.shuffle(shops)
    sizes = frame["shopid"].value_counts()
    keep, total = [], 0
    for s in shops:
        if total + sizes[s] > n:
            continue
        keep.append(s)
        total += int(sizes[s])
        if total >= n * 0.98:
            break
    return frame[frame["shopid"].isin(set(keep))].reset_index(drop=True)


if __name__ == "__main__":
    main()
