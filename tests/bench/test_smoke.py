"""The load benchmark (bench/run.py) in its smoke mode: tiny data, one-second runs. Checks that
it works end to end (data generation, import, server, wrk with every scenario script, the JSON
report), not how fast anything is: no timed assertion here.

wrk is Debian's package ('make install-test' installs it): without it the test is skipped,
unless the CI environment variable is set, where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import BACKENDS, PG_ADMIN_DSN

ROOT = Path(__file__).resolve().parent.parent.parent
RUN = ROOT / "bench" / "run.py"
SCENARIOS = {"healthz", "read", "list", "create"}
TIMEOUT = 600

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        reason = ("wrk is missing: the benchmark smoke test needs Debian's wrk package "
                  "('make install-test' installs it)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_smoke_run_measures_every_scenario(backend: str, wrk: str, tmp_path: Path) -> None:
    output = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHOUSE_")}
    result = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--database", backend, "--pg-dsn", PG_ADMIN_DSN,
         "--wrk", wrk, "--output", str(output)],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=TIMEOUT, check=False)
    described = (f"exit {result.returncode}\n--- stdout\n{result.stdout}\n"
                 f"--- stderr\n{result.stderr}")
    assert result.returncode == 0, described
    assert output.is_file(), described

    report = json.loads(output.read_text())
    assert report["mode"] == "smoke" and report["database"] == backend
    runs = report["runs"]
    assert {run["scenario"] for run in runs} == SCENARIOS
    assert {run["connections"] for run in runs} == {16, 64}
    for run in runs:
        where = f"{run['scenario']} at {run['connections']} connections: {run}"
        assert run["requests"] > 0, where
        assert run["non_2xx"] == 0, where
        assert run["socket_errors"] == 0, where
        assert run["latency_ms"]["p50"] > 0 and run["latency_ms"]["p99"] > 0, where
        assert run["ratios"]["throughput"] is not None, where
    workers = report["memory"]["workers"]
    assert len(workers) == 2 and all(w["peak_rss_mb"] > 0 for w in workers)
    assert {t["target"] for t in report["targets"]["results"]} >= {
        "read: p99", "list: p99", "create: throughput", "peak RSS per worker"}
    assert report["server_stop"]["clean"], report.get("server_log_tail")
    # The table is printed too.
    assert "healthz" in result.stdout and "targets at 16 connections" in result.stdout
