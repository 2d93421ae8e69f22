"""The processes a run starts: the `tokenhouse` CLI (each call timed, with its peak RSS from
the kernel's accounting of that child) and the server under test."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError

MB = 1024 * 1024
# What each worker logs at shutdown on `tokenhouse.cache` (src/tokenhouse/app.py).
CACHE_STATS = re.compile(r"cache stats: credentials hits=(\d+) misses=(\d+) "
                         r"token_views hits=(\d+) misses=(\d+)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tokenhouse_script() -> Path:
    script = Path(sys.executable).parent / "tokenhouse"
    if not script.exists():
        raise BenchError(f"no tokenhouse command next to {sys.executable}: run this with the "
                         "project's virtualenv (.venv/bin/python bench/run.py), after "
                         "'make install'")
    return script


@dataclass(frozen=True)
class CliResult:
    stdout: str
    stderr: str
    seconds: float        # wall time, from start to exit
    peak_rss_mb: float    # the child's ru_maxrss (its peak RSS), from wait4


def run_cli(args: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> CliResult:
    """Run `tokenhouse ARGS` to its end; BenchError with its output if it fails. Its output
    goes through files in `cwd` (the run's private work directory: bootstrap prints a secret),
    never pipes, so that the child cannot block on a full pipe while it is waited for."""
    command = [str(tokenhouse_script()), *args]
    with tempfile.TemporaryFile(dir=cwd) as out, tempfile.TemporaryFile(dir=cwd) as err:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=err)
        # os.wait4 rather than Popen.wait: it gives the rusage of this one child (ru_maxrss,
        # KiB on Linux), which getrusage(RUSAGE_CHILDREN) would mix with every other child.
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > timeout:
                process.kill()
                os.wait4(process.pid, 0)
                process.returncode = -signal.SIGKILL
                raise BenchError(f"'tokenhouse {' '.join(args)}' did not finish within "
                                 f"{timeout:.0f}s")
            time.sleep(0.01)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if process.returncode != 0:
        raise BenchError(f"'tokenhouse {' '.join(args)}' exited {process.returncode}:\n"
                         f"{stdout[-2000:]}{stderr[-4000:]}")
    return CliResult(stdout=stdout, stderr=stderr, seconds=round(seconds, 2),
                     peak_rss_mb=round(usage.ru_maxrss * 1024 / MB, 1))


def server_command(kind: str, port: int, workers: int, *, granian: str | None,
                   log_level: str) -> list[str]:
    if kind == "granian":
        assert granian is not None
        return [granian, "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(workers), "--log-level", log_level,
                "--no-access-log", "tokenhouse.app:create_app"]
    return [str(tokenhouse_script()), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]


class Server:
    """The server under test, in a session of its own (so that a kill of its process group
    takes its workers too). Stopped with SIGTERM, as a supervisor would."""

    def __init__(self, command: list[str], *, env: dict[str, str], cwd: Path, port: int,
                 log_path: Path):
        self.command = command
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the server exited with {self.process.returncode} before "
                                 f"answering:\n{self.logs()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise BenchError(f"the server did not answer /readyz within {timeout:.0f}s:\n"
                         f"{self.logs()[-4000:]}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then (if it does not stop in time) SIGKILL of the whole group. Returns the
        exit code of a clean stop, None if it had to be killed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.exit_code = None
        else:
            self.exit_code = self.process.returncode
        try:  # stray workers of the group must not outlive it
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(10)
        if not self._log.closed:
            self._log.close()
        return self.exit_code

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_bytes().decode(errors="replace")

    def cache_stats(self) -> dict[str, int]:
        """The cache counters the workers logged at shutdown, summed (read after stop()):
        hits and misses of the credential and token-view caches, and how many processes
        logged them (0: the server logged none)."""
        totals = {"processes": 0, "credential_hits": 0, "credential_misses": 0,
                  "view_hits": 0, "view_misses": 0}
        for match in CACHE_STATS.finditer(self.logs()):
            totals["processes"] += 1
            for name, value in zip(("credential_hits", "credential_misses", "view_hits",
                                    "view_misses"), match.groups(), strict=True):
                totals[name] += int(value)
        return totals
