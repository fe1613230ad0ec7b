"""Helpers for the service tests: the real `cxlens serve` in a subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `cxlens serve` process; `url` once it answers /healthz."""

    def __init__(self, workspace: Path, *args: str, port: int | None = None):
        self.workspace, self.args = workspace, args
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workspace.with_name(f"serve-{self.port}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Server:
        exe = Path(sys.executable).parent / "cxlens"
        env = {**os.environ, "NO_COLOR": "1"}
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen([str(exe), "--workspace", str(self.workspace), "serve", "--port", str(self.port),
                                          *self.args], stdout=fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cxlens serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"cxlens serve did not answer in {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        return self.proc.returncode

    def wait_loaded(self, timeout: float = 60) -> None:
        """Until the spool is empty and no load is running (the backlog counts pending events)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = httpx.get(self.url + "/healthz", timeout=5).json()
            if health["backlog"] == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"the spool was not loaded in {timeout} s: {health}")


def new_key(workspace: Path, scope: str, *extra: str) -> dict:
    out = run_cli("keys", "create", "--scope", scope, *extra, "--format", "json", workspace=workspace)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
