#!/usr/bin/env python3
"""Load benchmark of tokenhouse: a real `tokenhouse serve --workers 2` on a fresh database
filled with generated data, driven by wrk (a separate process) through four scenarios.

    .venv/bin/python bench/run.py            # --full: 1,000,000 tokens (PostgreSQL)
    .venv/bin/python bench/run.py --small    # 100,000 tokens (PostgreSQL, or --database sqlite)
    .venv/bin/python bench/run.py --smoke --database sqlite   # seconds; what CI runs

Scenarios (each at 16 connections, the figures that count, then at 64):
  healthz  GET /healthz: no I/O, the baseline every other figure is a ratio to
  read     GET /public/v1/accounts/api-tokens/{id}: each request authenticated with a token
           drawn at random from 10,000 known secrets, which reads itself
  list     GET /public/v1/accounts/api-tokens?eq(status,Active)&order=-audit.created.at&limit=10
           with a Client token of an account holding about 100 tokens of mixed statuses
  create   POST /public/v1/accounts/api-tokens: the admin token creates tokens in random
           Client accounts

Prints a table (requests/s, p50, p99, ratios to the baseline, peak RSS per worker, targets)
and writes everything as JSON to bench/results/<timestamp>-<mode>-<database>-<server>.json (or
--output). See bench/README.md. Needs wrk (`make bench-tools`, or apt-get install wrk).

Plain Python on purpose: it runs with the project's virtualenv (asyncpg, for PostgreSQL
administration, is a dependency of the project) and talks to the server over HTTP only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import platform
import random
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LUA_DIR = Path(__file__).resolve().parent / "lua"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PG = os.environ.get("TOKENHOUSE_BENCH_PG",
                            "postgresql://postgres@127.0.0.1:5432/postgres")
TOKENS_PATH = "/public/v1/accounts/api-tokens"
LIST_QUERY = "eq(status,Active)&order=-audit.created.at&limit=10"
ACCESS_MANAGEMENT = "MOD-1732"
# Extra modules a generated token may hold besides Access Management, by account type
# (each allowed for that type by the catalog of migrations/versions/0002_module_catalog.py).
EXTRA_MODULES = {"Client": ["MOD-3419", "MOD-4588", "MOD-5907", "MOD-6650"],
                 "Vendor": ["MOD-4073", "MOD-4588", "MOD-5907", "MOD-7281"]}
STATUSES = (("Active", 0.80), ("Disabled", 0.12), ("Deleted", 0.08))
MB = 1024 * 1024


@dataclass(frozen=True)
class Mode:
    name: str
    accounts: int
    tokens: int
    known: int         # tokens whose secrets the benchmark knows (scenario 2)
    duration: int      # seconds per measured run (wrk takes whole seconds)
    warmup: int        # seconds of warm-up per scenario, before its first measured run
    # Scenario 2 measures the common path, a credential (and token) each worker has seen: it
    # warms up in rounds of this many seconds until its rate stops rising (see warm_up).
    read_warmup: int = 0
    settle: bool = True  # wait for the previous scenario's writes before the next one


MODES = {
    "full": Mode("full", accounts=10_000, tokens=1_000_000, known=10_000, duration=10, warmup=3,
                 read_warmup=15),
    "small": Mode("small", accounts=1_000, tokens=100_000, known=10_000, duration=5, warmup=2,
                  read_warmup=15),
    "smoke": Mode("smoke", accounts=10, tokens=1_000, known=200, duration=1, warmup=1,
                  read_warmup=1, settle=False),
}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    script: str
    path: str
    expect: int        # the status every request should get


SCENARIOS = [
    Scenario("healthz", "GET /healthz (baseline, no I/O)", "healthz.lua", "/healthz", 200),
    Scenario("read", "GET api-tokens/{id}, random token reads itself", "read_self.lua",
             TOKENS_PATH, 200),
    Scenario("list", "GET api-tokens?eq(status,Active)&order=-created&limit=10 (Client)",
             "list_own.lua", f"{TOKENS_PATH}?{LIST_QUERY}", 200),
    Scenario("create", "POST api-tokens (admin, random Client account)", "create.lua",
             TOKENS_PATH, 201),
]
BY_NAME = {s.name: s for s in SCENARIOS}

# The targets of the issue, read at 16 connections.
TARGET_READ_RATIO = 0.75
TARGET_READ_P99_MS = 10.0
TARGET_LIST_P99_MS = 25.0
TARGET_CREATE_RPS = 500.0
TARGET_RSS_MB = 250.0


class BenchError(RuntimeError):
    """A step failed; the message says which and why."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the data ---------------------------------------------------------------------------


@dataclass
class Dataset:
    import_file: Path
    secrets_file: Path       # the known secrets, one a line
    accounts_file: Path      # Client account ids, one a line (scenario 4 creates there)
    showcase_account: str    # the Client account of scenario 3
    showcase_tokens: int
    showcase_statuses: dict[str, int]
    accounts: int
    tokens: int
    known: int
    token_modules: int
    statuses: dict[str, int]
    bytes: int


def _ids(rng: random.Random, prefix: str, count: int) -> list[str]:
    """`count` distinct random ids of the platform's form (PREFIX-dddd-dddd)."""
    return [f"{prefix}-{n // 10_000:04d}-{n % 10_000:04d}"
            for n in rng.sample(range(10**8), count)]


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """`total` spread over `parts`, each within +-50% of the mean, adding up exactly."""
    mean = total / parts
    counts = [max(1, round(mean * rng.uniform(0.5, 1.5))) for _ in range(parts)]
    diff = total - sum(counts)
    step = 1 if diff > 0 else -1
    i = 0
    while diff:
        if counts[i % parts] + step >= 1:
            counts[i % parts] += step
            diff -= step
        i += 1
    return counts


def generate(workdir: Path, mode: Mode, key: bytes, seed: int) -> Dataset:
    """The import file (JSON Lines, as `tokenhouse export` writes it), the known secrets and
    the Client account ids. Deterministic for a seed, but for the secrets."""
    rng = random.Random(seed)
    accounts = _ids(rng, "ACC", mode.accounts)
    # About 70% Client, the rest Vendor; the first account is a Client (the showcase).
    types = ["Client"] + ["Client" if rng.random() < 0.7 else "Vendor"
                          for _ in range(mode.accounts - 1)]
    counts = _split(rng, mode.tokens, mode.accounts)
    counts[0] = max(1, round(mode.tokens / mode.accounts))  # the showcase: about the mean
    # The difference goes to the last account, so that the total stays exact.
    counts[-1] += mode.tokens - sum(counts)
    if counts[-1] < 1:
        raise BenchError("too few tokens for the number of accounts")
    token_ids = _ids(rng, "TKN", mode.tokens)

    owner: list[int] = []
    for index, count in enumerate(counts):
        owner.extend([index] * count)
    client_tokens = [i for i, a in enumerate(owner) if types[a] == "Client"]
    if len(client_tokens) < mode.known:
        raise BenchError("not enough Client tokens for the known secrets")
    known = set(rng.sample(client_tokens, mode.known))
    del client_tokens

    now = int(time.time())
    oldest = now - 3 * 365 * 86400
    span = (now - oldest) * 1000
    statuses = {name: 0 for name, _ in STATUSES}
    showcase_statuses = {name: 0 for name, _ in STATUSES}
    # Status by a uniform draw against cumulative weights.
    bounds, acc = [], 0.0
    for name, weight in STATUSES:
        acc += weight
        bounds.append((acc, name))
    # Module sets: Access Management plus 0 to 2 others allowed for the account type.
    combos = {kind: [[]] + [[m] for m in extra]
              + [[a, b] for i, a in enumerate(extra) for b in extra[i + 1:]]
              for kind, extra in EXTRA_MODULES.items()}
    link_rows = 0

    import_file = workdir / "import.jsonl"
    secrets_file = workdir / "secrets.txt"
    accounts_file = workdir / "client-accounts.txt"
    # Lines are written with f-strings rather than json.dumps (ten times faster, and every
    # value here is plain ASCII that needs no escaping); `tokenhouse import` validates them.
    with import_file.open("w", encoding="utf-8") as out, \
            secrets_file.open("w", encoding="utf-8") as known_out:
        for index, (account_id, kind) in enumerate(zip(accounts, types, strict=True)):
            out.write(f'{{"id":"{account_id}","name":"Bench {kind} {index + 1}",'
                      f'"type":"{kind}"}}\n')
        for index, token_id in enumerate(token_ids):
            account = owner[index]
            kind = types[account]
            if index in known:
                status = "Active"
                secret = f"idt:{token_id}:{secrets.token_urlsafe(32)}"
                secret_hash = hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
                known_out.write(secret + "\n")
            else:
                draw = rng.random()
                status = next(name for bound, name in bounds if draw < bound)
                # Deleted tokens have no hash (a delete drops it); the others get one whose
                # secret nobody knows, so the unique index has its real size.
                secret_hash = (None if status == "Deleted"
                               else f"{rng.getrandbits(256):064x}")
            modules = [ACCESS_MANAGEMENT, *rng.choice(combos[kind])]
            link_rows += len(modules)
            statuses[status] += 1
            if account == 0:
                showcase_statuses[status] += 1
            millis = oldest * 1000 + rng.randrange(span)
            created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
            module_refs = ",".join(f'{{"id":"{m}"}}' for m in modules)
            hash_part = f',"secretHash":"{secret_hash}"' if secret_hash else ""
            out.write(f'{{"id":"{token_id}","name":"Token {index + 1}",'
                      f'"account":{{"id":"{accounts[account]}"}},"modules":[{module_refs}],'
                      f'"status":"{status}","audit":{{"created":{{"at":"{created}.'
                      f'{millis % 1000:03d}Z"}}}}{hash_part}}}\n')
    accounts_file.write_text("".join(f"{a}\n" for a, t in zip(accounts, types, strict=True)
                                     if t == "Client"))
    return Dataset(import_file=import_file, secrets_file=secrets_file,
                   accounts_file=accounts_file, showcase_account=accounts[0],
                   showcase_tokens=counts[0], showcase_statuses=showcase_statuses,
                   accounts=mode.accounts, tokens=mode.tokens, known=mode.known,
                   token_modules=link_rows, statuses=statuses,
                   bytes=import_file.stat().st_size)


# -- the database -----------------------------------------------------------------------


class Database:
    """A fresh PostgreSQL database (created and dropped here) or a SQLite file in the work
    directory."""

    def __init__(self, kind: str, workdir: Path, admin_dsn: str):
        self.kind = kind
        self.admin_dsn = admin_dsn
        self.name: str | None = None
        self.path = workdir / "bench.db"

    @property
    def url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite+aiosqlite:///{self.path}"
        server = self.admin_dsn.rsplit("/", 1)[0]
        return f"{server.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{self.name}"

    def _dsn(self, database: str | None = None) -> str:
        if database is None:
            return self.admin_dsn
        return f"{self.admin_dsn.rsplit('/', 1)[0]}/{database}"

    def create(self) -> None:
        if self.kind == "sqlite":
            return
        self.name = f"tokenhouse_bench_{secrets.token_hex(4)}"
        self._pg(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if self.kind == "sqlite" or self.name is None:
            return
        self._pg(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.name = None

    def analyze(self) -> None:
        """Statistics and visibility map after the bulk import, as autovacuum would leave
        them: the runs then measure the steady state, not the planner's first guesses or an
        autovacuum that starts in the middle of a run."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as connection:
                connection.execute("ANALYZE")
            return
        self._pg("VACUUM (ANALYZE)", database=self.name)

    def settle(self) -> None:
        """After a scenario, what autovacuum and the checkpointer would do in time: the
        next scenario then does not pay for this one's writes (lastAccessAt, creates)."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        self._pg("VACUUM api_tokens", database=self.name)
        self._pg("CHECKPOINT", database=self.name)

    def version(self) -> str:
        if self.kind == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        return str(self._pg("SELECT version()", database=self.name, fetch=True))

    def size(self) -> int | None:
        if self.kind == "sqlite":
            return self.path.stat().st_size if self.path.exists() else None
        return int(self._pg(f"SELECT pg_database_size('{self.name}')", fetch=True))

    def _pg(self, sql: str, *, database: str | None = None, fetch: bool = False) -> Any:
        import asyncpg

        async def run() -> Any:
            connection = await asyncpg.connect(self._dsn(database))
            try:
                if fetch:
                    return await connection.fetchval(sql)
                await connection.execute(sql)
                return None
            finally:
                await connection.close()

        return asyncio.run(run())


# -- processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tokenhouse_script() -> Path:
    script = Path(sys.executable).parent / "tokenhouse"
    if not script.exists():
        raise BenchError(f"no tokenhouse command next to {sys.executable}: run this with the "
                         "project's virtualenv (.venv/bin/python bench/run.py), after "
                         "'make install'")
    return script


def run_cli(args: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> str:
    """Run `tokenhouse ARGS`; its stdout, or BenchError with its output."""
    command = [str(tokenhouse_script()), *args]
    try:
        result = subprocess.run(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"'tokenhouse {' '.join(args)}' did not finish within "
                         f"{timeout:.0f}s") from exc
    if result.returncode != 0:
        raise BenchError(f"'tokenhouse {' '.join(args)}' exited {result.returncode}:\n"
                         f"{result.stdout[-2000:]}{result.stderr[-4000:]}")
    return result.stdout


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


# -- memory of the server's processes -----------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes ({} if it is gone)."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, amount = line.split(":", 1)
                    values[name] = int(amount.split()[0]) * 1024
    except OSError:
        return {}
    return values


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                found.extend(int(p) for p in handle.read().split())
    except OSError:
        pass
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_backends(database: str | None) -> list[int]:
    """The PostgreSQL backend processes serving `database` (their title names it)."""
    if not database:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            command = _cmdline(int(entry))
            if command.startswith("postgres: ") and f" {database} " in command:
                found.append(int(entry))
    return found


class CpuMeter:
    """CPU seconds spent by the server's workers, the database's backends and wrk during one
    run. On a shared machine these are steadier than requests/s: they say what a request
    costs, whatever else was running."""

    def __init__(self, sampler: MemorySampler, database: str | None):
        self.sampler = sampler
        self.database = database

    def snapshot(self) -> dict[str, dict[int, float]]:
        return {"server": {pid: cpu_seconds(pid) for pid in self.sampler.tree()},
                "postgres": {pid: cpu_seconds(pid) for pid in postgres_backends(self.database)}}

    @staticmethod
    def delta(before: dict[str, dict[int, float]],
              after: dict[str, dict[int, float]]) -> dict[str, float]:
        return {part: round(sum(value - before[part].get(pid, 0.0)
                                for pid, value in after[part].items()), 3)
                for part in after}


class MemorySampler:
    """Samples the RSS of the server's process tree (every `interval` seconds) in a thread.
    Workers are the descendants of the server process but for multiprocessing's resource
    tracker; the server process itself is the supervisor."""

    def __init__(self, root: int, interval: float = 0.2):
        self.root = root
        self.interval = interval
        self.peak: dict[int, int] = {}         # pid -> highest sampled RSS
        self.hwm: dict[int, int] = {}          # pid -> VmHWM last read
        self.commands: dict[int, str] = {}
        self._window: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def tree(self) -> list[int]:
        pids, pending = [], [self.root]
        while pending:
            pid = pending.pop()
            pids.append(pid)
            pending.extend(_children(pid))
        return pids

    def workers(self) -> list[int]:
        return [pid for pid in self.commands
                if pid != self.root and "resource_tracker" not in self.commands[pid]]

    def sample(self) -> None:
        for pid in self.tree():
            values = _status(pid)
            if not values:
                continue
            with self._lock:
                if pid not in self.commands:
                    self.commands[pid] = _cmdline(pid)
                rss = values.get("VmRSS", 0)
                self.peak[pid] = max(self.peak.get(pid, 0), rss)
                self._window[pid] = max(self._window.get(pid, 0), rss)
                self.hwm[pid] = max(self.hwm.get(pid, 0), values.get("VmHWM", 0))

    def window(self) -> dict[int, int]:
        """The highest RSS per process since the last call (one scenario run)."""
        self.sample()
        with self._lock:
            window, self._window = self._window, {}
        return window

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


# -- HTTP set-up calls --------------------------------------------------------------------


def http(method: str, url: str, *, secret: str | None = None, body: Any = None,
         timeout: float = 30.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if secret:
        request.add_header("Authorization", f"Bearer {secret}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# -- wrk --------------------------------------------------------------------------------


@dataclass
class Run:
    scenario: str
    connections: int
    duration_s: float
    requests: int
    rps: float
    latency_ms: dict[str, float]
    errors: dict[str, int]
    non_2xx: int
    socket_errors: int
    rss_mb: dict[str, float] = field(default_factory=dict)   # worker pid -> peak RSS in the run
    cpu_s: dict[str, float] = field(default_factory=dict)    # server, postgres, wrk
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    load_before: list[float] = field(default_factory=list)
    profiled: bool = False
    ratios: dict[str, float | None] = field(default_factory=dict)


def wrk_version(wrk: str) -> str:
    result = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).splitlines()[0].strip() if (
        result.stdout or result.stderr) else "unknown"


def run_wrk(wrk: str, scenario: Scenario, *, base_url: str, connections: int, threads: int,
            duration: int, env: dict[str, str]) -> dict[str, Any]:
    """One wrk run; its BENCH-RESULT (see lua/common.lua)."""
    command = [wrk, f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration}s",
               "--timeout", "10s", "-s", str(LUA_DIR / scenario.script),
               f"{base_url}{scenario.path}"]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=duration + 60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish: {' '.join(command)}") from exc
    for line in result.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line.removeprefix("BENCH-RESULT "))
    raise BenchError(f"wrk gave no result (exit {result.returncode}):\n{' '.join(command)}\n"
                     f"{result.stdout[-2000:]}{result.stderr[-2000:]}")


def warm_up(args: argparse.Namespace, scenario: Scenario, base_url: str,
            env: dict[str, str], seconds: int, *, steady: bool) -> list[float]:
    """Load before measuring; returns the req/s of each round. With `steady`, rounds of
    `seconds` go on until one is within 5% of the one before (at most MAX_WARMUP_ROUNDS):
    scenario 2 is measured once every worker holds the 10,000 credentials it is drawn
    from, however long filling them takes on this machine."""
    rounds: list[float] = []
    connections = args.connection_list[0]
    while True:
        log(f"{scenario.name}: warm-up {seconds}s at {connections} connections")
        result = run_wrk(args.wrk, scenario, base_url=base_url, connections=connections,
                         threads=args.wrk_threads, duration=seconds, env=env)
        rounds.append(round(result["requests"] / max(result["duration_us"] / 1e6, 1e-9), 1))
        if not steady or len(rounds) >= MAX_WARMUP_ROUNDS or (
                len(rounds) > 1 and rounds[-1] <= rounds[-2] * 1.05):
            return rounds
        log(f"{scenario.name}: {rounds[-1]:,.0f} req/s, still rising")


MAX_WARMUP_ROUNDS = 6
SETTLE_SECONDS = 11  # the server's lastAccessAt interval (10 s by default), and a second


# -- the benchmark ----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load benchmark of tokenhouse (see bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="10,000 accounts, 1,000,000 tokens, 10 s runs (PostgreSQL only)")
    size.add_argument("--small", dest="mode", action="store_const", const="small",
                      help="1,000 accounts, 100,000 tokens, 5 s runs")
    size.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                      help="tiny data, 1 s runs: checks that everything works (CI)")
    parser.set_defaults(mode="full")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--pg-dsn", default=DEFAULT_PG,
                        help="PostgreSQL administration DSN (env TOKENHOUSE_BENCH_PG); a fresh "
                             "database is created there and dropped at the end")
    parser.add_argument("--scenarios", default=",".join(BY_NAME),
                        help="comma-separated subset of " + ",".join(BY_NAME))
    parser.add_argument("--connections", default="16,64",
                        help="comma-separated connection counts; the first is the one the "
                             "targets are read at")
    parser.add_argument("--duration", type=int, help="seconds per run (default: by mode)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per scenario, 0 for "
                                                   "none (default: by mode)")
    parser.add_argument("--accounts", type=int, help="override the mode's account count")
    parser.add_argument("--tokens", type=int, help="override the mode's token count")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="wrk executable")
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn",
                        help="uvicorn: 'tokenhouse serve' as shipped; granian: 'granian "
                             "--interface asgi --factory tokenhouse.app:create_app' (for the "
                             "stack comparison; needs --granian)")
    parser.add_argument("--granian", help="granian executable of a virtualenv that also has "
                                          "tokenhouse installed")
    parser.add_argument("--log-level", default="warning",
                        help="TOKENHOUSE_LOG_LEVEL of the server (uvicorn's 'info' adds an "
                             "access log line per request)")
    parser.add_argument("--profile", default="",
                        help="comma-separated scenarios to profile with py-spy (each worker, "
                             "during the first measured run); flame data next to the JSON")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy",
                        help="py-spy executable (not a project dependency)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--output", type=Path, help="where to write the JSON (default: "
                                                    "bench/results/<timestamp>-....json)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database and the work directory (printed) for a look")
    args = parser.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenario_list if s not in BY_NAME]
    if unknown or not args.scenario_list:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(BY_NAME)}")
    args.profile_list = [s.strip() for s in args.profile.split(",") if s.strip()]
    try:
        args.connection_list = [int(c) for c in args.connections.split(",") if c.strip()]
    except ValueError:
        parser.error("--connections takes integers, e.g. 16,64")
    if not args.connection_list or min(args.connection_list) < 1:
        parser.error("--connections takes positive integers, e.g. 16,64")
    if args.mode == "full" and args.database == "sqlite":
        parser.error("--full runs on PostgreSQL only (use --small or --smoke with SQLite)")
    if args.server == "granian" and not args.granian:
        args.granian = shutil.which("granian")
        if not args.granian:
            parser.error("--server granian needs --granian PATH (a granian in a virtualenv "
                         "that also has tokenhouse installed)")
    return args


def server_command(args: argparse.Namespace, port: int) -> list[str]:
    if args.server == "granian":
        return [args.granian, "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(args.workers), "--log-level",
                args.log_level, "--no-access-log", "tokenhouse.app:create_app"]
    return [str(tokenhouse_script()), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(args.workers)]


def versions(args: argparse.Namespace) -> dict[str, str]:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("tokenhouse", "fastapi", "starlette", "uvicorn", "uvloop", "httptools",
                    "sqlalchemy", "asyncpg", "aiosqlite", "pydantic"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    if args.server == "granian":
        result = subprocess.run([args.granian, "--version"], capture_output=True, text=True,
                                check=False)
        found["granian"] = (result.stdout or result.stderr).strip()
    found["wrk"] = wrk_version(args.wrk)
    return found


def cpu_probe() -> float:
    """CPU milliseconds of a fixed pure-Python loop (2,000,000 additions): how fast this
    machine runs Python right now, to tell a slow machine from a slow server when runs of
    different machines are compared (about 100 ms on a current desktop core)."""
    start = time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i
    return round((time.process_time() - start) * 1000, 1)


def git_state() -> dict[str, Any]:
    """The commit measured (read-only git commands)."""
    def git(*command: str) -> str:
        result = subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True,
                                check=False)
        return result.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def profile_start(args: argparse.Namespace, sampler: MemorySampler, scenario: str,
                  duration: int, out_dir: Path, stamp: str) -> list[subprocess.Popen[bytes]]:
    """py-spy on each worker for `duration` seconds; its messages go to a .log beside."""
    started = []
    for pid in sampler.workers():
        out = out_dir / f"{stamp}-profile-{scenario}-{pid}.txt"
        with out.with_suffix(".log").open("wb") as messages:
            started.append(subprocess.Popen(
                [args.py_spy, "record", "--pid", str(pid), "--duration", str(duration),
                 "--rate", "200", "--nonblocking", "--format", "raw", "--output", str(out)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=messages))
    return started


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    base = MODES[args.mode]
    mode = Mode(base.name, accounts=args.accounts or base.accounts,
                tokens=args.tokens or base.tokens,
                known=min(base.known, args.tokens or base.tokens),
                duration=args.duration or base.duration,
                warmup=base.warmup if args.warmup is None else args.warmup,
                read_warmup=base.read_warmup if args.warmup is None else args.warmup)
    if not shutil.which(args.wrk):
        raise BenchError(f"wrk is not installed ({args.wrk}): 'make bench-tools' or "
                         "'apt-get install wrk'")
    if args.profile_list and not shutil.which(args.py_spy):
        raise BenchError(f"--profile needs py-spy ({args.py_spy}); install it in a throwaway "
                         "virtualenv and pass --py-spy PATH")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or RESULTS_DIR / f"{stamp}-{mode.name}-{args.database}-{args.server}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode.name, "database": args.database, "server": args.server,
        "workers": args.workers, "log_level": args.log_level,
        "parameters": asdict(mode) | {"connections": args.connection_list,
                                      "wrk_threads": args.wrk_threads, "seed": args.seed,
                                      "scenarios": args.scenario_list},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_before": list(os.getloadavg()), "cpu_probe_ms_before": cpu_probe()},
        "versions": versions(args), "git": git_state(), "timings_s": {}, "runs": [],
        "warmup_rps": {},
    }
    timings = report["timings_s"]
    workdir = Path(tempfile.mkdtemp(prefix="tokenhouse-bench-"))
    database = Database(args.database, workdir, args.pg_dsn)
    server: Server | None = None
    sampler: MemorySampler | None = None
    began = time.monotonic()
    try:
        key = secrets.token_urlsafe(48)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHOUSE_")}
        database.create()
        env.update(TOKENHOUSE_DATABASE_URL=database.url, TOKENHOUSE_SECRET_KEY=key,
                   TOKENHOUSE_LOG_LEVEL=args.log_level)
        log(f"mode {mode.name}: {mode.accounts:,} accounts, {mode.tokens:,} tokens on "
            f"{args.database} ({database.name or database.path}); work directory {workdir}")

        step = time.monotonic()
        data = generate(workdir, mode, key.encode(), args.seed)
        timings["generate"] = round(time.monotonic() - step, 2)
        report["data"] = {k: v for k, v in asdict(data).items() if not k.endswith("_file")}
        log(f"generated {data.bytes / MB:,.0f} MB of JSON Lines in {timings['generate']}s "
            f"({data.token_modules:,} token-module links; statuses {data.statuses})")

        step = time.monotonic()
        run_cli(["migrate"], env=env, cwd=workdir, timeout=300)
        timings["migrate"] = round(time.monotonic() - step, 2)

        step = time.monotonic()
        run_cli(["import", str(data.import_file)], env=env, cwd=workdir, timeout=3600)
        timings["import"] = round(time.monotonic() - step, 2)
        log(f"imported in {timings['import']}s")

        step = time.monotonic()
        database.analyze()
        timings["analyze"] = round(time.monotonic() - step, 2)
        report["database_info"] = {"version": database.version(), "size_bytes": database.size()}

        step = time.monotonic()
        admin = json.loads(run_cli(["bootstrap", "--json"], env=env, cwd=workdir, timeout=120))
        admin_secret = admin["token"]["token"]
        timings["bootstrap"] = round(time.monotonic() - step, 2)

        port = free_port()
        step = time.monotonic()
        server = Server(server_command(args, port), env=env, cwd=workdir, port=port,
                        log_path=workdir / "server.log")
        server.wait_ready()
        timings["server_start"] = round(time.monotonic() - step, 2)
        log(f"{args.server} serving on {server.base_url} with {args.workers} workers "
            f"(started in {timings['server_start']}s)")

        # Scenario 3's Client token, made through the API as a client would.
        status, body = http("POST", f"{server.base_url}{TOKENS_PATH}", secret=admin_secret,
                            body={"name": "Bench client", "account": {"id": data.showcase_account},
                                  "modules": [{"id": ACCESS_MANAGEMENT}]})
        if status != 201:
            raise BenchError(f"creating the Client token answered {status}: {body}")
        client_secret = body["token"]

        wrk_env = dict(os.environ, BENCH_LUA_DIR=str(LUA_DIR),
                       BENCH_SECRETS=str(data.secrets_file),
                       BENCH_ACCOUNTS=str(data.accounts_file),
                       BENCH_ADMIN_SECRET=admin_secret, BENCH_CLIENT_SECRET=client_secret,
                       BENCH_TAG=f"bench {stamp}")
        _check(server.base_url, data, client_secret, admin_secret)
        if args.keep:
            # What it takes to serve the kept database again, and the secrets to call it with.
            (workdir / "bench.env").write_text("".join(
                f"export {k}='{v}'\n" for k, v in (
                    ("TOKENHOUSE_DATABASE_URL", database.url), ("TOKENHOUSE_SECRET_KEY", key),
                    ("BENCH_ADMIN_SECRET", admin_secret),
                    ("BENCH_CLIENT_SECRET", client_secret))))

        sampler = MemorySampler(server.pid)
        sampler.start()
        meter = CpuMeter(sampler, database.name)
        sampler.window()
        warmups: dict[str, list[float]] = report["warmup_rps"]
        for number, name in enumerate(args.scenario_list):
            scenario = BY_NAME[name]
            if number > 0 and mode.settle:
                # The workers write the previous scenario's lastAccessAt values within one
                # interval (10 s); then the database is vacuumed and checkpointed.
                log(f"settling for {SETTLE_SECONDS}s, then VACUUM and CHECKPOINT")
                time.sleep(SETTLE_SECONDS)
                database.settle()
            warmup = max(mode.warmup, mode.read_warmup) if name == "read" else mode.warmup
            if warmup > 0:
                warmups[name] = warm_up(args, scenario, server.base_url, wrk_env, warmup,
                                        steady=name == "read" and mode.read_warmup > 1)
            for index, connections in enumerate(args.connection_list):
                sampler.window()
                load = list(os.getloadavg())
                profiling = []
                if name in args.profile_list and index == 0:
                    profiling = profile_start(args, sampler, name, mode.duration,
                                              output.parent, stamp)
                cpu_before = meter.snapshot()
                wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                raw = run_wrk(args.wrk, scenario, base_url=server.base_url,
                              connections=connections, threads=args.wrk_threads,
                              duration=mode.duration, env=wrk_env)
                wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = meter.delta(cpu_before, meter.snapshot())
                cpu["wrk"] = round(wrk_after.ru_utime + wrk_after.ru_stime
                                   - wrk_before.ru_utime - wrk_before.ru_stime, 3)
                for process in profiling:
                    process.wait(60)
                window = {pid: rss for pid, rss in sampler.window().items()
                          if pid in sampler.workers()}
                run = _run(name, connections, raw, window, load, bool(profiling), cpu)
                report["runs"].append(run)
                log(f"{name} c={connections}: {run.rps:,.0f} req/s, p50 "
                    f"{run.latency_ms['p50']:.2f} ms, p99 {run.latency_ms['p99']:.2f} ms, "
                    f"non-2xx {run.non_2xx}, socket errors {run.socket_errors}")
        sampler.stop()
        workers = sampler.workers()
        report["memory"] = {
            "server_pid": server.pid,
            "supervisor": {"pid": server.pid,
                           "peak_rss_mb": round(sampler.hwm.get(server.pid, 0) / MB, 1)},
            "workers": [{"pid": pid, "peak_rss_mb": round(sampler.hwm.get(pid, 0) / MB, 1),
                         "sampled_peak_rss_mb": round(sampler.peak.get(pid, 0) / MB, 1),
                         "command": sampler.commands.get(pid, "")[:200]}
                        for pid in workers],
            "method": "VmHWM of /proc/<pid>/status at the end of the runs (peak RSS since "
                      "the process started), and VmRSS sampled every 0.2 s",
        }
        code = server.stop()
        report["server_stop"] = {"exit_code": code, "clean": code == 0}
        report["server_log_tail"] = server.logs()[-3000:]
        server = None
    finally:
        if sampler is not None:
            sampler.stop()
        if server is not None:
            server.stop()
        if args.keep:
            log(f"kept: work directory {workdir}, database {database.name or database.path}")
        else:
            try:
                database.drop()
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    timings["total"] = round(time.monotonic() - began, 1)
    report["machine"]["load_after"] = list(os.getloadavg())
    report["machine"]["cpu_probe_ms_after"] = cpu_probe()
    _score(report)
    report["runs"] = [asdict(r) for r in report["runs"]]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    report["output"] = str(output)
    return report


def _check(base_url: str, data: Dataset, client_secret: str, admin_secret: str) -> None:
    """One request of each scenario, so that a set-up mistake fails here with its answer
    rather than as a column of errors."""
    secret = data.secrets_file.read_text().split("\n", 1)[0]
    token_id = secret.split(":")[1]
    account = data.accounts_file.read_text().split("\n", 1)[0]
    checks = [
        ("healthz", http("GET", f"{base_url}/healthz"), 200),
        ("read", http("GET", f"{base_url}{TOKENS_PATH}/{token_id}", secret=secret), 200),
        ("list", http("GET", f"{base_url}{TOKENS_PATH}?{LIST_QUERY}", secret=client_secret),
         200),
        ("create", http("POST", f"{base_url}{TOKENS_PATH}", secret=admin_secret,
                        body={"name": "Bench check", "account": {"id": account},
                              "modules": [{"id": ACCESS_MANAGEMENT}]}), 201),
    ]
    for name, (status, body), expected in checks:
        if status != expected:
            raise BenchError(f"scenario {name}: the check request answered {status} "
                             f"(expected {expected}): {str(body)[:1000]}")
    status, body = checks[2][1]
    if not body["data"] or any(item["status"] != "Active" for item in body["data"]):
        raise BenchError(f"scenario list: unexpected page {str(body)[:1000]}")


def _run(name: str, connections: int, raw: dict[str, Any], window: dict[int, int],
         load: list[float], profiled: bool, cpu: dict[str, float]) -> Run:
    duration = raw["duration_us"] / 1e6
    requests = max(raw["requests"], 1)
    errors = raw["errors"]
    latency = {k: round(v / 1000, 3) for k, v in raw["latency_us"].items()}
    return Run(scenario=name, connections=connections, duration_s=round(duration, 3),
               requests=raw["requests"], rps=round(raw["requests"] / duration, 1),
               latency_ms=latency, errors=errors, non_2xx=errors["status"],
               socket_errors=sum(v for k, v in errors.items() if k != "status"),
               rss_mb={str(pid): round(rss / MB, 1) for pid, rss in window.items()},
               load_before=[round(x, 2) for x in load], profiled=profiled, cpu_s=cpu,
               cpu_ms_per_request={k: round(v * 1000 / requests, 3) for k, v in cpu.items()})


def _score(report: dict[str, Any]) -> None:
    """Ratios to the baseline at the same connection count, and the targets."""
    runs: list[Run] = report["runs"]
    baseline = {r.connections: r for r in runs if r.scenario == "healthz"}
    for run in runs:
        base = baseline.get(run.connections)
        if base is None or run.scenario == "healthz":
            run.ratios = {"throughput": 1.0 if base is run else None,
                          "p50": 1.0 if base is run else None,
                          "p99": 1.0 if base is run else None}
            continue
        run.ratios = {"throughput": round(run.rps / base.rps, 3) if base.rps else None,
                      "p50": round(run.latency_ms["p50"] / base.latency_ms["p50"], 2)
                      if base.latency_ms["p50"] else None,
                      "p99": round(run.latency_ms["p99"] / base.latency_ms["p99"], 2)
                      if base.latency_ms["p99"] else None}
    connections = report["parameters"]["connections"][0]
    at = {r.scenario: r for r in runs if r.connections == connections}
    indicative = not (report["mode"] == "full" and report["database"] == "postgresql")
    targets = []

    def target(name: str, wanted: str, measured: str, met: bool | None, note: str = "") -> None:
        targets.append({"target": name, "wanted": wanted, "measured": measured,
                        "met": met, "note": note})

    read = at.get("read")
    if read is not None:
        ratio = read.ratios.get("throughput")
        target("read: throughput vs baseline", f">= {TARGET_READ_RATIO}",
               f"{ratio}" if ratio is not None else "no baseline",
               None if ratio is None else ratio >= TARGET_READ_RATIO)
        target("read: p99", f"< {TARGET_READ_P99_MS} ms", f"{read.latency_ms['p99']} ms",
               read.latency_ms["p99"] < TARGET_READ_P99_MS)
    listing = at.get("list")
    if listing is not None:
        target("list: p99", f"< {TARGET_LIST_P99_MS} ms", f"{listing.latency_ms['p99']} ms",
               listing.latency_ms["p99"] < TARGET_LIST_P99_MS,
               "the target is for 1,000,000 tokens on PostgreSQL" if indicative else "")
    create = at.get("create")
    if create is not None:
        target("create: throughput", f">= {TARGET_CREATE_RPS:.0f}/s", f"{create.rps}/s",
               create.rps >= TARGET_CREATE_RPS)
    memory = report.get("memory")
    if memory and memory["workers"]:
        peak = max(w["peak_rss_mb"] for w in memory["workers"])
        target("peak RSS per worker", f"< {TARGET_RSS_MB:.0f} MB", f"{peak} MB",
               peak < TARGET_RSS_MB)
    report["targets"] = {"connections": connections, "indicative": indicative,
                         "results": targets}


def render(report: dict[str, Any]) -> str:
    data = report.get("data", {})
    lines = [
        f"tokenhouse benchmark: {report['mode']} on {report['database']}, {report['server']} "
        f"with {report['workers']} workers; {data.get('tokens', 0):,} tokens in "
        f"{data.get('accounts', 0):,} accounts; {report['parameters']['duration']} s runs; "
        f"{report['machine']['cpus']} CPUs (load {report['machine']['load_before'][0]:.1f}, "
        f"CPU probe {report['machine']['cpu_probe_ms_before']:.0f} ms)",
        "",
        f"{'scenario':<9} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'x rps':>6} {'x p50':>6} {'x p99':>6} {'non2xx':>6} {'sockerr':>7} "
        f"{'RSS MB/worker':>14} {'CPU ms/req app/db':>17}",
    ]
    for run in report["runs"]:
        ratios = run["ratios"]
        rss = "/".join(f"{v:.0f}" for v in run["rss_mb"].values())
        cpu = run["cpu_ms_per_request"]
        cpu_text = f"{cpu.get('server', 0):.2f}/{cpu.get('postgres', 0):.2f}"

        def fmt(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        lines.append(
            f"{run['scenario']:<9} {run['connections']:>5} {run['rps']:>9,.0f} "
            f"{run['latency_ms']['p50']:>8.2f} {run['latency_ms']['p99']:>8.2f} "
            f"{fmt(ratios.get('throughput'), '.2f'):>6} {fmt(ratios.get('p50'), '.1f'):>6} "
            f"{fmt(ratios.get('p99'), '.1f'):>6} {run['non_2xx']:>6} "
            f"{run['socket_errors']:>7} {rss:>14} {cpu_text:>17}"
            + ("  (profiled)" if run["profiled"] else ""))
    memory = report.get("memory")
    if memory:
        workers = ", ".join(f"{w['peak_rss_mb']:.0f} MB" for w in memory["workers"])
        lines += ["", f"peak RSS (VmHWM): workers {workers}; supervisor "
                      f"{memory['supervisor']['peak_rss_mb']:.0f} MB"]
    targets = report.get("targets")
    if targets:
        note = " (indicative: not the full PostgreSQL set)" if targets["indicative"] else ""
        lines += ["", f"targets at {targets['connections']} connections{note}:"]
        for t in targets["results"]:
            verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
            lines.append(f"  {t['target']:<30} wanted {t['wanted']:<10} measured "
                         f"{t['measured']:<14} {verdict}" + (f"  ({t['note']})" if t["note"]
                                                               else ""))
    timings = report["timings_s"]
    lines += ["", "timings: " + ", ".join(f"{k} {v}s" for k, v in timings.items())]
    stop = report.get("server_stop", {})
    lines.append(f"server stopped with SIGTERM: exit code {stop.get('exit_code')}")
    return "\n".join(lines)


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM to the benchmark cleans up like Ctrl-C (server stopped, database dropped)."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with _terminate_as_exit():
            report = benchmark(args)
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    print(render(report))
    print(f"\nresults: {report['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
