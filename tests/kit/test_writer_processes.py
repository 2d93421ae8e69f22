"""Two real `tokenhouse serve` processes on one SQLite file, writing at once: each has its own
writer (kit/db.Writer), and between the processes SQLite's lock decides (they queue through
busy_timeout). Every write lands, none is a 409 it did not ask for, a 500 or a 503, and no
process logs `database is locked`."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers import TOKENS
from tests.live_server import LiveServer
from tests.processes import Server

CLIENTS = 16
CREATES = 60  # per process
PUTS = 30  # per process, all of them of the same token


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Server]]:
    live = LiveServer.start("sqlite", tmp_path_factory.mktemp("two-writers"))
    try:
        with Server(cwd=live.workdir, env=live.env) as second:
            second.wait_healthy()
            yield live, second
    finally:
        live.stop()


def test_two_processes_write_one_sqlite_file_at_once(
        two: tuple[LiveServer, Server], tmp_path: Path) -> None:
    live, second = two
    headers = {"Authorization": f"Bearer {live.admin_secret}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=60) as setup:
        target = setup.post(TOKENS, json={"name": "Shared", "account": {"id": live.account_id},
                                          "modules": [{"id": "MOD-1732"}]})
        assert target.status_code == 201, target.text
    token_id = target.json()["id"]
    urls = (live.url, second.base_url)
    jobs = [(url, "create", n) for url in urls for n in range(CREATES)]
    jobs += [(url, "put", n) for url in urls for n in range(PUTS)]
    jobs.sort(key=lambda job: job[2])  # both processes, both kinds, at once

    def run(job: tuple[str, str, int]) -> httpx.Response:
        url, kind, n = job
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            if kind == "create":
                return client.post(TOKENS, json={
                    "name": f"From {url[-5:]} {n}", "account": {"id": live.account_id},
                    "modules": [{"id": "MOD-1732"}]})
            return client.put(f"{TOKENS}/{token_id}", json={"description": f"{url} {n}"})

    with ThreadPoolExecutor(CLIENTS) as pool:
        responses = list(pool.map(run, jobs))
    for (_, kind, _), response in zip(jobs, responses, strict=True):
        assert response.status_code == (201 if kind == "create" else 200), response.text
    with httpx.Client(base_url=second.base_url, headers=headers, timeout=60) as check:
        listed = check.get(TOKENS, params={"limit": 0})
        # The bootstrap's admin token, the shared one, and every create.
        assert listed.json()["$meta"]["pagination"]["total"] == 2 + 2 * CREATES
        # Every PUT bumped the revision once: none was lost to another process.
        assert check.get(f"{TOKENS}/{token_id}").json()["revision"] == 1 + 2 * PUTS
    for log in (live.log(10**7), second.logs()):
        assert "database is locked" not in log
        assert "Traceback" not in log
