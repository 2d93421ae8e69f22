"""`tokenhouse import` and `tokenhouse export` of the run's data, as an operator runs them:
the real CLI, timed, with each child's peak RSS. The import is the one that loads the run's
database (fresh and migrated: nothing else in it); the export writes that same data back out
before any scenario runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import BenchError
from bench.data import Dataset
from bench.processes import run_cli

TIMEOUT = 3600


def import_data(data: Dataset, *, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    result = run_cli(["import", str(data.import_file)], env=env, cwd=cwd, timeout=TIMEOUT)
    return {"seconds": result.seconds, "peak_rss_mb": result.peak_rss_mb,
            "tokens": data.tokens, "accounts": data.accounts, "bytes": data.bytes,
            "message": result.stderr.strip()[-300:]}


def export_data(data: Dataset, *, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Export into the work directory (the file holds every secret hash: it never leaves
    the run's private directory, and is deleted once counted). The file must hold at least
    every imported account and token; anything less is a failed step, not a figure."""
    target = cwd / "export.jsonl"
    result = run_cli(["export", str(target)], env=env, cwd=cwd, timeout=TIMEOUT)
    with target.open("rb") as exported:
        lines = sum(1 for _ in exported)
    size = target.stat().st_size
    target.unlink()  # up to a GB at 1,000,000 tokens; measured, not needed again
    if lines < data.accounts + data.tokens:
        raise BenchError(f"the export holds {lines} lines, fewer than the "
                         f"{data.accounts + data.tokens} accounts and tokens imported")
    return {"seconds": result.seconds, "peak_rss_mb": result.peak_rss_mb, "lines": lines,
            "bytes": size, "message": result.stderr.strip()[-300:]}
