"""``riskctl demo``: a simulated marketplace through the real service, scored against its truth.

Starts ``riskctl serve`` on a free loopback port with a fresh instance folder (or uses
``--url``/``--key``), sends the warm-up days, trains the detectors on them, streams the rest
with concurrent keep-alive connections, runs the batch scans, and prints and writes the
report (``report.html`` and ``report.json`` in the instance folder).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:  # numpy and the simulator load only when the demo runs
    from api.demo_report import CaseRow, Report, Result
    from fixtures.simulator import Marketplace, SimEvent

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalService:
    """``riskctl serve`` on loopback with its own instance folder."""

    url: str
    instance: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own executable, fixed arguments
            [str(BIN / "riskctl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def start_service(instance: Path, workers: int = 2, extra_env: dict[str, str] | None = None) -> LocalService:
    instance.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKCTL_")}
    env.update(
        {
            "RISKCTL_INSTANCE_PATH": str(instance.resolve()),
            "RISKCTL_HOST": "127.0.0.1",
            "RISKCTL_PORT": str(port),
            "RISKCTL_WORKERS": str(workers),
            "RISKCTL_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
    )
    from api.cliutil import database
    from riskctl.config import Settings
    from riskctl.migrate import upgrade

    with database(Settings.from_env(env)) as (engine, _):
        upgrade(engine)
    with open(instance / "serve.log", "wb") as log:
        proc = subprocess.Popen(  # noqa: S603
            [str(BIN / "riskctl"), "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    service = LocalService(f"http://127.0.0.1:{port}", instance, env, proc)
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(
                f"riskctl serve exited with {proc.returncode}; see {instance / 'serve.log'}"
            )
        try:
            if requests.get(f"{service.url}/readyz", timeout=1).status_code == 200:
                return service
        except requests.RequestException:
            time.sleep(0.2)
    service.stop()
    raise click.ClickException("riskctl serve did not become ready within 60 s")


def stream(
    url: str,
    key: str,
    events: Sequence[SimEvent],
    concurrency: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Result], float]:
    """POST every event to ``/v1/checks`` over ``concurrency`` keep-alive sessions, roughly in
    time order (each worker takes the next event). Returns results in input order and the
    wall time."""
    import requests

    from api.demo_report import Result

    results: list[Result | None] = [None] * len(events)
    lock = threading.Lock()
    cursor = iter(range(len(events)))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    errors: list[str] = []

    def worker() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                body = orjson.dumps(events[i].event)
                t0 = time.perf_counter()
                try:
                    r = session.post(f"{url}/v1/checks", data=body, headers=headers, timeout=30)
                    ms = (time.perf_counter() - t0) * 1000
                    if r.status_code == 200:
                        d = r.json()
                        results[i] = Result(
                            d["outcome"],
                            float(d["score"]),
                            ms,
                            tuple(x.get("code", "") for x in d.get("reasons", ())),
                            bool(d.get("degraded")),
                        )
                    else:
                        results[i] = Result("error", 0.0, ms)
                        if len(errors) < 5:
                            errors.append(f"{r.status_code}: {r.text[:200]}")
                except requests.RequestException as exc:
                    results[i] = Result("error", 0.0, (time.perf_counter() - t0) * 1000)
                    if len(errors) < 5:
                        errors.append(repr(exc))
                if progress is not None:
                    progress(1)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    for message in errors:
        click.echo(f"check failed: {message}", err=True)
    return [r if r is not None else Result("error", 0.0, 0.0) for r in results], wall


def _members(value: Any) -> Iterator[str]:
    """Entity ids a scan finding names (``members`` lists anywhere in its evidence)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "members" and isinstance(v, list):
                yield from (str(x) for x in v if isinstance(x, str | int))
            else:
                yield from _members(v)
    elif isinstance(value, list):
        for v in value:
            yield from _members(v)


def read_cases(instance_env: dict[str, str]) -> list[CaseRow]:
    """Every case in the service's database, with the time of its first event."""
    from sqlalchemy import func, select

    from api.cliutil import database
    from api.demo_report import CaseRow
    from riskctl.config import Settings
    from riskctl.models import Case, CaseDecision, Decision, EventRecord

    settings = Settings.from_env(instance_env)
    with database(settings) as (_engine, sessions), sessions() as session:
        first = dict(
            session.execute(
                select(CaseDecision.case_id, func.min(EventRecord.occurred_at))
                .join(Decision, Decision.id == CaseDecision.decision_id)
                .join(EventRecord, EventRecord.id == Decision.event_pk)
                .group_by(CaseDecision.case_id)
            ).all()
        )
        return [
            CaseRow(c.id, c.kind, c.subject_id, c.source, first.get(c.id), tuple(_members(c.evidence)))
            for c in session.scalars(select(Case))
        ]


def _create_key(env: dict[str, str]) -> str:
    from api.cliutil import database
    from riskctl.apikeys import create_key
    from riskctl.config import Settings

    with database(Settings.from_env(env)) as (_, sessions):
        return create_key(sessions, "riskctl demo", ["pipeline"])


def train_on_stored(env: dict[str, str]) -> list[dict[str, Any]]:
    from api.cli import train_detectors
    from riskctl.config import Settings

    return train_detectors(Settings.from_env(env), None, min_rows=50, quiet=True)


def available_scans() -> list[str]:
    from api.commands import scan

    return sorted(scan.commands)


@dataclass
class DemoRun:
    market: Marketplace
    sims: list[SimEvent]
    results: list[Result]
    report: Report
    instance: Path | None


def run_demo(
    *,
    seed: int,
    size: int,
    days: int,
    warmup_days: int,
    concurrency: int,
    out: Path | None,
    url: str | None,
    key: str | None,
    moderators: int,
    capacity: int,
    workers: int,
    scans: bool = True,
    html_report: bool = True,
    console: Any = None,
) -> DemoRun:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from api.demo_report import charts, render_html, score_run
    from fixtures.simulator import Marketplace

    console = console or Console(stderr=True)
    say = console.print
    phases: dict[str, float] = {}
    last = [time.perf_counter()]

    def mark(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(phases.get(name, 0.0) + now - last[0], 2)
        last[0] = now

    market = Marketplace(seed=seed, size=size, days=days, warmup_days=warmup_days)
    t0 = time.perf_counter()
    sims = list(market.events())
    eval_from = market.start + timedelta(days=warmup_days)
    warm = [s for s in sims if s.at < eval_from]
    rest = sims[len(warm) :]
    say(f"simulated {len(sims):,} events ({len(warm):,} warm-up) in {time.perf_counter() - t0:.1f}s")
    mark("simulate")
    service = None
    try:
        if url is None:
            fresh = out or Path("instance") / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
            if fresh.exists() and any(fresh.iterdir()):
                raise click.ClickException(f"{fresh} is not empty: the demo needs a fresh instance folder")
            say(f"starting riskctl serve with instance folder {fresh}")
            service = start_service(fresh, workers=workers)
            instance: Path | None = fresh
            url, key = service.url, _create_key(service.env)
            mark("start service")
        elif not key:
            raise click.UsageError("--url needs --key (a pipeline API key)")
        else:
            instance = out
        assert key is not None
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("warm-up traffic", total=len(warm))
            warm_results, warm_wall = stream(url, key, warm, concurrency, lambda n: bar.advance(task, n))
        mark("warm-up traffic")
        if service is not None:
            with console.status("training detectors on the warm-up period"):
                trained = train_on_stored(service.env)
            say(
                "trained: " + ", ".join(f"{r['detector']} ({r['status']}, {r['rows']} rows)" for r in trained)
            )
        else:
            say("training skipped: the service at --url trains with its own `riskctl train`")
        mark("train")
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("evaluation traffic", total=len(rest))
            rest_results, rest_wall = stream(url, key, rest, concurrency, lambda n: bar.advance(task, n))
        mark("evaluation traffic")
        results = warm_results + rest_results
        notes: list[str] = []
        cases = None
        if service is not None:
            if scans:
                before = len(read_cases(service.env))
                for name in available_scans():
                    t_scan = time.perf_counter()
                    with console.status(f"riskctl scan {name}"):
                        done = service.cli("scan", name)
                    after = len(read_cases(service.env))
                    state = "ok" if done.returncode == 0 else "failed"
                    say(
                        f"scan {name}: {state} in {time.perf_counter() - t_scan:.1f}s, {after - before} new cases"
                    )
                    before = after
                    if done.returncode:
                        notes.append(f"scan {name} failed: {done.stderr.strip()[-300:]}")
            cases = read_cases(service.env)
            mark("scans")
        report = score_run(
            sims,
            results,
            entity_labels=market.entity_labels,
            cases=cases,
            seed=seed,
            size=size,
            eval_from=eval_from,
            moderators=moderators,
            capacity_per_moderator=capacity,
            wall_seconds=warm_wall + rest_wall,
        )
        report.notes.extend(notes)
        report.phases = phases
        if instance is not None:
            instance.mkdir(parents=True, exist_ok=True)
            (instance / "report.json").write_bytes(
                orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
            )
            if html_report:
                with console.status("drawing charts"):
                    page = render_html(report, charts(sims, results, eval_from))
                (instance / "report.html").write_text(page, encoding="utf-8")
        mark("report")
        return DemoRun(market, sims, results, report, instance)
    finally:
        if service is not None:
            service.stop()


@click.command("demo")
@click.option("--seed", default=7, show_default=True, help="simulation seed (same seed, same traffic)")
@click.option(
    "--size", default=10_000, show_default=True, type=click.IntRange(2_000, 2_000_000), help="events"
)
@click.option("--days", default=14, show_default=True, type=click.IntRange(3, 365))
@click.option(
    "--warmup-days", default=4, show_default=True, type=click.IntRange(1, 364), help="trained on, not scored"
)
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="gunicorn workers")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="instance folder for the service and the report (default: instance/demo-<time>); with --url, where the report goes",
)
@click.option("--url", default=None, help="use this running service instead of starting one")
@click.option("--key", default=None, envvar="RISKCTL_DEMO_KEY", help="pipeline API key for --url")
@click.option("--moderators", default=3, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--capacity",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="cases per moderator per day",
)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def demo(
    seed: int,
    size: int,
    days: int,
    warmup_days: int,
    concurrency: int,
    workers: int,
    out: Path | None,
    url: str | None,
    key: str | None,
    moderators: int,
    capacity: int,
    as_json: bool,
) -> None:
    """Send a simulated marketplace with known abuse through the service and score what it caught."""
    from rich.console import Console

    from api.demo_report import print_report

    if warmup_days >= days:
        raise click.UsageError("--warmup-days must be less than --days")
    started = time.perf_counter()
    run = run_demo(
        seed=seed,
        size=size,
        days=days,
        warmup_days=warmup_days,
        concurrency=concurrency,
        out=out,
        url=url,
        key=key,
        moderators=moderators,
        capacity=capacity,
        workers=workers,
    )
    if as_json:
        click.echo(orjson.dumps(run.report.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    else:
        print_report(run.report, Console(width=120))
    if run.instance is not None:
        click.echo(f"report: {run.instance / 'report.html'}", err=True)
    click.echo(f"demo finished in {time.perf_counter() - started:.0f}s", err=True)
