"""A real `tokenhouse` server process for acceptance tests with the official clients.

`LiveServer.start(...)` runs, as subprocesses in a temporary working directory,
`tokenhouse migrate`, `tokenhouse bootstrap --json` and `tokenhouse serve` on a free port, and
waits until `GET /healthz` answers. `stop()` stops the server (SIGTERM, a kill of its process
group after a timeout) and drops its PostgreSQL database. The processes are those of
tests/processes.py; on PostgreSQL each server has a fresh database of its own
(tests/databases.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.databases import create_pg_database_sync, drop_pg_database_sync, pg_url
from tests.processes import Server, clean_env, describe, run_cli

SECRET_KEY = "live-server-key-" + "s" * 40


@dataclass
class LiveServer:
    backend: str
    workdir: Path
    env: dict[str, str]
    account: dict[str, Any] = field(default_factory=dict)
    token: dict[str, Any] = field(default_factory=dict)
    server: Server | None = None
    pg_database: str | None = None

    @property
    def url(self) -> str:
        return self.server.base_url if self.server is not None else ""

    @property
    def admin_secret(self) -> str:
        return self.token["token"]

    @property
    def account_id(self) -> str:
        return self.account["id"]

    def client(self, secret: str | None = None) -> httpx.Client:
        """A plain HTTP client of the server, authenticated with `secret` if given."""
        if self.server is None:
            raise RuntimeError("the live server is not serving")
        return self.server.client(secret)

    # -- life cycle ----------------------------------------------------------------------

    @classmethod
    def start(cls, backend: str, workdir: Path, **settings: str) -> LiveServer:
        """Migrate, bootstrap and serve a fresh database of `backend` ("sqlite" or
        "postgresql"), with `settings` as further environment variables. On any failure
        everything already made is cleaned up."""
        workdir.mkdir(parents=True, exist_ok=True)
        pg_database = None
        if backend == "sqlite":
            database_url = f"sqlite+aiosqlite:///{(workdir / 'db.sqlite').resolve()}"
        elif backend == "postgresql":
            pg_database = create_pg_database_sync("tokenhouse_live")
            database_url = pg_url(pg_database)
        else:
            raise ValueError(f"Unknown backend {backend!r}")
        env = clean_env(TOKENHOUSE_DATABASE_URL=database_url, TOKENHOUSE_SECRET_KEY=SECRET_KEY,
                        TOKENHOUSE_LOG_LEVEL="info", PYTHONUNBUFFERED="1", **settings)
        live = cls(backend=backend, workdir=workdir, env=env, pg_database=pg_database)
        try:
            live._run("migrate")
            bootstrapped = json.loads(live._run("bootstrap", "--json"))
            live.account, live.token = bootstrapped["account"], bootstrapped["token"]
            live.server = Server(cwd=workdir, env=env)
            live.server.wait_healthy()
        except BaseException:
            live.stop()
            raise
        return live

    def _run(self, *args: str) -> str:
        result = run_cli(*args, cwd=self.workdir, env=self.env)
        if result.returncode != 0:
            raise RuntimeError(f"'tokenhouse {' '.join(args)}' failed:\n{describe(result)}")
        return result.stdout

    def log(self, tail: int = 5000) -> str:
        return self.server.logs()[-tail:] if self.server is not None else ""

    @property
    def stopped_cleanly(self) -> bool:
        return self.server is not None and self.server.stopped_cleanly

    def stop(self) -> int | None:
        """Stop the server, then drop the PostgreSQL database. Returns the server's exit code
        (None if it was never started); see `Server.stopped_cleanly` for a clean stop."""
        try:
            if self.server is None:
                return None
            self.server.stop()
            return self.server.process.returncode
        finally:
            if self.pg_database is not None:
                drop_pg_database_sync(self.pg_database)
                self.pg_database = None


@contextmanager
def serving(backend: str, workdir: Path) -> Iterator[LiveServer]:
    """A live server for the duration of the block; it must then stop cleanly (SIGTERM: the
    lifespan shutdown runs and the process exits 0, never a kill after the timeout)."""
    live = LiveServer.start(backend, workdir)
    try:
        yield live
    finally:
        code = live.stop()
        assert live.stopped_cleanly, f"tokenhouse serve exited with {code}:\n{live.log()}"
