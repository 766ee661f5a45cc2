"""``riskctl users …``, ``riskctl audit …``, ``riskctl cases …`` and ``riskctl outbox …``."""

from __future__ import annotations

import sys

import click

from api.cliutil import database as _database
from api.cliutil import settings as _settings
from riskctl.roles import Role


@click.group("users")
def users() -> None:
    """People who log in to the UI (argon2 password hashes, one role each)."""


@users.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
def users_create(username: str, role: str, password_stdin: bool) -> None:
    """Create a user; the password is prompted for (or read from stdin)."""
    from riskctl.errors import RiskctlError
    from riskctl.users import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with _database(_settings()) as (_, sessions):
        try:
            user_id = create_user(sessions, username, password, role)
        except RiskctlError as exc:
            raise click.ClickException(exc.detail) from None
    click.echo(user_id)


@users.command("list")
def users_list() -> None:
    """List users (name, role, active)."""
    from riskctl.users import list_users

    with _database(_settings()) as (_, sessions):
        for u in list_users(sessions):
            click.echo(f"{u.username}\t{u.role.value}\t{'active' if u.active else 'inactive'}\t{u.id}")


@users.command("deactivate")
@click.argument("username")
def users_deactivate(username: str) -> None:
    """Stop a user from logging in (the audit trail keeps their name)."""
    from riskctl.users import set_active

    with _database(_settings()) as (_, sessions):
        if not set_active(sessions, username, False):
            raise click.ClickException(f"no user {username!r}")


@click.group("audit")
def audit_group() -> None:
    """The hash-chained audit log."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Walk the chain; exit 1 naming the first edited, deleted or reordered row."""
    from riskctl.audit import verify

    with _database(_settings()) as (engine, _):
        report = verify(engine)
    if not report.ok:
        for problem in report.problems[:20]:
            click.echo(problem, err=True)
        click.echo(str(report), err=True)
        raise SystemExit(1)
    click.echo(str(report), err=True)


@click.group("cases")
def cases_group() -> None:
    """The enforcement queue."""


@cases_group.command("release-expired")
def cases_release_expired() -> None:
    """Return every case whose claim has lapsed to its queue."""
    from riskctl.casework import release_expired

    with _database(_settings()) as (_, sessions):
        n = release_expired(sessions)
    click.echo(f"released {n} expired claims", err=True)


@click.group("outbox")
def outbox_group() -> None:
    """Enforcement actions bound for the marketplace."""


@outbox_group.command("work")
@click.option("--once", is_flag=True, help="deliver what is due, then exit")
@click.option("--batch", default=20, show_default=True)
@click.option(
    "--lease",
    "lease_s",
    default=None,
    type=float,
    help="seconds an action stays taken before another worker may redeliver it (default 3x the timeout, min 60)",
)
def outbox_work(once: bool, batch: int, lease_s: float | None) -> None:
    """Deliver pending actions as signed webhooks (retries with backoff; SIGTERM stops cleanly)."""
    from riskctl.outbox import Deliverer, work

    settings = _settings()
    if not settings.webhook_url:
        raise click.ClickException("set RISKCTL_WEBHOOK_URL (and RISKCTL_WEBHOOK_SECRET) first")
    with _database(settings) as (engine, _):
        deliverer = Deliverer.from_settings(settings)
        try:
            stats = work(engine, deliverer, once=once, batch=batch, lease_s=lease_s)
        finally:
            deliverer.close()
    click.echo(f"delivered {stats['delivered']}, retried {stats['retried']}, dead {stats['dead']}", err=True)


@outbox_group.command("show")
@click.option("--status", default=None)
def outbox_show(status: str | None) -> None:
    """List actions with their delivery state."""
    from sqlalchemy import select

    from riskctl.models import OutboxAction

    with _database(_settings()) as (_, sessions), sessions() as session:
        q = select(OutboxAction).order_by(OutboxAction.created_at)
        if status:
            q = q.where(OutboxAction.status == status)
        for a in session.scalars(q):
            click.echo(f"{a.id}\t{a.type}\t{a.status}\t{a.attempts}\t{a.target}")


def register(main: click.Group) -> None:
    for group in (users, audit_group, cases_group, outbox_group):
        main.add_command(group)
