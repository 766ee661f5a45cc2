"""Job processes for the SQLite fault test, run as ``python -m tests.faults.jobs MODE SECONDS``.

``casework``: claim and resolve open cases with an action, over and over. Domain refusals
(a case someone else holds, a move its state does not allow) are counted and skipped.
``cli``: the batch commands (reputation update, scans with list feeds) round after round,
in one process so that the commands run instead of Python starting up.

Either stops after ``SECONDS`` (``cli`` after one round at least); a database error is not
caught, so a "database is locked" shows in the output and the exit status."""

from __future__ import annotations

import sys
import time

from riskctl import casework
from riskctl.config import Settings
from riskctl.db import make_engine, make_sessionmaker
from riskctl.errors import RiskctlError

COMMANDS = (
    ["reputation", "update", "--batch", "50000"],
    ["scan", "brushing", "--block-buyers"],
    ["scan", "coupons"],
    ["cases", "release-expired"],
)


def resolve_cases(seconds: float) -> None:
    settings = Settings.from_env()
    engine = make_engine(settings.effective_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    sessions = make_sessionmaker(engine)
    resolved = refused = passes = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            passes += 1
            for case in casework.list_queue(sessions, limit=20):
                if case.status != "open":
                    continue
                try:
                    casework.claim(sessions, case.id, "job-bot")
                    casework.resolve(
                        sessions,
                        case.id,
                        "job-bot",
                        "confirmed_abuse",
                        note="fault test",
                        actions=["warn_seller"],
                    )
                    resolved += 1
                except RiskctlError:
                    refused += 1
            time.sleep(0.05)
    finally:
        engine.dispose()
    print(f"passes={passes} resolved={resolved} refused={refused}", flush=True)


def run_commands(seconds: float) -> None:
    from api.cli import main

    deadline = time.monotonic() + seconds
    runs = 0
    while runs < len(COMMANDS) or time.monotonic() < deadline:
        command = COMMANDS[runs % len(COMMANDS)]
        started = time.monotonic()
        main.main(command, standalone_mode=False)
        print(
            f"ran {' '.join(command)} in {time.monotonic() - started:.2f} s at {time.time():.2f}", flush=True
        )
        runs += 1
    print(f"commands={runs}", flush=True)


if __name__ == "__main__":
    {"casework": resolve_cases, "cli": run_commands}[sys.argv[1]](float(sys.argv[2]))
