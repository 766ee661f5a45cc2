"""``riskctl scan brushing``: order brushing in a CSV file or in the stored order events."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from api import cliutil
from api.commands import scan

if TYPE_CHECKING:
    from rich.console import Console

    from detectors.brushing import BrushingReport


@scan.command("brushing")
@click.option(
    "--orders",
    "orders_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV of orderid,shopid,userid,event_time to scan instead of the stored orders (no database)",
)
@click.option("--out", "out", default=None, help="write shopid,userid for every shop here ('-': stdout)")
@click.option("--since", default=None, help="stored orders from (inclusive), YYYY-MM-DD or ISO time")
@click.option("--until", default=None, help="stored orders until (exclusive), YYYY-MM-DD or ISO time")
@click.option(
    "--block-buyers",
    is_flag=True,
    help="also put the suspicious buyers on the block list (stored orders only)",
)
@click.option("--dry-run", is_flag=True, help="stored orders: report, but open no case")
def brushing(
    orders_path: Path | None,
    out: str | None,
    since: str | None,
    until: str | None,
    block_buyers: bool,
    dry_run: bool,
) -> None:
    """Find shops whose orders/buyers ratio reaches 3 within an hour, and their top buyers.

    With --orders the CSV is scanned and the result written to --out; without it the stored
    order events are scanned and every brushing shop opens (or joins) a case in its queue.
    """
    from rich.console import Console
    from rich.table import Table

    from riskctl import brushing_scan as bs
    from riskctl.errors import ValidationFailed
    from riskctl.scans import ListFeed, record_findings

    console = Console(stderr=out == "-")
    if orders_path is not None:
        if since or until or block_buyers:
            raise click.UsageError("--since/--until/--block-buyers apply to stored orders, not to --orders")
        if out is None:
            raise click.UsageError("--orders needs --out (a file, or '-' for stdout)")
        try:
            orders = bs.read_orders_csv(orders_path)
        except ValidationFailed as exc:
            raise click.ClickException(exc.detail or str(exc)) from None
        report = bs.scan_orders(orders)
        _write(report, out)
        _print_summary(console, bs.summary(report), None)
        return

    cfg = cliutil.settings()
    start, end = cliutil.when(since), cliutil.when(until)
    with cliutil.database(cfg) as (engine, _):
        orders = bs.load_stored_orders(engine, since=start, until=end)
        report = bs.scan_orders(orders)
        found = bs.findings(report)
        if block_buyers:
            found = [
                replace(
                    f,
                    feeds=tuple(
                        ListFeed("block", "account", m, f"order brushing at shop {f.subject_id}")
                        for m in f.members
                    ),
                )
                for f in found
            ]
        recorded = None
        if found and not dry_run:
            if block_buyers:
                with cliutil.list_store() as store:
                    recorded = record_findings(engine, cliutil.routing(cfg), found, list_store=store)
            else:
                recorded = record_findings(engine, cliutil.routing(cfg), found)
    if out is not None:
        _write(report, out)
    _print_summary(console, bs.summary(report), recorded.as_dict() if recorded else None)
    if report.shops:
        table = Table(title="brushing shops")
        for col in ("shop", "suspicious buyers", "orders", "windows", "top share", "max ratio"):
            table.add_column(col)
        for shop in report.shops[:50]:
            table.add_row(
                str(shop.shop_id),
                "&".join(str(b) for b in shop.suspicious),
                str(len(shop.order_ids)),
                str(len(shop.windows)),
                f"{shop.top_share:.0%}",
                f"{shop.max_ratio:.2f}",
            )
        console.print(table)


def _write(report: BrushingReport, out: str) -> None:
    from riskctl.brushing_scan import write_table

    write_table(report, sys.stdout if out == "-" else out)


def _print_summary(console: Console, summary: dict[str, Any], recorded: dict[str, Any] | None) -> None:
    from rich.table import Table

    table = Table(title="brushing scan", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in {**summary, **(recorded or {})}.items():
        table.add_row(name.replace("_", " "), str(value))
    console.print(table)
