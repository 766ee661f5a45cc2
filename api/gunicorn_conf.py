"""gunicorn settings for ``riskctl serve``, read from RISKCTL_* like everything else."""

from __future__ import annotations

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
max_requests = 0


def child_exit(server: object, worker: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
