"""A live ``riskctl serve`` (gunicorn + embedded Redis) on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    instance: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str]

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [str(BIN / "riskctl"), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def start_server(instance: Path, workers: int = 2, extra_env: dict[str, str] | None = None) -> LiveServer:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKCTL_")}
    env.update(
        {
            "RISKCTL_ENV": "testing",
            "RISKCTL_INSTANCE_PATH": str(instance),
            "RISKCTL_PORT": str(port),
            "RISKCTL_WORKERS": str(workers),
            "RISKCTL_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
    )
    subprocess.run(
        [str(BIN / "riskctl"), "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60
    )
    with open(instance.parent / f"serve-{port}.log", "wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "riskctl"), "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"riskctl serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                if r.status == 200:
                    return LiveServer(url, instance, proc, env)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("riskctl serve did not become ready")
