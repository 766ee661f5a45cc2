"""CSV for people: cells a spreadsheet would run as a formula are defused.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line
feed is a formula (or becomes one) in Excel, LibreOffice and Google Sheets; exported user
text (a case title built from a listing title, an appeal reason) must never run on an
analyst's machine. Such a cell is written with a leading ``'``, the spreadsheets' own
"this is text" marker (OWASP's CSV injection advice). Numbers are written as numbers:
``-5`` is a value, not a formula.

Interchange formats that programs read (the brushing scan's ``shopid,userid``) are not
written through here: their consumers need exact values, so their reader refuses the ids
that would be hostile instead (see :func:`riskctl.brushing_scan.read_orders_csv`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """RFC 4180 CSV (CRLF, quoted where needed) with every cell through :func:`safe_cell`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return buf.getvalue()
