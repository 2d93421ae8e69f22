"""A real `tokenhouse` server process for acceptance tests with the official clients.

`LiveServer.start(...)` runs, as subprocesses in a temporary working directory,
`tokenhouse migrate`, `tokenhouse bootstrap --json` and `tokenhouse serve` on a free port, and
waits until `GET /healthz` answers. `stop()` sends SIGTERM and waits (kills after a timeout).
The PostgreSQL helpers create and drop (WITH (FORCE)) a database of its own per server.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

PG_ADMIN_DSN = os.environ.get("TOKENHOUSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = os.environ.get("TOKENHOUSE_TEST_BACKENDS", "sqlite,postgresql").split(",")
SECRET_KEY = "live-server-key-" + "s" * 40
COMMAND_TIMEOUT = 60.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def tokenhouse_script() -> Path:
    """The `tokenhouse` console script of the interpreter running the tests."""
    script = Path(sys.executable).parent / "tokenhouse"
    if not script.exists():
        raise RuntimeError(f"The tokenhouse script is not installed next to {sys.executable} "
                           f"(expected {script}); run 'make install-test'.")
    return script


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_pg_database() -> tuple[str, str]:
    """A fresh, empty PostgreSQL database: (name, SQLAlchemy URL)."""
    name = f"tokenhouse_live_{secrets.token_hex(4)}"

    async def run() -> None:
        connection = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(run())
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


def drop_pg_database(name: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(run())


@dataclass
class LiveServer:
    backend: str
    workdir: Path
    env: dict[str, str]
    url: str = ""
    account: dict[str, Any] = field(default_factory=dict)
    token: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    pg_database: str | None = None

    @property
    def admin_secret(self) -> str:
        return self.token["token"]

    @property
    def account_id(self) -> str:
        return self.account["id"]

    # -- life cycle ----------------------------------------------------------------------

    @classmethod
    def start(cls, backend: str, workdir: Path) -> LiveServer:
        """Migrate, bootstrap and serve a fresh database of `backend` ("sqlite" or
        "postgresql"). On any failure everything already made is cleaned up."""
        workdir.mkdir(parents=True, exist_ok=True)
        pg_database = None
        if backend == "sqlite":
            database_url = f"sqlite+aiosqlite:///{(workdir / 'db.sqlite').resolve()}"
        elif backend == "postgresql":
            pg_database, database_url = create_pg_database()
        else:
            raise ValueError(f"Unknown backend {backend!r}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHOUSE_")}
        env.update(TOKENHOUSE_DATABASE_URL=database_url, TOKENHOUSE_SECRET_KEY=SECRET_KEY,
                   TOKENHOUSE_LOG_LEVEL="info", PYTHONUNBUFFERED="1")
        server = cls(backend=backend, workdir=workdir, env=env, pg_database=pg_database)
        try:
            server._run("migrate")
            bootstrapped = json.loads(server._run("bootstrap", "--json"))
            server.account, server.token = bootstrapped["account"], bootstrapped["token"]
            server._serve()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, *args: str) -> str:
        result = subprocess.run([str(tokenhouse_script()), *args], cwd=self.workdir,
                                env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=COMMAND_TIMEOUT, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"'tokenhouse {' '.join(args)}' failed ({result.returncode}):\n"
                               f"{result.stdout.decode()}\n{result.stderr.decode()}")
        return result.stdout.decode()

    def _serve(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = self.workdir / "server.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(tokenhouse_script()), "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"tokenhouse serve exited with {self.process.returncode}:\n"
                                   f"{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"tokenhouse serve did not answer /healthz within "
                                   f"{START_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.05)

    def log(self, tail: int = 5000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-tail:]

    @property
    def stopped_cleanly(self) -> bool:
        return (self.process is not None
                and self.process.returncode == 0
                and "Application shutdown complete" in self.log(tail=2000))

    def stop(self) -> int | None:
        """SIGTERM, wait, kill after a timeout; then drop the PostgreSQL database.
        Returns the server's exit code (None if it was never started). A clean stop is exit
        code 0 (`tokenhouse serve` turns the signal uvicorn re-raises into a clean exit) with
        "Application shutdown complete." (the lifespan shutdown ran) in the log."""
        code = None
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=STOP_TIMEOUT)
            if self.process is not None:
                code = self.process.returncode
        finally:
            if self.pg_database is not None:
                drop_pg_database(self.pg_database)
                self.pg_database = None
        return code
