"""The load benchmark (bench/run.py) in its smoke mode: tiny data, one-second runs. Checks that
it works end to end (data generation, import and export, the three servers, wrk with every
scenario script, the cache counters the workers log at shutdown, the webhook deliveries to a
local receiver, the JSON report), not how fast anything is: no timed assertion here.

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
SCENARIOS = {"healthz", "read", "introspect", "list", "create", "read-cold", "read-mix"}
MIX_PHASES = ["0-1s", "1-2s", "2-3s"]  # smoke's read-mix windows
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
    # At log level info the workers' cache counters reach the log (read-mix's hit ratio);
    # it adds an access log line per request, which does not matter here.
    result = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--database", backend, "--pg-dsn", PG_ADMIN_DSN,
         "--wrk", wrk, "--output", str(output), "--log-level", "info"],
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
    for name in SCENARIOS - {"read-mix"}:
        assert [r["connections"] for r in runs if r["scenario"] == name] == [16, 64], name
    mix_runs = [r for r in runs if r["scenario"] == "read-mix"]
    assert [r["phase"] for r in mix_runs] == MIX_PHASES
    assert {r["connections"] for r in mix_runs} == {16}
    for run in runs:
        where = f"{run['scenario']} at {run['connections']} connections: {run}"
        assert run["requests"] > 0, where
        assert run["non_2xx"] == 0, where
        assert run["socket_errors"] == 0, where
        assert run["latency_ms"]["p50"] > 0 and run["latency_ms"]["p99"] > 0, where
        assert run["ratios"]["throughput"] is not None, where
    workers = report["memory"]["workers"]
    assert len(workers) == 2 and all(w["peak_rss_mb"] > 0 for w in workers)
    assert report["server_stop"]["clean"], report.get("server_log_tail")
    servers = report["servers"]
    # The webhook backlog's holding server has one worker: one process, no supervisor.
    workers_of = {"main": 2, "cold": 2, "mix": 2, "webhooks": 2, "webhooks-hold": 1,
                  "webhooks-drain": 2}
    assert set(servers) == set(workers_of)
    for name, server in servers.items():
        assert server["stop"]["clean"], (name, server["log_tail"])
        children = workers_of[name] if workers_of[name] > 1 else 0
        assert len(server["memory"]["workers"]) == children, name
        # Every worker logged its counters at shutdown, and the counters counted.
        assert server["cache"]["processes"] == workers_of[name], (name, server["log_tail"])
    assert servers["cold"]["settings"] == {"TOKENHOUSE_CREDENTIAL_CACHE_SIZE": "0",
                                           "TOKENHOUSE_TOKEN_VIEW_CACHE_SIZE": "0"}

    mix = report["read_mix"]
    data = report["data"]
    assert mix["tokens"] == data["mix_tokens"] > data["known"]
    assert mix["first_rps"] > 0 and mix["warm_rps"] > 0 and mix["first_vs_warm"] is not None
    for cache in ("credentials", "token_views"):
        counts = mix["cache"][cache]
        assert counts["hits"] + counts["misses"] > 0, mix
        assert 0 <= counts["hit_ratio"] <= 1, mix

    # Every record of both phases arrived once, signed (the run fails otherwise); the
    # backlog's records were held until the draining server started, or counted as not.
    hooks = report["webhooks"]
    assert hooks["records"] == 20 and hooks["signatures_valid"] and hooks["repeats"] == 0
    assert hooks["received"] == 2 * hooks["records"], hooks
    live, backlog = hooks["live"], hooks["backlog"]
    assert live["records"] == 20 and live["deliveries_per_s"] > 0 and live["create_rps"] > 0
    assert live["cpu_ms_per_record"]["server"] > 0, live
    assert backlog["drained"] + backlog["delivered_while_held"] == 20, backlog

    transfer = report["transfer"]
    for step in ("import", "export", "reimport"):
        assert transfer[step]["seconds"] > 0 and transfer[step]["peak_rss_mb"] > 0, transfer
    assert transfer["export"]["lines"] >= data["accounts"] + data["tokens"]

    assert {t["target"] for t in report["targets"]["results"]} >= {
        "read: p99", "introspect: throughput vs baseline", "introspect: p99", "list: p99",
        "create: throughput", "peak RSS per worker",
        "read-cold: throughput vs baseline", "read-cold: p99", "read-mix: first window vs warm",
        "import: time", "import: peak RSS", "export: time", "export: peak RSS",
        "reimport: time", "reimport: peak RSS"}
    # The table is printed too.
    assert "healthz" in result.stdout and "targets at 16 connections" in result.stdout
    assert "read-mix 0-1s" in result.stdout and "transfer: import" in result.stdout
    assert "deliveries/s from the first create" in result.stdout
