"""What the results record about where they were measured: the machine, how fast it runs
Python right now, the versions of everything measured, and the commit."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.load import wrk_version

ROOT = Path(__file__).resolve().parent.parent


def cpu_probe() -> float:
    """CPU milliseconds of a fixed pure-Python loop (2,000,000 additions): how fast this
    machine runs Python right now, to tell a slow machine from a slow server when runs of
    different machines are compared (about 100 ms on a current desktop core)."""
    start = time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i
    return round((time.process_time() - start) * 1000, 1)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "load_before": list(os.getloadavg()), "cpu_probe_ms_before": cpu_probe()}


def versions(wrk: str, granian: str | None) -> dict[str, str]:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("tokenhouse", "fastapi", "starlette", "uvicorn", "uvloop", "httptools",
                    "sqlalchemy", "asyncpg", "aiosqlite", "pydantic"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    if granian:
        result = subprocess.run([granian, "--version"], capture_output=True, text=True,
                                check=False)
        found["granian"] = (result.stdout or result.stderr).strip()
    found["wrk"] = wrk_version(wrk)
    return found


def git_state() -> dict[str, Any]:
    """The commit of the benchmark, and that of the server measured: the tokenhouse package
    the server imports, which PYTHONPATH may take from another work tree (comparisons of two
    commits run one benchmark against both). Read-only git commands."""
    def git(where: Path, *command: str) -> str:
        result = subprocess.run(["git", *command], cwd=where, capture_output=True, text=True,
                                check=False)
        return result.stdout.strip()

    spec = importlib.util.find_spec("tokenhouse")
    source = Path(spec.origin).parent if spec and spec.origin else ROOT
    return {"commit": git(ROOT, "rev-parse", "HEAD"),
            "dirty": bool(git(ROOT, "status", "--porcelain", "--untracked-files=no")),
            "server_source": str(source),
            "server_commit": git(source, "rev-parse", "HEAD"),
            "server_dirty": bool(git(source, "status", "--porcelain", "--untracked-files=no",
                                     "--", "."))}
