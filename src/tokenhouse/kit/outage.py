"""Telling a database that cannot serve right now from a fault of the request or the code.

The first is answered 503 (to be tried again: kit/problems.py) and logged as one line; the
second is a 500 with its traceback in the log. Kept apart from kit/db.py so that the error
rendering can use it without importing the engine's set-up.
"""

import sqlite3

from sqlalchemy import exc

# SQLSTATE classes of a database that cannot serve now: connection exception, insufficient
# resources (too many connections, disk full), operator intervention (shutdown, cannot
# connect now, terminated backend, statement timeout).
_UNAVAILABLE_CLASSES = ("08", "53", "57")
# SQLite's primary result codes (an extended code such as SQLITE_BUSY_SNAPSHOT or
# SQLITE_IOERR_WRITE carries its primary one in the low byte): another writer held the lock
# past the busy timeout, or the file cannot be used now.
_SQLITE_UNAVAILABLE = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
                                 sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR,
                                 sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN})
# Where a bare OSError or TimeoutError may come from and still mean "the database": the
# drivers and SQLAlchemy, while connecting (before anything can wrap it).
_DATABASE_LAYER = ("asyncpg", "aiosqlite", "sqlalchemy", "sqlite3")


def unavailable(error: BaseException) -> bool:
    """Whether `error` says the database cannot serve right now (an outage, a lost
    connection, a lock held too long), rather than a fault of the request or of the code:
    such a request is answered 503, to be tried again."""
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        original = error.orig
        sqlstate = getattr(original, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate[:2] in _UNAVAILABLE_CLASSES
        code = getattr(original, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in _SQLITE_UNAVAILABLE
    if isinstance(error, exc.TimeoutError):  # no pooled connection free in time
        return True
    # Refused, reset, unreachable, timed out while connecting: raised by the driver itself.
    # The same exception raised by any other code is a fault of that code, not an outage.
    if isinstance(error, OSError | TimeoutError):
        return _raised_by_database_layer(error)
    # The server's refusal while connecting (asyncpg's PostgresError, class 08/53/57).
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _UNAVAILABLE_CLASSES


def _raised_by_database_layer(error: BaseException) -> bool:
    frame = error.__traceback__
    while frame is not None:
        module = frame.tb_frame.f_globals.get("__name__", "")
        if module.split(".", 1)[0] in _DATABASE_LAYER:
            return True
        frame = frame.tb_next
    return False
