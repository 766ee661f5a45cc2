"""``riskctl scan listings``: stored listings re-matched against the (updated) brand registry."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from api import cliutil
from api.commands import scan


@scan.command("listings")
@click.option("--since", default=None, help="listings from (inclusive), YYYY-MM-DD or ISO time")
@click.option("--until", default=None, help="listings until (exclusive), YYYY-MM-DD or ISO time")
@click.option(
    "--registry",
    "registry_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="brand registry YAML (default: RISKCTL_BRAND_REGISTRY)",
)
@click.option(
    "--min-score",
    type=click.FloatRange(1, 100),
    default=50.0,
    show_default=True,
    help="open a case from this evidence score (the brand rules' weights)",
)
@click.option("--dry-run", is_flag=True, help="report, but open no case")
def listings(
    since: str | None, until: str | None, registry_path: Path | None, min_score: float, dry_run: bool
) -> None:
    """Re-match stored listings against the brand registry; open (or join) the shop's IP case.

    Run it after the registry changes (a new brand, product name, image or a revoked shop).
    Re-running changes nothing: a listing joins its shop's case once per brand.
    """
    from riskctl.brand_registry import compile_registry
    from riskctl.errors import ConfigError
    from riskctl.listing_scan import scan_stored
    from riskctl.scans import record_findings

    cfg = cliutil.settings()
    try:
        matcher = compile_registry(registry_path or cfg.brand_registry)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    with cliutil.database(cfg) as (engine, _):
        report = scan_stored(engine, matcher, since=cliutil.when(since), until=cliutil.when(until), min_score=min_score)
        out = report.summary()
        if not dry_run:
            out["cases"] = record_findings(engine, cliutil.routing(cfg), report.findings).as_dict()
    out["listings"] = [
        {"key": f.key, "shop": f.subject_id, "score": f.score, "title": f.title} for f in report.findings
    ]
    click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
