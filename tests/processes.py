"""Helpers to run the `tokenhouse` command as real subprocesses (the CLI tests, and the live
server of the acceptance tests in tests/live_server.py).

Every process started here is stopped by its own id: SIGTERM first, SIGKILL of its process group
(the server and, with --workers, its worker processes) if it does not stop in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

COMMAND_TIMEOUT = 60.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def tokenhouse_script() -> Path:
    """The `tokenhouse` console script next to the interpreter running the tests."""
    script = Path(sys.executable).parent / "tokenhouse"
    if not script.exists():
        raise RuntimeError(f"no tokenhouse script next to {sys.executable} (expected {script}); "
                           "run 'make install-test'")
    return script


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment of the tests without any TOKENHOUSE_ variable, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHOUSE_")}
    env.update(overrides)
    return env


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run `tokenhouse <args>` to completion in `cwd` (no stdin); stdout and stderr are
    captured apart."""
    return subprocess.run([str(tokenhouse_script()), *args], cwd=cwd,
                          env=env if env is not None else clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (f"{result.args!r} exited {result.returncode}\n--- stdout\n{result.stdout}"
            f"\n--- stderr\n{result.stderr}")


class Server:
    """`tokenhouse serve` as a subprocess, its stdout and stderr written to one log file (a
    file rather than a pipe: a chatty server can never block on a full pipe)."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None,
                 port: int | None = None):
        self.cwd = cwd
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"serve-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(tokenhouse_script()), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             *args],
            cwd=cwd, env=env if env is not None else clean_env(), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def client(self, secret: str | None = None, timeout: float = 10.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until GET /healthz answers 200; fail with the log if the process dies first."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"the server exited with {self.process.returncode} "
                                         f"before answering:\n{self.logs()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"the server did not answer /healthz within {timeout}s:\n"
                             f"{self.logs()}")

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Send SIGTERM to the server process alone (as a supervisor would) and wait for it.
        Returns its exit code (negative: killed by that signal), None if it did not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Make sure the server and every process of its group are gone."""
        try:
            if self.process.poll() is None and self.terminate() is None:
                self._kill_group()
                self.process.wait(10)
            else:
                # The main process is gone; a stray worker of its group must not outlive it.
                self._kill_group()
        finally:
            if not self._log.closed:
                self._log.close()

    @property
    def stopped_cleanly(self) -> bool:
        """Whether the server has stopped cleanly: exit code 0 (`tokenhouse serve` turns the
        signal uvicorn re-raises into a clean exit) and "Application shutdown complete." (the
        lifespan shutdown ran) in the end of its log."""
        return (self.process.poll() == 0
                and "Application shutdown complete" in self.logs()[-2000:])

    def _kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_bytes().decode(errors="replace")
