"""`tokenhouse export` and `tokenhouse import`, run as real processes on SQLite and PostgreSQL.

Store A is made as an installation is: `tokenhouse migrate`, `tokenhouse bootstrap --json`,
then `tokenhouse serve` and its admin token over HTTP (accounts with every property, tokens
with varied modules; one updated, one disabled, one deleted, one used; one with an expiry and
an IP allowlist, rotated with a grace window (issue 11); an account disabled).
A is exported; the file is imported into a fresh store B with the same secret key and into a
store C with another key; B and C are exported again. Then:

- the exports are identical line for line, and B answers over HTTP what A answered;
- the file holds no secret, but each token's keyed hash: the secrets authenticate against B
  (not the disabled, the deleted, or the disabled account's one; the secret a rotation
  replaced does, in its grace window), none against C;
- a file with a bad line among good ones exits 1 naming that line, and writes nothing: each
  case runs on its own copy of a store holding data, compared row by row before and after
  (bad lines only the database would notice: see PROBES);
- a token line without secretHash imports and cannot authenticate; module lines upsert the
  catalog, and a new module can then be given over HTTP;
- 5,000 tokens over 50 accounts import (a sanity check: the time is printed, not asserted);
- with both backends, A's SQLite export moves into PostgreSQL.

Fresh stores are copies of one store per backend that the real `tokenhouse migrate` made (a
SQLite backup; CREATE DATABASE ... TEMPLATE on PostgreSQL). A `tokenhouse` process spends over
a second importing its modules, so commands that do not depend on each other run two at a
time, and the many bad-file imports run in processes forked from one warm process (see
LAUNCHER; a test checks that they answer as the script does, byte for byte).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import pty
import re
import secrets
import select
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from tests.databases import (
    BACKENDS,
    PG_ADMIN_DSN,
    create_pg_database_sync,
    drop_pg_database,
    pg_fetch,
    pg_url,
)
from tests.helpers import ACCOUNTS, MODULES, TOKENS
from tests.processes import (
    COMMAND_TIMEOUT,
    Server,
    clean_env,
    describe,
    run_cli,
    tokenhouse_script,
)
from tokenhouse.app import create_app
from tokenhouse.kit.settings import Settings

pytestmark = pytest.mark.slow

KEY = "transfer-test-key-" + "t" * 40
OTHER_KEY = "transfer-other-key-" + "o" * 40
CATALOG_SIZE = 13  # the module catalog that `tokenhouse migrate` installs
PARALLEL = 2
NAMED_LINE = re.compile(r"\bline (\d+):")
IMPORTED = re.compile(r"imported \d+ accounts, \d+ modules, \d+ tokens")
# Every table, with the order that makes a listing of its rows stable.
TABLES = {"accounts": "id", "user_groups": "id", "account_icons": "account_id",
          "modules": "id", "api_tokens": "id", "api_token_modules": "token_id, module_id"}


def secret_hash(secret: str, key: str = KEY) -> str:
    """What the service stores of a secret: HMAC-SHA256 under the secret key, in hex."""
    return hmac.new(key.encode(), secret.encode(), hashlib.sha256).hexdigest()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# --- stores ---------------------------------------------------------------------------------


@dataclass
class Store:
    """One database (a SQLite file, or a PostgreSQL database) and the working directory its
    `tokenhouse` commands run in."""

    backend: str
    workdir: Path
    url: str
    key: str = KEY
    pg_name: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return clean_env(TOKENHOUSE_DATABASE_URL=self.url, TOKENHOUSE_SECRET_KEY=self.key)

    @property
    def sqlite_file(self) -> Path:
        return self.workdir / "tokenhouse.db"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=self.workdir, env=self.env)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.cli(*args)
        assert result.returncode == 0, describe(result)
        assert "Traceback" not in result.stdout + result.stderr, describe(result)
        return result

    def export(self, path: Path) -> list[str]:
        result = self.ok("export", str(path))
        lines = path.read_text(encoding="utf-8").splitlines()
        assert f"exported {len(lines)} objects" in result.stderr, describe(result)
        return lines

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of `sql`, read beside the service (read-only on SQLite)."""
        return self.queries([sql])[0]

    def queries(self, statements: Sequence[str]) -> list[list[tuple[Any, ...]]]:
        if self.backend == "sqlite":
            connection = sqlite3.connect(f"file:{self.sqlite_file}?mode=ro", uri=True,
                                         timeout=10)
            try:
                return [connection.execute(sql).fetchall() for sql in statements]
            finally:
                connection.close()

        async def fetch() -> list[list[tuple[Any, ...]]]:
            assert self.pg_name is not None
            return [[tuple(row) for row in await pg_fetch(sql, self.pg_name)]
                    for sql in statements]

        return asyncio.run(fetch())

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table: the same before and after means nothing was written."""
        listed = self.queries([f"SELECT * FROM {table} ORDER BY {order}"
                               for table, order in TABLES.items()])
        return dict(zip(TABLES, listed, strict=True))

    def count(self, table: str) -> int:
        return self.query(f"SELECT count(*) FROM {table}")[0][0]

    def tokens_total(self, query: str = "limit=0") -> int:
        """The total that `tokenhouse tokens list --query QUERY` reports."""
        body = json.loads(self.ok("tokens", "list", "--query", query).stdout)
        return body["$meta"]["pagination"]["total"]


class Stores:
    """Fresh stores of one backend: copies of a store that `tokenhouse migrate` made."""

    def __init__(self, backend: str, root: Path):
        self.backend = backend
        self.root = root
        self._databases: list[str] = []
        self._made = 0
        self.template: Store | None = None

    def new_template(self) -> Store:
        """The store fresh ones copy; run `tokenhouse migrate` in it before any copy."""
        self.template = self._empty("template")
        return self.template

    def _workdir(self, label: str) -> Path:
        self._made += 1
        path = self.root / f"{self._made:02d}-{re.sub(r'[^a-z0-9]+', '-', label.lower())}"
        path.mkdir()
        return path

    def _empty(self, label: str) -> Store:
        workdir = self._workdir(label)
        if self.backend == "sqlite":
            return Store("sqlite", workdir, f"sqlite+aiosqlite:///{workdir / 'tokenhouse.db'}")
        name = create_pg_database_sync("tokenhouse_transfer")
        self._databases.append(name)
        return Store("postgresql", workdir, pg_url(name), pg_name=name)

    def fresh(self, label: str, key: str = KEY) -> Store:
        """A migrated store holding nothing but the module catalog."""
        assert self.template is not None
        return self.copy(self.template, label, key)

    def copy(self, source: Store, label: str, key: str | None = None) -> Store:
        """A copy of `source` (no process may be using it)."""
        workdir = self._workdir(label)
        key = key or source.key
        if self.backend == "sqlite":
            target = Store("sqlite", workdir,
                           f"sqlite+aiosqlite:///{workdir / 'tokenhouse.db'}", key)
            origin = sqlite3.connect(f"file:{source.sqlite_file}?mode=ro", uri=True, timeout=10)
            copy = sqlite3.connect(target.sqlite_file)
            try:
                origin.backup(copy)
            finally:
                origin.close()
                copy.close()
            return target
        assert source.pg_name is not None
        name = f"tokenhouse_transfer_{secrets.token_hex(4)}"
        asyncio.run(_clone_pg_database(source.pg_name, name))
        self._databases.append(name)
        return Store("postgresql", workdir, pg_url(name), key, name)

    def close(self) -> None:
        # Together: each DROP DATABASE waits for a checkpoint, and one serves them all.
        names, self._databases = self._databases, []

        async def drop_all() -> None:
            await asyncio.gather(*(drop_pg_database(name) for name in names))

        if names:
            asyncio.run(drop_all())


async def _clone_pg_database(source: str, name: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        for _ in range(100):
            try:
                await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
                return
            except asyncpg.exceptions.ObjectInUseError:
                # A process that has just exited may still be leaving the source database.
                await asyncio.sleep(0.1)
        raise AssertionError(f"database {source} stays in use: it cannot be copied")
    finally:
        await connection.close()


# The `tokenhouse` script spends over a second importing its modules before it does anything.
# For the many small commands of the bad-file cases, this process imports them once and
# forks a child per command: each child is a process of its own (its own working directory,
# environment, stdin from /dev/null, stdout and stderr to files) that runs the function the
# script runs, `tokenhouse.cli.app`, and exits with its code.
LAUNCHER = r"""
import json, os, sys
import tokenhouse.cli
import tokenhouse.kit.db, tokenhouse.transfer.service

for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(job["cwd"])
            os.environ.clear()
            os.environ.update(job["env"])
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
                target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(target, fd)
                os.close(target)
            sys.argv = ["tokenhouse", *job["args"]]
            try:
                tokenhouse.cli.app(args=job["args"], prog_name="tokenhouse")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            except BaseException:
                import traceback
                traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


class Launcher:
    """Runs `tokenhouse ARGS` as children of one warm process (see LAUNCHER), one at a time."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", LAUNCHER], env=clean_env(),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, start_new_session=True)
        self.jobs = 0

    def run(self, store: Store, *args: str,
            timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.jobs += 1
        out = store.workdir / f"launched-{self.jobs}.out"
        err = store.workdir / f"launched-{self.jobs}.err"
        self.process.stdin.write(json.dumps({"args": list(args), "cwd": str(store.workdir),
                                             "env": store.env, "stdout": str(out),
                                             "stderr": str(err)}) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise AssertionError(f"tokenhouse {' '.join(args)} did not finish within "
                                 f"{timeout}s (or the launcher died)")
        return subprocess.CompletedProcess(["tokenhouse", *args], json.loads(line),
                                           out.read_text(), err.read_text())

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def launcher() -> Iterator[Launcher]:
    started = Launcher()
    try:
        yield started
    finally:
        started.close()


def run_parallel(jobs: Sequence[tuple[Store, Sequence[str]]]
                 ) -> list[subprocess.CompletedProcess[str]]:
    """`tokenhouse ARGS` for each (store, args), PARALLEL at a time; results in job order."""
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return list(pool.map(lambda job: job[0].cli(*job[1]), jobs))


def over_http[T](store: Store, calls: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    """Run `calls` with an HTTP client of the app serving `store` (in this process, through
    its lifespan: the shutdown flush of lastAccessAt runs at the end)."""

    async def main() -> T:
        settings = Settings(database_url=store.url, secret_key=SecretStr(store.key),
                            last_access_interval=60)
        application = create_app(settings)
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://tokenhouse.test") as client:
                return await calls(client)

    return asyncio.run(main())


def run_with_terminal_stderr(store: Store, *args: str,
                             timeout: float = COMMAND_TIMEOUT) -> tuple[int, str, str]:
    """`tokenhouse ARGS` with stderr on a pseudo-terminal: (exit code, stdout, terminal)."""
    master, slave = pty.openpty()
    process = subprocess.Popen([str(tokenhouse_script()), *args], cwd=store.workdir,
                               env=store.env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"tokenhouse {' '.join(args)} did not finish within "
                                     f"{timeout}s:\n{seen.decode(errors='replace')}")
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has gone
                break
            if not chunk:
                break
            seen += chunk
        stdout = process.stdout.read().decode() if process.stdout else ""
        code = process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
        os.close(master)
    return code, stdout, seen.decode(errors="replace")


@pytest.fixture(scope="module")
def every_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stores]]:
    """Fresh stores of each backend tested (their templates migrated side by side)."""
    made = {backend: Stores(backend, tmp_path_factory.mktemp(f"transfer-{backend}"))
            for backend in BACKENDS}
    try:
        templates = [factory.new_template() for factory in made.values()]
        for result in run_parallel([(template, ("migrate",)) for template in templates]):
            assert result.returncode == 0, describe(result)
        yield made
    finally:
        for factory in made.values():
            factory.close()


@pytest.fixture(scope="module", params=BACKENDS)
def stores(request: pytest.FixtureRequest, every_backend: dict[str, Stores]) -> Stores:
    return every_backend[request.param]


# --- store A, made over HTTP, exported; imported into B (same key) and C (another key) --------


@dataclass(frozen=True)
class Held:
    """A token of store A and its secret."""

    label: str
    id: str
    secret: str

    @property
    def random_part(self) -> str:
        return self.secret.rsplit(":", 1)[1]


CLIENT_ACCOUNT: dict[str, Any] = {
    "name": "Contoso Büro GmbH",
    "type": "Client",
    "description": "A client of the platform",
    "externalIds": {"pyraTenantId": str(uuid.UUID(int=0x1F2E3D4C5B6A79880123456789ABCDEF))},
    "externalId": "CRM-0042",
    "externalName": "Contoso (CRM)",
    "serviceLevel": "Gold",
    "address": {"addressLine1": "1 Hauptstraße", "addressLine2": "Floor 2",
                "postCode": "10115", "city": "Berlin", "state": "BE", "country": "DE"},
    "technicalSupportEmail": "support@contoso.example",
    "website": "https://contoso.example",
}
# label: (account, modules, extra properties) of each token made over HTTP.
TOKENS_MADE: dict[str, tuple[str, list[str], dict[str, Any]]] = {
    "active": ("client", ["MOD-4588", "MOD-1732", "MOD-3419"],
               {"description": "Zugriff für das Büro ✓ «ü» 日本", "icon":
                "https://cdn.example/icons/active.png"}),
    "updated": ("client", ["MOD-1732"], {}),
    "disabled": ("client", ["MOD-5907"], {"description": "to be disabled"}),
    "deleted": ("client", ["MOD-7815"], {"description": "to be deleted"}),
    "operations": ("operations", ["MOD-1732", "MOD-8342", "MOD-8906"], {}),
    "vendor": ("vendor", ["MOD-4073", "MOD-1732"], {}),
    # Issue 11: an expiry and an allowlist (the test's clients are 127.0.0.1), and a rotation
    # whose grace window outlasts the test: the old secret must still work in B.
    "rotated": ("client", ["MOD-1732"], {"expiresAt": "2099-01-02T03:04:05.678Z",
                                         "ipAllowlist": ["127.0.0.0/8", "2001:DB8::/32"]}),
}
# What each token's own secret gets from GET /api-tokens/{id} after an import with the key.
EXPECTED_AUTH = {"admin": 200, "active": 200, "updated": 200, "operations": 200,
                 "disabled": 401, "deleted": 401, "vendor": 401, "rotated": 200}


@dataclass
class RoundTrip:
    a: Store
    b: Store
    c: Store
    held: dict[str, Held]
    previous: dict[str, Held]  # the secret the rotation of "rotated" replaced
    accounts: dict[str, str]  # operations, client, vendor: their ids
    seen: dict[str, dict[str, Any]]  # what A answered over HTTP, by id
    a_file: Path
    a_lines: list[str]
    b_file: Path
    b_import: subprocess.CompletedProcess[str]
    c_import: subprocess.CompletedProcess[str]
    b_export: subprocess.CompletedProcess[str]  # to b_file
    c_export: subprocess.CompletedProcess[str]  # to stdout
    objects: dict[str, dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.objects = {o["id"]: o for o in map(json.loads, self.a_lines)}

    @property
    def admin(self) -> Held:
        return self.held["admin"]

    @property
    def client_group(self) -> str:
        return self.objects[self.accounts["client"]]["groups"][0]["id"]


def populate(a: Store) -> tuple[dict[str, Held], dict[str, Held], dict[str, str],
                                dict[str, dict[str, Any]]]:
    """Bootstrap A, then make its objects over HTTP with the admin token, use a token, rotate
    one, and record what A answers for every object; the server stops cleanly (lastAccessAt
    flushed). Returns the tokens, the secret the rotation replaced, the accounts, and what
    A answered."""
    env = {**a.env, "TOKENHOUSE_LAST_ACCESS_INTERVAL": "0.2"}
    # The server starts while bootstrap runs (it needs the schema only).
    with Server(cwd=a.workdir, env=env) as server:
        booted = json.loads(a.ok("bootstrap", "--json").stdout)
        held = {"admin": Held("admin", booted["token"]["id"], booted["token"]["token"])}
        accounts = {"operations": booted["account"]["id"]}
        server.wait_healthy()
        with server.client(held["admin"].secret) as http:

            def call(method: str, url: str, status: int, body: Any = None) -> dict[str, Any]:
                response = http.request(method, url, json=body)
                assert response.status_code == status, \
                    f"{method} {url} -> {response.status_code}: {response.text}"
                return response.json() if response.content else {}

            client = call("POST", ACCOUNTS, 201, CLIENT_ACCOUNT)
            accounts["client"] = client["id"]
            call("PUT", f"{ACCOUNTS}/{client['id']}", 200,
                 {"description": "A client of the platform since 2024", "revision": 1})
            accounts["vendor"] = call("POST", ACCOUNTS, 201,
                                      {"name": "Fabrikam Software", "type": "Vendor"})["id"]
            for label, (account, modules, extra) in TOKENS_MADE.items():
                created = call("POST", TOKENS, 201, {
                    "name": f"{label} token", "account": {"id": accounts[account]},
                    "modules": [{"id": m} for m in modules], **extra})
                held[label] = Held(label, created["id"], created["token"])
            call("PUT", f"{TOKENS}/{held['updated'].id}", 200, {
                "name": "updated token (renamed)", "description": "changed once",
                "modules": [{"id": "MOD-5907"}, {"id": "MOD-1732"}], "revision": 1})
            call("POST", f"{TOKENS}/{held['disabled'].id}/disable", 200)
            call("DELETE", f"{TOKENS}/{held['deleted'].id}", 204)
            call("POST", f"{ACCOUNTS}/{accounts['vendor']}/disable", 200)
            rotated = held["rotated"]
            previous = {"rotated": Held("rotated old", rotated.id, rotated.secret)}
            renewed = call("POST", f"{TOKENS}/{rotated.id}/rotate", 200,
                           {"gracePeriodSeconds": 3600})
            held["rotated"] = Held("rotated", rotated.id, renewed["token"])
        with server.client(held["active"].secret) as own:
            response = own.get(f"{TOKENS}/{held['active'].id}")
            assert response.status_code == 200, response.text
        time.sleep(0.3)  # lastAccessAt is written every 0.2 s (and by the clean stop)
        seen: dict[str, dict[str, Any]] = {}
        with server.client(held["admin"].secret) as http:
            for object_id in [*accounts.values(), *(h.id for h in held.values())]:
                path = ACCOUNTS if object_id.startswith("ACC-") else TOKENS
                response = http.get(f"{path}/{object_id}")
                assert response.status_code == 200, response.text
                seen[object_id] = response.json()
        assert server.terminate() == 0, server.logs()
        assert server.stopped_cleanly, server.logs()
        assert "Traceback" not in server.logs(), server.logs()
    return held, previous, accounts, seen


@pytest.fixture(scope="module")
def round_trip(stores: Stores) -> RoundTrip:
    a = stores.fresh("a")
    held, previous, accounts, seen = populate(a)
    a_file = a.workdir / "a.jsonl"
    a_lines = a.export(a_file)
    b = stores.fresh("b")
    c = stores.fresh("c", key=OTHER_KEY)
    b_import, c_import = run_parallel([(b, ("import", str(a_file))),
                                       (c, ("import", str(a_file)))])
    b_file = b.workdir / "b.jsonl"
    b_export, c_export = run_parallel([(b, ("export", str(b_file))), (c, ("export",))])
    return RoundTrip(a=a, b=b, c=c, held=held, previous=previous, accounts=accounts,
                     seen=seen, a_file=a_file,
                     a_lines=a_lines, b_file=b_file, b_import=b_import, c_import=c_import,
                     b_export=b_export, c_export=c_export)


def without(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in keys}


def as_seen(rt: RoundTrip, body: dict[str, Any]) -> dict[str, Any]:
    """An object as compared across stores: the admin token's lastAccessAt and
    lastAccessIps move with every request the test makes, so they are left out."""
    body = without(body, "secretHash", "previousSecretHash", "retirePreviousOnFirstUse",
                   "rotatedAt", "token")
    return without(body, "lastAccessAt", "lastAccessIps") if body["id"] == rt.admin.id \
        else body


def test_export_lists_accounts_then_modules_then_tokens_by_id(round_trip: RoundTrip) -> None:
    rt = round_trip
    objects = [json.loads(line) for line in rt.a_lines]
    kinds = [o["id"][:4] for o in objects]
    assert kinds == ["ACC-"] * 3 + ["MOD-"] * CATALOG_SIZE + ["TKN-"] * len(rt.held), kinds
    for prefix in ("ACC-", "MOD-", "TKN-"):
        ids = [o["id"] for o in objects if o["id"].startswith(prefix)]
        assert ids == sorted(ids), ids
    assert {o["id"] for o in objects if o["id"].startswith("ACC-")} == set(rt.accounts.values())
    assert {o["id"] for o in objects if o["id"].startswith("TKN-")} == \
        {h.id for h in rt.held.values()}
    # The secret hash is on token lines, and only there.
    assert all(("secretHash" in o) == o["id"].startswith("TKN-") for o in objects)


def test_export_lines_are_the_public_shapes_with_full_audit(round_trip: RoundTrip) -> None:
    """Each line is what A answered over HTTP for that object (plus the secret hash)."""
    rt = round_trip
    for object_id, answered in rt.seen.items():
        assert as_seen(rt, rt.objects[object_id]) == as_seen(rt, answered), object_id
    for module in (o for i, o in rt.objects.items() if i.startswith("MOD-")):
        assert module["audit"]["created"]["at"] and module["revision"] == 1, module


def test_source_store_holds_every_kind_of_state(round_trip: RoundTrip) -> None:
    """What the round trip must carry is really there in A's export."""
    rt = round_trip
    objects, held = rt.objects, rt.held
    client = objects[rt.accounts["client"]]
    for name, value in CLIENT_ACCOUNT.items():
        if name != "description":
            assert client[name] == value, name
    assert client["description"] == "A client of the platform since 2024"
    assert client["revision"] == 2
    assert client["audit"]["updated"]["by"]["id"] == rt.admin.id
    [group] = client["groups"]
    assert re.match(r"^UGR-\d{4}-\d{4}$", group["id"]) and group["isDefault"] is True
    vendor = objects[rt.accounts["vendor"]]
    assert vendor["status"] == "Disabled" and "updated" in vendor["audit"]
    assert objects[rt.accounts["operations"]]["type"] == "Operations"

    def token(label: str) -> dict[str, Any]:
        return objects[held[label].id]

    active = token("active")
    assert active["lastAccessAt"] is not None
    assert active["lastAccessAt"] == rt.seen[held["active"].id]["lastAccessAt"]
    assert [m["id"] for m in active["modules"]] == ["MOD-1732", "MOD-3419", "MOD-4588"]
    assert active["description"] == TOKENS_MADE["active"][2]["description"]
    assert active["icon"] == TOKENS_MADE["active"][2]["icon"]
    assert "updated" not in active["audit"] and active["revision"] == 1
    updated = token("updated")
    assert updated["name"] == "updated token (renamed)"
    assert updated["revision"] == 2  # one PUT
    assert updated["audit"]["updated"]["by"]["id"] == rt.admin.id
    assert [m["id"] for m in updated["modules"]] == ["MOD-1732", "MOD-5907"]
    assert token("disabled")["status"] == "Disabled"
    assert token("deleted")["status"] == "Deleted"
    assert token("deleted")["secretHash"] is None
    assert token("vendor")["account"]["status"] == "Disabled"
    assert token("admin")["lastAccessAt"] is not None
    assert token("updated")["lastAccessAt"] is None
    # Issue 11: the client's address of each use, an expiry, an allowlist, and a rotation in
    # its grace window (its hash written, and when the rotation was).
    assert [a["ip"] for a in active["lastAccessIps"]] == ["127.0.0.1"]
    assert token("updated")["lastAccessIps"] == []
    rotated = token("rotated")
    # The rotation kept the lifetime the secret had (from the rotation on).
    assert rotated["status"] == "Active" and rotated["expiresAt"] >= "2099-01-02T03:04:05.678Z"
    assert rotated["ipAllowlist"] == ["127.0.0.0/8", "2001:db8::/32"]
    assert rotated["previousSecret"] is not None and rotated["revision"] == 2
    assert rotated["previousSecretHash"] == secret_hash(rt.previous["rotated"].secret)
    assert rotated["retirePreviousOnFirstUse"] is False and rotated["rotatedAt"]
    assert rotated["secretHash"] == secret_hash(held["rotated"].secret)
    assert active["previousSecret"] is None and "previousSecretHash" not in active


def test_import_reports_what_it_loaded(round_trip: RoundTrip) -> None:
    result = round_trip.b_import
    assert result.returncode == 0, describe(result)
    assert f"imported 3 accounts, {CATALOG_SIZE} modules, {len(round_trip.held)} tokens" \
        in result.stderr, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    # stderr is no terminal here: no progress bar.
    assert "checking" not in result.stderr, describe(result)
    assert result.stdout == "", describe(result)


def assert_same_lines(expected: list[str], actual: list[str]) -> None:
    for number, (want, got) in enumerate(zip(expected, actual, strict=False), 1):
        assert got == want, f"line {number} differs:\nexpected: {want}\nactual:   {got}"
    assert len(actual) == len(expected)


def test_reexport_is_identical_line_for_line(round_trip: RoundTrip) -> None:
    rt = round_trip
    result = rt.b_export
    assert result.returncode == 0, describe(result)
    assert f"exported {len(rt.a_lines)} objects" in result.stderr, describe(result)
    assert_same_lines(rt.a_lines, rt.b_file.read_text(encoding="utf-8").splitlines())
    assert rt.b_file.read_bytes() == rt.a_file.read_bytes()


def test_export_of_the_store_with_another_key_to_stdout_is_identical(
        round_trip: RoundTrip) -> None:
    """The key decides what authenticates, not what is stored; and `export` without a file
    writes the same lines to stdout (its count to stderr)."""
    rt = round_trip
    result = rt.c_export
    assert result.returncode == 0, describe(result)
    assert f"exported {len(rt.a_lines)} objects" in result.stderr, describe(result)
    assert_same_lines(rt.a_lines, result.stdout.splitlines())


def test_every_object_reads_back_over_http_as_in_the_source(round_trip: RoundTrip) -> None:
    """B, read over HTTP, answers for every account and token what A answered: ids,
    timestamps, revisions, statuses, modules, account properties, user groups."""
    rt = round_trip

    async def read(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
        answers = {}
        for object_id in rt.seen:
            path = ACCOUNTS if object_id.startswith("ACC-") else TOKENS
            response = await http.get(f"{path}/{object_id}", headers=bearer(rt.admin.secret))
            assert response.status_code == 200, response.text
            answers[object_id] = response.json()
        return answers

    answers = over_http(rt.b, read)
    for object_id, answered in rt.seen.items():
        assert as_seen(rt, answers[object_id]) == as_seen(rt, answered), object_id
    # The admin reads itself with its secret, in B as in A.
    assert answers[rt.admin.id]["token"] == rt.admin.secret
    client = answers[rt.accounts["client"]]
    assert client["groups"] == rt.seen[rt.accounts["client"]]["groups"]
    assert client["address"] == CLIENT_ACCOUNT["address"]


def test_export_holds_no_secret_but_each_hash(round_trip: RoundTrip) -> None:
    rt = round_trip
    for path in (rt.a_file, rt.b_file):
        text = path.read_text(encoding="utf-8")
        assert "idt:" not in text, path
        for held in [*rt.held.values(), *rt.previous.values()]:
            assert held.secret not in text, (path, held.label)
            assert held.random_part not in text, (path, held.label)
    for held in rt.held.values():
        line = rt.objects[held.id]
        if held.label == "deleted":
            # A deleted token's hash is dropped: it can never be needed again.
            assert line["secretHash"] is None
        else:
            assert line["secretHash"] == secret_hash(held.secret), held.label


async def _own_reads(http: httpx.AsyncClient, held: dict[str, Held]
                     ) -> dict[str, httpx.Response]:
    return {label: await http.get(f"{TOKENS}/{h.id}", headers=bearer(h.secret))
            for label, h in held.items()}


def test_secrets_authenticate_after_import_with_the_same_key(round_trip: RoundTrip) -> None:
    rt = round_trip
    responses = over_http(rt.b, lambda http: _own_reads(http, rt.held))
    statuses = {label: r.status_code for label, r in responses.items()}
    assert statuses == EXPECTED_AUTH
    for label, response in responses.items():
        if response.status_code == 200:
            assert response.json()["id"] == rt.held[label].id
            assert response.json()["token"] == rt.held[label].secret
        else:
            assert response.headers["content-type"].startswith("application/problem+json")
    assert "Disabled" in responses["disabled"].json()["detail"]
    # The secret the rotation replaced works until its grace window ends, in B as in A.
    old = over_http(rt.b, lambda http: _own_reads(http, rt.previous))
    assert old["rotated"].status_code == 200, old["rotated"].text


def test_no_secret_authenticates_after_import_with_another_key(round_trip: RoundTrip) -> None:
    rt = round_trip
    result = rt.c_import
    assert result.returncode == 0, describe(result)
    assert f"imported 3 accounts, {CATALOG_SIZE} modules, {len(rt.held)} tokens" \
        in result.stderr, describe(result)
    # The tokens are there, with the hashes of the file: only the key differs.
    stored = dict(rt.c.query("SELECT id, secret_hash FROM api_tokens"))
    assert stored == {h.id: rt.objects[h.id]["secretHash"] for h in rt.held.values()}
    responses = over_http(rt.c, lambda http: _own_reads(http, {**rt.held, "old": rt.previous[
        "rotated"]}))
    assert {label: r.status_code for label, r in responses.items()} == \
        {label: 401 for label in [*rt.held, "old"]}


def test_an_embedded_export_moves_to_postgresql(round_trip: RoundTrip, stores: Stores,
                                                every_backend: dict[str, Stores]) -> None:
    """A migration from the embedded SQLite file to PostgreSQL: A's file imports there with
    the same key; the export holds the same objects (key order inside JSON documents may
    differ: PostgreSQL stores them as JSONB) and the secrets work there."""
    if stores.backend != "sqlite":
        pytest.skip("runs once, from the SQLite round trip")
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL is not among the backends tested")
    rt = round_trip
    target = every_backend["postgresql"].fresh("moved from sqlite")
    result = target.ok("import", str(rt.a_file))
    assert f"{len(rt.held)} tokens" in result.stderr, describe(result)
    lines = target.export(target.workdir / "moved.jsonl")
    assert [json.loads(line) for line in lines] == [json.loads(line) for line in rt.a_lines]
    responses = over_http(target, lambda http: _own_reads(http, rt.held))
    assert {label: r.status_code for label, r in responses.items()} == EXPECTED_AUTH


# --- all or nothing -------------------------------------------------------------------------

GOOD_ACCOUNT = "ACC-8000-0001"
GOOD_GROUP = "UGR-8000-0001"
GOOD_HASH = secret_hash("idt:TKN-8000-0001:" + "g" * 43)
GOOD_COUNTS = "imported 1 accounts, 1 modules, 3 tokens"
CHANGED_DESCRIPTION = "Changed by an import of the good lines."


def good_objects(rt: RoundTrip) -> list[dict[str, Any]]:
    """Lines that import into a copy of B on their own: an account with its user group, a
    module change, and tokens of that account and of one already in the store."""
    return [
        {"id": GOOD_ACCOUNT, "name": "Northwind Traders", "type": "Client",
         "groups": [{"id": GOOD_GROUP, "name": "Default", "isDefault": True}],
         "audit": {"created": {"at": "2025-01-02T03:04:05.678Z", "by": None}}, "revision": 3},
        {"id": "MOD-1732", "description": CHANGED_DESCRIPTION},
        {"id": "TKN-8000-0001", "name": "northwind one", "account": {"id": GOOD_ACCOUNT},
         "modules": [{"id": "MOD-1732"}], "secretHash": GOOD_HASH},
        {"id": "TKN-8000-0002", "name": "operations two", "status": "Disabled",
         "account": {"id": rt.accounts["operations"]}, "modules": [{"id": "MOD-8342"}]},
        {"id": "TKN-8000-0003", "name": "northwind three", "account": {"id": GOOD_ACCOUNT},
         "modules": [{"id": "MOD-1732"}, {"id": "MOD-5907"}],
         "lastAccessAt": "2025-02-03T04:05:06.789Z"},
    ]


def bad_token(token_id: str = "TKN-8000-0009", **changes: Any) -> str:
    return json.dumps({"id": token_id, "name": "a bad one", "account": {"id": GOOD_ACCOUNT},
                       "modules": [{"id": "MOD-1732"}], **changes})


def bad_account(account_id: str = "ACC-8000-0009", **changes: Any) -> str:
    return json.dumps({"id": account_id, "name": "A bad one", "type": "Client", **changes})


Bad = dict[int, tuple[str | bytes, tuple[str, ...]]]


@dataclass(frozen=True)
class BadCase:
    """Good lines with bad ones put among them. `bad` gives, by line number in the file, each
    bad line (bytes: not UTF-8) and the words its error must hold."""

    name: str
    bad: Callable[[RoundTrip], Bad]
    named: bool = True  # whether the error names the lines (a file that is not text: no)
    blanks: tuple[int, ...] = ()  # line numbers of blank lines, all before the bad ones
    also: tuple[int, ...] = ()  # good lines the error may name too (the first of a pair)

    def content(self, rt: RoundTrip) -> bytes:
        lines: list[str | bytes] = [json.dumps(o) for o in good_objects(rt)]
        for blank in self.blanks:
            lines.insert(blank - 1, "")
        for number, (text, _) in sorted(self.bad(rt).items()):
            lines.insert(number - 1, text)
        return b"".join((line.encode() if isinstance(line, str) else line) + b"\n"
                        for line in lines)


def one(at: int, text: str | bytes, *words: str) -> Bad:
    return {at: (text, words)}


BAD_CASES = [
    BadCase("malformed JSON after blank lines",
            lambda rt: one(6, '{"id": "TKN-8000-0009", "name": "cut short", '), blanks=(2, 4)),
    BadCase("no id", lambda rt: one(1, json.dumps({"name": "Nameless Ltd", "type": "Client"}))),
    BadCase("unknown id prefix",
            lambda rt: one(3, json.dumps({"id": "USR-1234-5678", "name": "a user"}))),
    BadCase("token of an unknown account",
            lambda rt: one(5, bad_token(account={"id": "ACC-0000-0404"}), "ACC-0000-0404")),
    BadCase("token with an unknown module",
            lambda rt: one(6, bad_token(modules=[{"id": "MOD-1732"}, {"id": "MOD-0404"}]),
                           "MOD-0404")),
    BadCase("duplicate id in the file",
            lambda rt: one(6, bad_token("TKN-8000-0001"), "TKN-8000-0001")),
    BadCase("account id already in the store",
            lambda rt: one(2, bad_account(rt.accounts["client"]), rt.accounts["client"])),
    BadCase("status of a wrong value", lambda rt: one(4, bad_token(status="Sleeping"), "status")),
    BadCase("not UTF-8",
            lambda rt: one(3, bad_token(name="caf\u00e9").replace("\\u00e9", "\u00e9")
                           .encode("latin-1"), "UTF-8"), named=False),
    # Several bad lines: each is named. Lines of a wrong shape (found while reading)...
    BadCase("several lines of a wrong shape", lambda rt: {
        2: (bad_token("TKN-8000-0008", modules="MOD-1732"), ("modules",)),
        7: (bad_token(descripton="a typo is no silent loss"), ("descripton",))}),
    # ...and lines that clash with the store or lack something (found before writing).
    BadCase("several lines that clash with the store", lambda rt: {
        1: (json.dumps({"id": "MOD-0777", "description": "a new module needs a name"}),
            ("MOD-0777",)),
        4: (bad_account(groups=[{"id": rt.client_group, "name": "Default"}]),
            (rt.client_group,)),
        7: (bad_token(rt.held["active"].id), (rt.held["active"].id,))}),
]

# Bad lines that only the database would notice (a unique index, NOT NULL, a column's
# length): the checks before writing must name them, not a database error.
PROBES = [
    pytest.param(BadCase(
        "two accounts of the file share a user group id",
        lambda rt: one(6, bad_account(groups=[{"id": GOOD_GROUP, "name": "Default"}]),
                       GOOD_GROUP), also=(1,)),
        id="two accounts of the file share a user group id"),
    pytest.param(BadCase(
        "two tokens of the file share a secretHash",
        lambda rt: one(6, bad_token(secretHash=GOOD_HASH), "secretHash"), also=(3,)),
        id="two tokens of the file share a secretHash"),
    pytest.param(BadCase(
        "existing module renamed to null",
        lambda rt: one(2, json.dumps({"id": "MOD-5907", "name": None}), "MOD-5907")),
        id="existing module renamed to null"),
    pytest.param(BadCase(
        "value longer than the API and the column allow",
        lambda rt: one(2, bad_account(serviceLevel="s" * 100), "serviceLevel")),
        id="value longer than the API and the column allow"),
    # Issue 9, defect 10: these were tracebacks (though nothing was written).
    pytest.param(BadCase(
        "audit by.id longer than its column",
        lambda rt: one(4, bad_token(audit={"created": {"at": "2025-01-02T03:04:05Z",
                                                       "by": {"id": "x" * 33}}}),
                       "audit.created.by.id")),
        id="audit by.id longer than its column"),
    pytest.param(BadCase(
        "revision of 2^40", lambda rt: one(3, bad_token(revision=2**40), "revision")),
        id="revision of 2^40"),
    pytest.param(BadCase(
        "NUL character", lambda rt: one(5, bad_account(description="a\u0000b"),
                                        "description", "NUL")),
        id="NUL character"),
    pytest.param(BadCase(
        "deeply nested line",
        lambda rt: one(2, '{"id": "MOD-5907", "settings": ' + "[" * 50_000 + "]" * 50_000
                       + "}", "nested")),
        id="deeply nested line"),
]


@dataclass
class Attempt:
    case: BadCase
    bad: Bad
    store: Store
    before: dict[str, list[tuple[Any, ...]]]
    result: subprocess.CompletedProcess[str]
    after: dict[str, list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def attempts(stores: Stores, round_trip: RoundTrip, launcher: Launcher) -> dict[str, Attempt]:
    """Every bad file imported into its own copy of B (which holds A's objects)."""
    rt = round_trip
    made = {}
    for case in [*BAD_CASES, *(p.values[0] for p in PROBES)]:
        store = stores.copy(rt.b, f"bad {case.name}")
        path = store.workdir / "bad.jsonl"
        path.write_bytes(case.content(rt))
        before = store.rows()
        result = launcher.run(store, "import", str(path))
        made[case.name] = Attempt(case, case.bad(rt), store, before, result, store.rows())
    return made


def check_refused(attempt: Attempt) -> None:
    case, result = attempt.case, attempt.result
    output = result.stdout + result.stderr
    assert result.returncode == 1, describe(result)
    assert "Traceback" not in output, describe(result)
    assert not IMPORTED.search(output), describe(result)
    named = {int(n) for n in NAMED_LINE.findall(output)}
    if case.named:
        assert set(attempt.bad) <= named <= {*attempt.bad, *case.also}, \
            f"expected lines {sorted(attempt.bad)} to be named:\n{describe(result)}"
    for number, (_, words) in attempt.bad.items():
        reported = ([line for line in output.splitlines() if f"line {number}:" in line]
                    if case.named else output.splitlines())
        for word in words:
            assert any(word in line for line in reported), (word, describe(result))
    changed = [table for table in TABLES if attempt.after[table] != attempt.before[table]]
    assert not changed, f"the failed import changed {changed}:\n{describe(result)}"


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.name for c in BAD_CASES])
def test_a_bad_line_fails_the_whole_import(attempts: dict[str, Attempt],
                                           case: BadCase) -> None:
    check_refused(attempts[case.name])


@pytest.mark.parametrize("case", PROBES)
def test_a_line_the_database_would_refuse_fails_the_whole_import(
        attempts: dict[str, Attempt], case: BadCase) -> None:
    check_refused(attempts[case.name])


def test_the_launched_commands_answer_as_the_script_does(
        stores: Stores, attempts: dict[str, Attempt]) -> None:
    """The cases above ran through the launcher: the real `tokenhouse` script, given the
    same file and a copy of the same store, answers the same, byte for byte."""
    names = ["several lines that clash with the store", "not UTF-8"]
    jobs = [(stores.copy(attempts[name].store, f"script {name}"),
             ("import", str(attempts[name].store.workdir / "bad.jsonl"))) for name in names]
    for name, result in zip(names, run_parallel(jobs), strict=True):
        launched = attempts[name].result
        assert (result.returncode, result.stdout, result.stderr) == \
            (launched.returncode, launched.stdout, launched.stderr), \
            f"{describe(result)}\n--- launched:\n{describe(launched)}"


def test_the_good_lines_alone_import_with_progress_on_a_terminal(
        stores: Stores, round_trip: RoundTrip) -> None:
    """The lines around each bad one are fine: alone they import (and, stderr being a
    terminal, the import shows its progress)."""
    rt = round_trip
    store = stores.copy(rt.b, "good lines")
    path = store.workdir / "good.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in good_objects(rt)))
    before = store.rows()
    code, stdout, terminal = run_with_terminal_stderr(store, "import", str(path))
    assert code == 0, terminal
    assert "Traceback" not in terminal, terminal
    assert "checking" in terminal, terminal
    assert GOOD_COUNTS in terminal, terminal
    assert stdout == ""
    after = store.rows()
    grown = {table: len(after[table]) - len(before[table]) for table in TABLES}
    assert grown == {"accounts": 1, "user_groups": 1, "account_icons": 0, "modules": 0,
                     "api_tokens": 3, "api_token_modules": 4}
    assert store.query("SELECT description FROM modules WHERE id = 'MOD-1732'") == \
        [(CHANGED_DESCRIPTION,)]


# --- a token without secretHash; module lines -----------------------------------------------

CALLER_ID = "TKN-9001-0001"
CALLER_SECRET = f"idt:{CALLER_ID}:{secrets.token_urlsafe(32)}"
UNHASHED_ID = "TKN-9001-0002"
NEW_MODULE = {"id": "MOD-9001", "name": "Quantum Ledger",
              "description": "A module the catalog did not have.",
              "accountTypes": ["Client", "Operations"]}


@dataclass
class Extras:
    store: Store
    result: subprocess.CompletedProcess[str]
    access: dict[str, Any]  # the full line given for MOD-1732
    helpdesk: dict[str, Any]  # MOD-5907 as it was


@pytest.fixture(scope="module")
def extras(stores: Stores, round_trip: RoundTrip) -> Extras:
    """A copy of B, then a file of module lines (a full one for an existing entry, a partial
    one, a new module), an Operations token holding the new module with a secret hash made
    here, and a token without secretHash."""
    rt = round_trip
    store = stores.copy(rt.b, "extras")
    access = dict(rt.objects["MOD-1732"],
                  description="Tokens, users and user groups (changed by an import).")
    lines = [
        access,
        {"id": "MOD-5907", "description": "Support cases (changed by an import)."},
        NEW_MODULE,
        {"id": CALLER_ID, "name": "importer", "account": {"id": rt.accounts["operations"]},
         "modules": [{"id": "MOD-1732"}, {"id": "MOD-9001"}],
         "secretHash": secret_hash(CALLER_SECRET)},
        {"id": UNHASHED_ID, "name": "no hash", "account": {"id": rt.accounts["client"]},
         "modules": [{"id": "MOD-1732"}]},
    ]
    path = store.workdir / "extras.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return Extras(store=store, result=store.cli("import", str(path)), access=access,
                  helpdesk=rt.objects["MOD-5907"])


def test_extras_import(extras: Extras) -> None:
    result = extras.result
    assert result.returncode == 0, describe(result)
    assert "imported 0 accounts, 3 modules, 2 tokens" in result.stderr, describe(result)


def test_a_token_line_without_secret_hash_cannot_authenticate(extras: Extras) -> None:
    assert extras.result.returncode == 0, describe(extras.result)
    assert extras.store.query(
        f"SELECT status, secret_hash FROM api_tokens WHERE id = '{UNHASHED_ID}'") == \
        [("Active", None)]
    forged = [f"idt:{UNHASHED_ID}:{secrets.token_urlsafe(32)}", f"idt:{UNHASHED_ID}:x",
              f"idt:{UNHASHED_ID}:None", f"idt:{UNHASHED_ID}:null"]

    async def calls(http: httpx.AsyncClient) -> tuple[int, list[int]]:
        # It is there and Active...
        seen = await http.get(f"{TOKENS}/{UNHASHED_ID}", headers=bearer(CALLER_SECRET))
        assert seen.json()["status"] == "Active", seen.text
        # ...and no secret gets in with it.
        tries = [(await http.get(f"{TOKENS}/{UNHASHED_ID}", headers=bearer(secret)))
                 .status_code for secret in forged]
        return seen.status_code, tries

    seen, tries = over_http(extras.store, calls)
    assert seen == 200
    assert tries == [401] * len(forged)


def test_module_lines_upsert_the_catalog(extras: Extras) -> None:
    assert extras.result.returncode == 0, describe(extras.result)

    async def calls(http: httpx.AsyncClient) -> dict[str, httpx.Response]:
        paths = {"MOD-1732": f"{MODULES}/MOD-1732", "MOD-5907": f"{MODULES}/MOD-5907",
                 "MOD-9001": f"{MODULES}/MOD-9001", "list": f"{MODULES}?limit=0"}
        return {name: await http.get(path, headers=bearer(CALLER_SECRET))
                for name, path in paths.items()}

    answers = over_http(extras.store, calls)
    assert all(r.status_code == 200 for r in answers.values()), answers
    # A full line: the entry is exactly that line.
    assert answers["MOD-1732"].json() == extras.access
    assert answers["MOD-1732"].json()["name"] == "Access Management"
    # A partial line: the description changes, the rest stays.
    helpdesk = answers["MOD-5907"].json()
    assert helpdesk["description"] == "Support cases (changed by an import)."
    assert without(helpdesk, "description") == without(extras.helpdesk, "description")
    # A new id with a name: a new entry.
    created = answers["MOD-9001"].json()
    assert {k: created[k] for k in NEW_MODULE} == NEW_MODULE
    assert created["revision"] == 1
    assert answers["list"].json()["$meta"]["pagination"]["total"] == CATALOG_SIZE + 1


def test_a_new_module_can_be_given_to_a_new_token(extras: Extras,
                                                  round_trip: RoundTrip) -> None:
    assert extras.result.returncode == 0, describe(extras.result)
    client = round_trip.accounts["client"]

    async def calls(http: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        created = await http.post(TOKENS, headers=bearer(CALLER_SECRET), json={
            "name": "ledger reader", "account": {"id": client},
            "modules": [{"id": "MOD-9001"}]})
        assert created.status_code == 201, created.text
        body = created.json()
        return created, await http.get(f"{TOKENS}/{body['id']}", headers=bearer(body["token"]))

    created, own = over_http(extras.store, calls)
    assert [(m["id"], m["name"]) for m in created.json()["modules"]] == \
        [("MOD-9001", "Quantum Ledger")]
    assert own.status_code == 200, own.text
    assert own.json()["modules"] == created.json()["modules"]


# --- scale ----------------------------------------------------------------------------------


def scale_objects(accounts: int, per_account: int) -> Iterator[dict[str, Any]]:
    """`accounts` Client accounts (each with its user group), then `per_account` tokens of
    each: every 10th Disabled, every 25th Deleted (without a hash), the others with a hash."""
    client_modules = ["MOD-1732", "MOD-2846", "MOD-3419", "MOD-4588", "MOD-5261",
                      "MOD-5907", "MOD-6650", "MOD-7815"]
    for a in range(accounts):
        yield {"id": f"ACC-6{a // 10000:03d}-{a % 10000:04d}", "name": f"Scale account {a}",
               "type": "Client",
               "groups": [{"id": f"UGR-6{a // 10000:03d}-{a % 10000:04d}", "name": "Default",
                           "isDefault": True}],
               "audit": {"created": {"at": "2025-01-01T00:00:00.000Z", "by": None}}}
    for t in range(accounts * per_account):
        a = t % accounts
        status = "Deleted" if t % 25 == 0 else "Disabled" if t % 10 == 0 else "Active"
        yield {
            "id": f"TKN-6{t // 10000:03d}-{t % 10000:04d}", "name": f"scale token {t}",
            "description": f"token {t} of account {a}" if t % 3 else None, "status": status,
            "account": {"id": f"ACC-6{a // 10000:03d}-{a % 10000:04d}"},
            "modules": [{"id": m} for m in client_modules[t % 8: t % 8 + 1 + t % 3]],
            "lastAccessAt": f"2025-03-{1 + t % 28:02d}T12:00:00.000Z" if t % 2 else None,
            "audit": {"created": {"at": f"2025-02-{1 + t % 28:02d}T08:00:00.{t % 1000:03d}Z",
                                  "by": None}},
            "revision": 1 + t % 4,
            "secretHash": None if status == "Deleted" else secret_hash(f"scale-{t}"),
        }


def test_five_thousand_tokens_over_fifty_accounts(stores: Stores) -> None:
    """A sanity check of bulk loading; the time is printed (pytest -s), never asserted."""
    store = stores.fresh("scale")
    path = store.workdir / "scale.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for obj in scale_objects(50, 100):
            out.write(json.dumps(obj) + "\n")
    started = time.monotonic()
    result = store.cli("import", str(path))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, describe(result)
    assert "imported 50 accounts, 0 modules, 5000 tokens" in result.stderr, describe(result)
    print(f"\n{stores.backend}: imported 5,000 tokens in {elapsed:.1f} s (process included)")
    assert store.tokens_total("limit=0") == 5000
    assert dict(store.query("SELECT status, count(*) FROM api_tokens GROUP BY status")) == \
        {"Active": 4400, "Disabled": 400, "Deleted": 200}
    assert store.query("SELECT count(*) FROM api_tokens WHERE account_id = 'ACC-6000-0007'") \
        == [(100,)]
    assert store.count("accounts") == 50
    assert store.count("user_groups") == 50
    assert store.count("api_token_modules") == sum(min(1 + t % 3, 8 - t % 8)
                                                   for t in range(5000))
