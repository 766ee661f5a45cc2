"""gunicorn settings for ``riskctl serve``, read from RISKCTL_* like everything else."""

from __future__ import annotations

import importlib
import os

from riskctl.config import Settings

_settings = Settings.from_env()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread" if _settings.threads > 1 else "sync"
timeout = _settings.worker_timeout_s
graceful_timeout = _settings.graceful_timeout_s
keepalive = 5
# Our own JSON access log carries the request id and no client IP; gunicorn's would log it.
accesslog = None
errorlog = "-"
loglevel = "warning"
preload_app = False  # each worker opens its own database and Redis connections

# Import the app's modules (scipy, the review text model, datasketch, ...) once, here in the
# master: a worker forked to replace a crashed or killed one then only builds the app (about
# a second) instead of importing for five seconds or more first. No app, no connection is
# made here; prometheus_client's multiprocess values notice the fork and switch files.
for _module in (
    "api.runtime",
    "api.checks",
    "api.cases",
    "api.complaints",
    "api.lists",
    "api.reputation",
    "api.health",
    "api.openapi",
    "api.problems",
    "api.observability",
    "api.ui",
):
    importlib.import_module(_module)

max_requests = 0


def child_exit(server: object, worker: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


def post_worker_init(worker: object) -> None:
    """Move everything the worker loaded (modules, rule packs, detector models) out of the
    cyclic garbage collector's sight. Without it, an oldest-generation collection walks that
    whole heap from inside a request: 150-600 ms stalls, the open-loop p99 of the check API."""
    import gc

    gc.collect()
    gc.freeze()
