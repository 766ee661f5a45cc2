"""The order-brushing scan: orders in (a CSV file or the stored order events), findings out.

Two sources, one detector (:mod:`detectors.brushing`):

* a CSV file ``orderid,shopid,userid,event_time`` (``event_time`` as ``YYYY-MM-DD HH:MM:SS``,
  taken as UTC), the format marketplaces export — no database needed;
* the ``order`` events stored by risk checks: the shop and buyer ids are the stored
  ``shop_id`` / ``subject_id`` columns (raw account ids; only devices, IPs, cards and
  addresses are pseudonymised), the order id is the payload's ``order_id``, and the amount is
  kept so a finding carries the money at stake.

Both give a ``shopid,userid`` table with one row per shop of the input (``0`` or the
suspicious buyers ascending, joined by ``&``); the stored path also gives one
:class:`~riskctl.scans.Finding` per brushing shop for :func:`riskctl.scans.record_findings`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from detectors.brushing import THRESHOLD, BrushingReport, ShopBrushing, detect_brushing
from riskctl.errors import ValidationFailed
from riskctl.models import EventRecord
from riskctl.scans import Finding

CSV_COLUMNS = ("orderid", "shopid", "userid", "event_time")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_EVIDENCE_WINDOWS = 20
MAX_EVIDENCE_ORDERS = 100
MAX_EVIDENCE_BUYERS = 20
# ``shopid,userid`` is an interchange format: its consumers need the ids exactly, so an id is
# never rewritten on the way out. An id a spreadsheet would run as a formula (leading ``=``,
# ``+``, ``-``, ``@``, tab or CR, other than a plain integer such as ``-5``), or one holding
# the ``&`` that joins userids, or a line break, cannot be written both exactly and safely:
# the orders CSV with one is refused instead.
_HOSTILE_CHARS = "=+-@\t\r\n&"
_HOSTILE_ID = re.compile(r"^(?!-?\d+$)[=+\-@\t\r]|[&\r\n]")


def read_orders_csv(source: str | Path | IO[str]) -> pd.DataFrame:
    """Orders from ``orderid,shopid,userid,event_time``; ids are kept as text, exactly."""
    try:
        # object, not str: pandas' string dtype re-validates every cell (~25% slower here);
        # only an empty cell is missing ("NA", "null" are ids like any other)
        frame = pd.read_csv(source, dtype=object, keep_default_na=False, na_values=[""])
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"orders CSV: {exc}") from None
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationFailed(
            f"orders CSV: missing column(s) {', '.join(missing)}; expected {','.join(CSV_COLUMNS)}"
        )
    for col in CSV_COLUMNS:
        empty = frame[col].isna().to_numpy()
        if empty.any():
            raise ValidationFailed(f"orders CSV: empty {col} on data row {int(np.argmax(empty)) + 1}")
    for col in ("shopid", "userid"):
        _refuse_hostile_ids(frame[col], col)
    times = pd.to_datetime(frame["event_time"], format=TIME_FORMAT, errors="coerce")
    bad = times.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise ValidationFailed(
            f"orders CSV: event_time {frame['event_time'].iloc[row]!r} on data row {row + 1} "
            "is not YYYY-MM-DD HH:MM:SS"
        )
    return pd.DataFrame(
        {
            "orderid": frame["orderid"],
            "shopid": frame["shopid"],
            "userid": frame["userid"],
            "event_time": times.to_numpy(dtype="datetime64[us]"),
        }
    )


def _refuse_hostile_ids(ids: pd.Series, col: str) -> None:
    values = [str(v) for v in ids.tolist()]
    joined = "\x00".join(values)
    if not any(c in joined for c in _HOSTILE_CHARS):  # the common case, ~40 ms per million ids
        return
    for row, value in enumerate(values, start=1):
        if _HOSTILE_ID.search(value):
            raise ValidationFailed(
                f"orders CSV: {col} {value[:40]!r} on data row {row} would run as a spreadsheet formula "
                "or break the '&'-joined output; ids are written back exactly, so it is refused"
            )


def load_stored_orders(
    engine: Engine, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """The stored order events in ``[since, until)``, one row per order id (first event wins)."""
    order_id = EventRecord.payload["order_id"].as_string()
    query = (
        select(
            EventRecord.event_id,
            order_id,
            EventRecord.shop_id,
            EventRecord.subject_id,
            EventRecord.occurred_at,
            EventRecord.amount,
        )
        .where(
            EventRecord.kind == "order",
            EventRecord.shop_id.is_not(None),
            EventRecord.subject_id.is_not(None),
        )
        .order_by(EventRecord.id)
    )
    if since is not None:
        query = query.where(EventRecord.occurred_at >= since)
    if until is not None:
        query = query.where(EventRecord.occurred_at < until)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return _empty_orders()
    event_ids, order_ids, shops, buyers, times, amounts = zip(*rows, strict=True)
    frame = pd.DataFrame(
        {
            "orderid": [o or e for o, e in zip(order_ids, event_ids, strict=True)],
            "shopid": list(shops),
            "userid": list(buyers),
            # aware UTC in; naive UTC microseconds for the detector
            "event_time": np.array([t.replace(tzinfo=None) for t in times], dtype="datetime64[us]"),
            "amount": np.array([np.nan if a is None else a for a in amounts], dtype=np.float64),
        }
    )
    # The same order sent twice (a retry under a new event id) is one order, not two.
    return frame.drop_duplicates("orderid", keep="first").reset_index(drop=True)


def _empty_orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "orderid": pd.Series([], dtype=object),
            "shopid": pd.Series([], dtype=object),
            "userid": pd.Series([], dtype=object),
            "event_time": pd.Series([], dtype="datetime64[us]"),
            "amount": pd.Series([], dtype=np.float64),
        }
    )


def scan_orders(orders: pd.DataFrame, *, threshold: float = THRESHOLD) -> BrushingReport:
    amounts = orders["amount"].to_numpy() if "amount" in orders.columns else None
    if amounts is not None and np.isnan(amounts).all():
        amounts = None
    return detect_brushing(
        orders["shopid"].to_numpy(),
        orders["userid"].to_numpy(),
        orders["event_time"].to_numpy(),
        order_ids=orders["orderid"].to_numpy(),
        amounts=None if amounts is None else np.nan_to_num(amounts, nan=0.0),
        threshold=threshold,
    )


def write_table(report: BrushingReport, out: str | Path | IO[str]) -> int:
    """Write ``shopid,userid`` for every shop; returns the number of rows."""
    table = report.table()
    table.to_csv(out, index=False, lineterminator="\n")
    return len(table)


def finding_key(shop: ShopBrushing) -> str:
    """Same brushing orders → same key, so a re-run over the same data changes nothing."""
    digest = hashlib.sha256("\x1f".join(sorted(str(o) for o in shop.order_ids)).encode()).hexdigest()[:16]
    first = shop.windows[0].start.strftime("%Y-%m-%dT%H:%M")
    return f"brushing:{shop.shop_id}:{first}:{digest}"


def score(shop: ShopBrushing, threshold: float = THRESHOLD) -> float:
    """60 at the threshold, +10 per order-per-buyer above it, at most 100."""
    return float(min(100.0, 60.0 + 10.0 * (shop.max_ratio - threshold)))


def findings(report: BrushingReport, *, threshold: float = THRESHOLD) -> list[Finding]:
    out = []
    for shop in report.shops:
        n_orders = len(shop.order_ids)
        buyers = ", ".join(str(b) for b in shop.suspicious)
        windows = shop.windows
        top_buyers = sorted(((str(b), c) for b, c in shop.buyer_orders.items()), key=lambda x: (-x[1], x[0]))
        out.append(
            Finding(
                detector="brushing",
                key=finding_key(shop),
                kind="order",
                subject_id=str(shop.shop_id),
                shop_id=str(shop.shop_id),
                title=(
                    f"Order brushing at shop {shop.shop_id}: {n_orders} orders in {len(windows)} "
                    f"window(s), top buyer(s) {buyers}"
                ),
                score=score(shop, threshold),
                money=shop.amount,
                members=tuple(str(b) for b in shop.suspicious),
                evidence={
                    "rule": f"orders / distinct buyers >= {threshold:g} within 1 hour",
                    "first_window": windows[0].start.isoformat(),
                    "last_window": windows[-1].start.isoformat(),
                    "window_count": len(windows),
                    "windows": [w.as_dict() for w in windows[:MAX_EVIDENCE_WINDOWS]],
                    "brushing_orders": n_orders,
                    "order_ids": [str(o) for o in shop.order_ids[:MAX_EVIDENCE_ORDERS]],
                    "buyer_orders": dict(top_buyers[:MAX_EVIDENCE_BUYERS]),
                    "top_share": round(shop.top_share, 4),
                    "max_ratio": round(shop.max_ratio, 3),
                },
            )
        )
    return out


def summary(report: BrushingReport) -> dict[str, Any]:
    return {
        "shops": len(report.shop_ids),
        "brushing_shops": len(report.shops),
        "brushing_orders": sum(len(s.order_ids) for s in report.shops),
        "suspicious_buyers": sum(len(s.suspicious) for s in report.shops),
    }
