"""``riskctl scan coupons``: coupon farms and referral rings in the stored redemptions."""

from __future__ import annotations

import click
import orjson

from api import cliutil
from api.commands import scan


@scan.command("coupons")
@click.option("--since", default=None, help="redemptions from (inclusive), YYYY-MM-DD or ISO time")
@click.option("--until", default=None, help="redemptions until (exclusive), YYYY-MM-DD or ISO time")
@click.option(
    "--min-accounts",
    type=click.IntRange(2, 10_000),
    default=5,
    show_default=True,
    help="a farm: this many linked accounts redeeming one campaign",
)
@click.option(
    "--min-invitees",
    type=click.IntRange(2, 10_000),
    default=3,
    show_default=True,
    help="a referral ring: this many of one referrer's invitees in one link cluster",
)
@click.option(
    "--link-types",
    default=None,
    help="comma-separated: device,payment,address,ip24 (default: RISKCTL_COUPON_LINK_TYPES)",
)
@click.option("--dry-run", is_flag=True, help="report, but open no case")
def coupons(
    since: str | None,
    until: str | None,
    min_accounts: int,
    min_invitees: int,
    link_types: str | None,
    dry_run: bool,
) -> None:
    """Find coupon farms and referral rings; open (or join) one case per finding.

    Accounts are linked by a shared device, card or address (and /24 network with
    --link-types ...,ip24). Re-running over
    the same redemptions opens nothing new.
    """
    from riskctl.config import SETTINGS
    from riskctl.coupon_scan import scan_stored
    from riskctl.scans import record_findings

    cfg = cliutil.settings()
    links = cfg.coupon_link_types
    if link_types is not None:
        parse = next(s.parse for s in SETTINGS if s.name == "coupon_link_types")
        try:
            links = parse(link_types)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--link-types") from None
    with cliutil.database(cfg) as (engine, _):
        report = scan_stored(
            engine,
            since=cliutil.when(since),
            until=cliutil.when(until),
            min_accounts=min_accounts,
            min_invitees=min_invitees,
            link_types=links,
        )
        out = report.summary()
        if not dry_run:
            out["cases"] = record_findings(engine, cliutil.routing(cfg), report.findings).as_dict()
    out["findings"] = [
        {"key": f.key, "subject": f.subject_id, "title": f.title, "score": f.score, "members": len(f.members)}
        for f in report.findings
    ]
    click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
