"""GET /metrics of `tokenhouse serve --workers 2` (issue 12), real processes on SQLite and
PostgreSQL: whichever worker answers a scrape shows the requests of both, summed; a worker
killed outright leaves its counts but not its live gauges; the private directory of the
workers' values is gone once the server stops."""

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.databases import BACKENDS
from tests.helpers import TOKENS
from tests.live_server import LiveServer
from tests.processes import Server, clean_env, describe, run_cli

pytestmark = pytest.mark.slow

ROUTE = f"{TOKENS}/{{token_id}}"
REQUESTS = "tokenhouse_http_requests_total"
# Each worker publishes its counts once a second (kit/metrics.SYNC_SECONDS).
SETTLE = 5.0


@dataclass
class Workers:
    live: LiveServer
    server: Server
    tmp: Path

    def directory(self) -> Path:
        found = list(self.tmp.glob("tokenhouse-metrics-*"))
        assert len(found) == 1, found
        return found[0]


@pytest.fixture(scope="module", params=BACKENDS)
def workers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Workers]:
    """A migrated, bootstrapped database, served by `tokenhouse serve --workers 2` whose
    temporary files go to a directory of the test's (TMPDIR)."""
    work = tmp_path_factory.mktemp(f"metrics-{request.param}")
    live = LiveServer.start(request.param, work / "live")
    tmp = work / "tmp"
    tmp.mkdir()
    server = Server("--workers", "2", cwd=live.workdir, env={**live.env, "TMPDIR": str(tmp)})
    try:
        server.wait_healthy()
        yield Workers(live, server, tmp)
    finally:
        server.stop()
        live.stop()


def read(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:  # a new connection
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def served(server: Server, labels: dict[str, str]) -> float:
    return read(server).get((REQUESTS, frozenset(labels.items())), 0.0)


def per_worker(directory: Path, labels: dict[str, str]) -> dict[int, float]:
    """The count of `labels` each worker wrote (by pid), read from the files themselves."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            if REQUESTS.removesuffix("_total") in key and all(
                    f'"{name}": "{label}"' in key for name, label in labels.items()):
                counts[pid] = counts.get(pid, 0.0) + value
    return counts


def read_token(workers: Workers) -> None:
    secret, token_id = workers.live.admin_secret, workers.live.token["id"]
    # A connection per request: the kernel hands each to either worker.
    with httpx.Client(base_url=workers.server.base_url, timeout=10,
                      headers={"Authorization": f"Bearer {secret}"}) as client:
        assert client.get(f"{TOKENS}/{token_id}",
                          headers={"Connection": "close"}).status_code == 200


def test_both_workers_are_summed(workers: Workers) -> None:
    labels = {"route": ROUTE, "method": "GET", "status": "200"}
    directory = workers.directory()
    assert os.stat(directory).st_mode & 0o077 == 0  # private to the server's user
    sent = 0
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(8) as pool:
        # Until each worker has served some (and published them: files show it).
        while len(per_worker(directory, labels)) < 2:
            assert time.monotonic() < deadline, "one worker served every request"
            list(pool.map(lambda _: read_token(workers), range(40)))
            sent += 40
            time.sleep(1.2)
    deadline = time.monotonic() + SETTLE
    while served(workers.server, labels) != sent and time.monotonic() < deadline:
        time.sleep(0.1)
    # Every scrape, whichever worker answers it, shows the sum.
    for _ in range(6):
        assert served(workers.server, labels) == sent
    counts = per_worker(directory, labels)
    assert sum(counts.values()) == sent and all(counts.values())


def test_a_killed_worker_keeps_its_counts_and_drops_its_gauges(workers: Workers) -> None:
    labels = {"route": ROUTE, "method": "GET", "status": "200"}
    directory = workers.directory()
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(8) as pool:
        while True:  # each worker has the admin's credential in memory
            list(pool.map(lambda _: read_token(workers), range(40)))
            time.sleep(1.2)
            counts = per_worker(directory, labels)
            entries = read(workers.server)[("tokenhouse_cache_entries",
                                            frozenset({("cache", "credentials")}))]
            if len(counts) >= 2 and entries == 2:
                break
            assert time.monotonic() < deadline, (counts, entries)
    total = served(workers.server, labels)
    victim = max(counts)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        time.sleep(0.2)
        metrics = read(workers.server)
        entries = metrics[("tokenhouse_cache_entries", frozenset({("cache", "credentials")}))]
        # The survivor's credential alone (its replacement has none yet); counts all kept.
        if entries == 1:
            break
        assert time.monotonic() < deadline, entries
    assert metrics[(REQUESTS, frozenset(labels.items()))] == total
    assert metrics[("tokenhouse_invalidation_listening", frozenset())] == 1
    assert not list(directory.glob(f"gauge_live*_{victim}.db"))


def test_the_directory_is_removed_when_the_server_stops(workers: Workers) -> None:
    directory = workers.directory()
    assert workers.server.terminate() == 0
    assert not directory.exists()
    assert not list(workers.tmp.iterdir())


def test_a_directory_given_is_emptied_first(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR set by a supervisor: used, and its files of an earlier run
    (here one that is not even readable) are gone before the workers start."""
    live = LiveServer.start("sqlite", tmp_path / "live")
    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"left by an earlier run")
    (given / "notes.txt").write_text("not ours")
    server = Server("--workers", "2", cwd=live.workdir,
                    env={**live.env, "PROMETHEUS_MULTIPROC_DIR": str(given)})
    try:
        server.wait_healthy()
        read(server)
        assert not (given / "counter_1.db").exists()
        assert (given / "notes.txt").exists()
        assert {path.name.partition("_")[0] for path in given.glob("*.db")} >= {"counter"}
    finally:
        server.stop()
        live.stop()
    assert given.exists()  # the supervisor's, not removed


@pytest.mark.parametrize("case", ["missing", "holds the database", "others may write",
                                  "holds another .db"])
def test_a_directory_given_that_cannot_be_ours_stops_serve(tmp_path: Path, case: str) -> None:
    """Found by review: a `var/` given by mistake held tokenhouse.db, and the clean-up of
    `*.db` deleted it; a directory that did not exist made every worker crash and restart."""
    env = clean_env(TOKENHOUSE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/var/t.db",
                    TOKENHOUSE_SECRET_KEY="k" * 40)
    assert run_cli("migrate", cwd=tmp_path, env=env).returncode == 0
    given = {"missing": tmp_path / "nowhere", "holds the database": tmp_path / "var",
             "others may write": tmp_path / "shared", "holds another .db": tmp_path / "m"}[case]
    if case == "others may write":
        given.mkdir()
        given.chmod(0o777)
    if case == "holds another .db":
        given.mkdir(mode=0o700)
        (given / "inventory.db").write_bytes(b"someone's SQLite file")
    result = run_cli("serve", "--workers", "2", "--port", "1", cwd=tmp_path,
                     env={**env, "PROMETHEUS_MULTIPROC_DIR": str(given)})
    assert result.returncode == 2, describe(result)
    assert "PROMETHEUS_MULTIPROC_DIR" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "var" / "t.db").exists()
    if case == "holds another .db":
        assert (given / "inventory.db").exists()
