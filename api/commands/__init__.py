"""``riskctl scan …`` and ``riskctl eval …``: one module per scan or evaluation.

Each module defines its command on the :data:`scan` or :data:`evaluate` group; :func:`register`
imports them all and attaches the groups to the main command.
"""

from __future__ import annotations

import importlib
import pkgutil

import click


@click.group("scan")
def scan() -> None:
    """Batch scans over stored (or given) data: they open cases and feed lists."""


@click.group("eval")
def evaluate() -> None:
    """Measure detection quality on labelled data."""


def register(main: click.Group) -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    main.add_command(scan)
    main.add_command(evaluate)
