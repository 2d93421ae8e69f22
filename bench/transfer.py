"""`tokenhouse import` and `tokenhouse export` of the run's data, as an operator runs them:
the real CLI, timed, with each child's peak RSS. The import is the one that loads the run's
database (fresh and migrated: nothing else in it); the export writes that same data back out
before any scenario runs; the re-import loads that export into a second fresh database, as an
operator moving a store does (export's own lines carry each token's account and modules, and
are about twice the generator's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import BenchError
from bench.data import Dataset
from bench.database import Database
from bench.processes import run_cli

TIMEOUT = 3600


def import_data(data: Dataset, *, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    result = run_cli(["import", str(data.import_file)], env=env, cwd=cwd, timeout=TIMEOUT)
    return {"seconds": result.seconds, "peak_rss_mb": result.peak_rss_mb,
            "tokens": data.tokens, "accounts": data.accounts, "bytes": data.bytes,
            "message": result.stderr.strip()[-300:]}


def export_data(data: Dataset, target: Path, *, env: dict[str, str], cwd: Path
                ) -> dict[str, Any]:
    """Export into `target` in the work directory (the file holds every secret hash: it
    never leaves the run's private directory; the caller deletes it once re-imported). The
    file must hold at least every imported account and token; anything less is a failed
    step, not a figure."""
    result = run_cli(["export", str(target)], env=env, cwd=cwd, timeout=TIMEOUT)
    with target.open("rb") as exported:
        lines = sum(1 for _ in exported)
    size = target.stat().st_size
    if lines < data.accounts + data.tokens:
        raise BenchError(f"the export holds {lines} lines, fewer than the "
                         f"{data.accounts + data.tokens} accounts and tokens imported")
    return {"seconds": result.seconds, "peak_rss_mb": result.peak_rss_mb, "lines": lines,
            "bytes": size, "message": result.stderr.strip()[-300:]}


def reimport_export(exported: Path, database: Database, *, tokens: int,
                    env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Import `exported` (export's own file) into `database`, created and migrated here and
    dropped at the end whatever happens. It must then hold `tokens` tokens, as the exported
    database does; anything less is a failed step, not a figure."""
    database.create()
    try:
        env = env | {"TOKENHOUSE_DATABASE_URL": database.url}
        run_cli(["migrate"], env=env, cwd=cwd, timeout=300)
        result = run_cli(["import", str(exported)], env=env, cwd=cwd, timeout=TIMEOUT)
        found = database.token_count()
    finally:
        database.drop()
    if found != tokens:
        raise BenchError(f"the re-import holds {found} tokens, the exported database {tokens}")
    return {"seconds": result.seconds, "peak_rss_mb": result.peak_rss_mb,
            "bytes": exported.stat().st_size, "message": result.stderr.strip()[-300:]}
