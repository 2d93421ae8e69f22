"""The load generator: wrk, a separate process, driven by one Lua script per scenario (lua/).
A run's result is the BENCH-RESULT line lua/common.lua prints; warm-ups are runs whose
figures only say when the server has warmed up."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import BenchError
from bench.scenarios import Scenario

LUA_DIR = Path(__file__).resolve().parent / "lua"
MAX_WARMUP_ROUNDS = 6


@dataclass
class Run:
    """One measured run of a scenario, with what the meters saw during it."""
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
    # read-mix: which window of the server's life, in seconds of load since it started
    phase: str = ""


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
            found: dict[str, Any] = json.loads(line.removeprefix("BENCH-RESULT "))
            return found
    raise BenchError(f"wrk gave no result (exit {result.returncode}):\n{' '.join(command)}\n"
                     f"{result.stdout[-2000:]}{result.stderr[-2000:]}")


def warm_up(load: Callable[[int], dict[str, Any]], seconds: int, *, rounds: bool,
            log: Callable[[str], None]) -> list[float]:
    """Load before measuring (`load(seconds)` runs wrk); returns the req/s of each round.
    With `rounds`, rounds of `seconds` go on until one is within 5% of the one before (at
    most MAX_WARMUP_ROUNDS): scenarios read and introspect are measured once every worker
    holds the 10,000 credentials they draw from, however long filling them takes on this
    machine."""
    rates: list[float] = []
    while True:
        result = load(seconds)
        rates.append(round(result["requests"] / max(result["duration_us"] / 1e6, 1e-9), 1))
        if not rounds or len(rates) >= MAX_WARMUP_ROUNDS or (
                len(rates) > 1 and rates[-1] <= rates[-2] * 1.05):
            return rates
        log(f"warm-up: {rates[-1]:,.0f} req/s, still rising")
