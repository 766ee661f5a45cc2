"""``riskctl scan rings``: brushing rings in the stored order events, one case per ring."""

from __future__ import annotations

from typing import Any

import click
import orjson

from api import cliutil
from api.commands import scan


@scan.command("rings")
@click.option("--since", default=None, help="stored orders from (inclusive), YYYY-MM-DD or ISO time")
@click.option("--until", default=None, help="stored orders until (exclusive), YYYY-MM-DD or ISO time")
@click.option(
    "--max-rings", default=10, show_default=True, type=click.IntRange(1, 1000), help="rings to look for"
)
@click.option(
    "--min-score",
    default=50.0,
    show_default=True,
    type=click.FloatRange(0, 100),
    help="rings scoring below this are shown but open no case",
)
@click.option("--dry-run", is_flag=True, help="report, but open no case")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def rings(
    since: str | None, until: str | None, max_rings: int, min_score: float, dry_run: bool, as_json: bool
) -> None:
    """Find rings of buyers linked by shared devices, addresses and cards that buy from one shop.

    Dense blocks of the buyer x (shop, device, address, card) graph (FRAUDAR peeling); every
    ring scoring at least --min-score opens (or joins) a case about its main shop.
    """
    from riskctl.ring_scan import scan_rings
    from riskctl.scans import record_findings

    cfg = cliutil.settings()
    start, end = cliutil.when(since), cliutil.when(until)
    if start and end and start >= end:
        raise click.BadParameter("--since must be before --until")
    with cliutil.database(cfg) as (engine, _):
        result = scan_rings(engine, since=start, until=end, max_rings=max_rings, min_score=min_score)
        recorded = None
        if result.findings and not dry_run:
            recorded = record_findings(engine, cliutil.routing(cfg), result.findings)
    cases = dict(zip((f.key for f in result.findings), recorded.case_ids, strict=True)) if recorded else {}
    rows = [
        {**ring.as_dict(), "case_id": cases.get(f"rings:{ring.ring_id}"), "reported": ring.score >= min_score}
        for ring in result.rings
    ]
    summary = {**result.as_dict(), **(recorded.as_dict() if recorded else {}), "dry_run": dry_run}
    if as_json:
        click.echo(orjson.dumps({"summary": summary, "rings": rows}, option=orjson.OPT_INDENT_2).decode())
        return
    _print(summary, rows)


def _print(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(
        ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items() if k != "dry_run")
        + (" (dry run: no case opened)" if summary["dry_run"] else "")
    )
    if not rows:
        return
    table = Table(title="brushing rings")
    for col in (
        "ring",
        "main shop",
        "buyers",
        "shops",
        "shared d/a/p",
        "orders",
        "amount",
        "x bg",
        "score",
        "case",
    ):
        table.add_column(col, justify="left" if col in {"ring", "main shop", "case"} else "right")
    for r in rows:
        ent = r["entities"]
        table.add_row(
            r["ring_id"],
            escape(r["shops"][0]),
            str(len(r["buyers"])),
            str(len(r["shops"])),
            "/".join(str(len(ent.get(k, []))) for k in ("device", "address", "payment")),
            str(r["orders"]),
            f"{r['amount']:,.2f}",
            f"{r['ratio']:.1f}",
            f"{r['score']:.0f}" + ("" if r["reported"] else " (below)"),
            r["case_id"] or "-",
        )
    console.print(table)
