"""``riskctl reputation …``, ``riskctl complaints tick`` and ``riskctl strikes …``: the batch
and scheduler side of reputation, complaints and the seller ladder (run them from cron)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import orjson

from api import cliutil


@contextmanager
def _services() -> Iterator[tuple[Any, Any]]:
    from riskctl.complaints import ComplaintService, load_calendar
    from riskctl.pseudonym import Pseudonymizer
    from riskctl.reputation import ReputationConfig, ReputationStore

    cfg = cliutil.settings()
    calendar = load_calendar(cfg.complaint_calendar)
    with cliutil.redis_client(cfg) as client, cliutil.database(cfg) as (_, sessions):
        store = ReputationStore(
            sessions,
            client,
            Pseudonymizer(cfg.effective_pseudonym_key),
            ReputationConfig(half_life_days=cfg.reputation_half_life_days),
        )
        yield store, ComplaintService(sessions, store, calendar)


@click.group("reputation")
def reputation() -> None:
    """Reputation scores: fold in outcomes, rebuild the Redis mirror, explain a score."""


@reputation.command("update")
@click.option("--batch", type=click.IntRange(1, 1_000_000), default=50_000, help="decisions per run")
def reputation_update(batch: int) -> None:
    """Fold new decisions, resolved cases and upheld appeals into reputation (idempotent)."""
    with _services() as (store, _):
        click.echo(orjson.dumps(store.ingest(batch=batch)).decode())


@reputation.command("sync")
def reputation_sync() -> None:
    """Rebuild the Redis mirror that checks read from the database."""
    with _services() as (store, _):
        click.echo(f"{store.sync()} subjects mirrored")


@reputation.command("show")
@click.argument("subject_type", type=click.Choice(["buyer", "shop", "device", "complainant"]))
@click.argument("subject_id")
def reputation_show(subject_type: str, subject_id: str) -> None:
    """A score with the history that explains it (JSON)."""
    with _services() as (store, _):
        click.echo(orjson.dumps(store.explain(subject_type, subject_id), option=orjson.OPT_INDENT_2).decode())


@click.group("complaints")
def complaints() -> None:
    """Infringement complaints."""


@complaints.command("tick")
def complaints_tick() -> None:
    """Act on passed deadlines (taken down / restored), strike shops for confirmed abuse,
    take back strikes overturned on appeal and let the ladder step down as strikes decay."""
    with _services() as (_, svc):
        click.echo(orjson.dumps(svc.tick()).decode())


@click.group("strikes")
def strikes_group() -> None:
    """Strikes and the seller ladder."""


@strikes_group.command("remediate")
@click.argument("shop_id")
@click.option("--note", required=True, help="what the seller fixed")
@click.option("--actor", default="cli", show_default=True)
def strikes_remediate(shop_id: str, note: str, actor: str) -> None:
    """Clear a shop's strikes after remediation: it is reinstated (its steps' actions reversed)."""
    from riskctl import strikes
    from riskctl.errors import RiskctlError

    with _services() as (_, svc):
        try:
            with svc.sessions.begin() as session:
                old, new = strikes.remediate(
                    session.connection(), shop_id, svc.ladder, actor=actor, note=note
                )
        except RiskctlError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"{shop_id}: {svc.ladder.name(old)} -> {svc.ladder.name(new)}")


def register(main: click.Group) -> None:
    main.add_command(reputation)
    main.add_command(complaints)
    main.add_command(strikes_group)
