"""Files that hold secret hashes are their owner's alone (issue 9, defect 9): the embedded
database's directory (0700), the database and its -wal/-shm files (0600), the key file
(0600), and an export file (0600). Run as real `tokenhouse` processes in fresh working
directories, under umask 000: the modes come from the code, not from a kind umask.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import Server, clean_env, describe, run_cli

pytestmark = pytest.mark.slow


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Processes started meanwhile inherit umask 000 (anything not made private explicitly
    would be world-readable)."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def ok(*args: str, cwd: Path) -> str:
    result = run_cli(*args, cwd=cwd, env=clean_env())
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    return result.stdout


def test_the_embedded_store_is_private_from_its_first_run(tmp_path: Path,
                                                          open_umask: None) -> None:
    ok("migrate", cwd=tmp_path)
    var = tmp_path / "var"
    assert mode(var) == 0o700
    assert mode(var / "tokenhouse.db") == 0o600
    assert mode(var / "secret.key") == 0o600
    # While a server runs, SQLite's -wal and -shm files exist: they hold pages of the table.
    with Server(cwd=tmp_path, env=clean_env()) as server:
        server.wait_healthy()
        with server.client() as http:
            assert http.get("/readyz").status_code == 200
        companions = sorted(var.glob("tokenhouse.db-*"))
        assert {p.name for p in companions} >= {"tokenhouse.db-wal", "tokenhouse.db-shm"}
        assert {p.name: mode(p) for p in companions} == {p.name: 0o600 for p in companions}


def test_a_database_an_older_version_left_readable_is_narrowed(tmp_path: Path) -> None:
    ok("migrate", cwd=tmp_path)
    database = tmp_path / "var" / "tokenhouse.db"
    database.chmod(0o644)
    ok("migrate", cwd=tmp_path)
    assert mode(database) == 0o600


def test_an_export_file_is_private_and_replaces_what_was_there(tmp_path: Path,
                                                                open_umask: None) -> None:
    ok("migrate", cwd=tmp_path)
    ok("bootstrap", "--json", cwd=tmp_path)
    fresh = tmp_path / "fresh.jsonl"
    ok("export", str(fresh), cwd=tmp_path)
    assert mode(fresh) == 0o600
    assert any(json.loads(line).get("secretHash") for line in fresh.read_text().splitlines())
    # A file already there, readable by all: replaced by a private one, not written through.
    old = tmp_path / "old.jsonl"
    old.write_text("yesterday\n")
    old.chmod(0o644)
    ok("export", str(old), cwd=tmp_path)
    assert mode(old) == 0o600
    assert old.read_bytes() == fresh.read_bytes()
    # A link: the link is replaced; the file it pointed to is left alone.
    target = tmp_path / "elsewhere.txt"
    target.write_text("not an export\n")
    target.chmod(0o644)
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    ok("export", str(link), cwd=tmp_path)
    assert not link.is_symlink() and mode(link) == 0o600
    assert target.read_text() == "not an export\n"
    # No temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_an_export_to_a_place_that_cannot_be_written_is_a_message(tmp_path: Path) -> None:
    ok("migrate", cwd=tmp_path)
    result = run_cli("export", str(tmp_path / "missing" / "x.jsonl"), cwd=tmp_path,
                     env=clean_env())
    assert result.returncode == 1, describe(result)
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr, \
        describe(result)
