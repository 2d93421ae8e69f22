"""Which errors mean "the database cannot serve now" (503) and which are faults (500)."""

import sqlite3

import asyncpg
import pytest
from sqlalchemy import exc

from tokenhouse.kit.outage import unavailable


def sqlite_error(code: int) -> exc.DBAPIError:
    original = sqlite3.OperationalError("boom")
    original.sqlite_errorcode = code
    return exc.OperationalError("SELECT 1", {}, original)


@pytest.mark.parametrize("code", [
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_SNAPSHOT, sqlite3.SQLITE_IOERR_WRITE,
    sqlite3.SQLITE_READONLY_DBMOVED, sqlite3.SQLITE_CANTOPEN_ISDIR, sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_LOCKED_SHAREDCACHE])
def test_sqlite_outages_by_their_primary_code(code: int) -> None:
    assert unavailable(sqlite_error(code))


@pytest.mark.parametrize("code", [sqlite3.SQLITE_ERROR, sqlite3.SQLITE_CONSTRAINT_UNIQUE,
                                  sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG])
def test_sqlite_faults(code: int) -> None:
    assert not unavailable(sqlite_error(code))


def test_an_os_error_of_the_code_itself_is_a_fault() -> None:
    try:
        raise ConnectionRefusedError("not the database's")
    except ConnectionRefusedError as error:
        assert not unavailable(error)
    try:
        raise TimeoutError
    except TimeoutError as error:
        assert not unavailable(error)


async def test_a_refused_connect_is_an_outage() -> None:
    with pytest.raises(OSError) as raised:
        await asyncpg.connect("postgresql://postgres@127.0.0.1:1/postgres", timeout=2)
    assert unavailable(raised.value)
