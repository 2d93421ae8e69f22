"""Import streams its file in chunks, and export streams the store: in this process, on SQLite
and PostgreSQL, with chunks of a few lines so that a small file spans many of them.

- a bad line anywhere (the first, in the middle of a later chunk, the last) refuses the
  whole file and nothing is written;
- what spans lines is still found across chunks (repeated ids, hashes and user groups), and
  a token may refer to an account or a module of an earlier chunk;
- export, import and export again give the same bytes, which are what the API's renderers
  make of the objects; the bulk write of PostgreSQL gives the store its keys, indexes and
  foreign keys back exactly;
- the import holds one chunk at a time (counted in the running process, not assumed);
- an import of new accounts and tokens publishes no cache invalidation; a module line, a
  catalog change (as before streaming).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import selectinload

from tests.helpers import empty_store
from tokenhouse.accounts.schemas import render_account
from tokenhouse.kit import invalidation
from tokenhouse.kit.db import session_factory, writer_of
from tokenhouse.kit.timeutil import render, utcnow
from tokenhouse.models import Account, ApiToken, token_modules
from tokenhouse.modules.models import Module
from tokenhouse.modules.schemas import render_module
from tokenhouse.tokens.last_access import LastAccessRecorder
from tokenhouse.tokens.schemas import render_token
from tokenhouse.tokens.views import spliced, view_of
from tokenhouse.transfer.service import (
    MAX_LINE_CHARS,
    Chunk,
    ImportFailed,
    bounded_lines,
    export_lines,
    import_lines,
)

CHUNK = 5
MODULES = ["MOD-1732", "MOD-2846", "MOD-3419", "MOD-4588", "MOD-5907"]


@pytest.fixture
async def empty(engine: AsyncEngine) -> AsyncEngine:
    """The engine, its store holding nothing but the module catalog."""
    async with session_factory(engine)() as session:
        await empty_store(session)
        await session.commit()
    return engine


def account(n: int, **changes: Any) -> dict[str, Any]:
    return {"id": f"ACC-7100-{n:04d}", "name": f"Streamed {n} ✓", "type": "Client",
            "address": {"city": "Zürich"} if n % 2 else None,
            "groups": [{"id": f"UGR-7100-{n:04d}", "name": "Default", "isDefault": True}],
            "audit": {"created": {"at": "2025-01-02T03:04:05.678Z", "by": None},
                      "updated": {"at": "2025-01-03T03:04:05.678Z",
                                  "by": {"id": "TKN-1000-0001", "name": "someone"}}},
            **changes}


def token(n: int, owner: int = 0, **changes: Any) -> dict[str, Any]:
    """A token line; some have an expiry (a past one: Expired), an allowlist, last client
    addresses, or a previous secret in its grace window (issue 11)."""
    lifecycle: dict[str, Any] = {}
    if n % 4 == 0:
        lifecycle["expiresAt"] = "2099-01-02T03:04:05.678Z" if n % 8 else \
            "2025-03-04T05:06:07.089Z"
    if n % 5 == 1:
        lifecycle["ipAllowlist"] = ["10.0.0.0/8", f"2001:db8:{n:x}::/48"]
    if n % 2 == 0:
        lifecycle["lastAccessIps"] = [
            {"ip": f"2001:db8::{n:x}e", "at": "2025-02-03T04:05:06.789Z"},
            {"ip": f"192.0.2.{n % 250}", "at": "2025-02-01T00:00:00.000Z"}]
    if n % 7 == 3:
        lifecycle.update(previousSecret={"expiresAt": "2099-01-01T00:00:00.000Z",
                                         "lastAccessAt": None},
                         previousSecretHash=f"{n + 10**6:064x}",
                         retirePreviousOnFirstUse=n % 2 == 0)
    if n % 7 in (3, 4):
        lifecycle["rotatedAt"] = "2025-02-03T04:05:06.789Z"
    return {"id": f"TKN-7100-{n:04d}", "name": f"streamed token {n}",
            "description": None if n % 3 else f"token {n} «ü»",
            "status": ["Active", "Disabled", "Deleted"][n % 3],
            "account": {"id": f"ACC-7100-{owner:04d}"},
            "modules": [{"id": m} for m in MODULES[n % 5: n % 5 + 1 + n % 3]],
            "lastAccessAt": None if n % 2 else "2025-02-03T04:05:06.789Z",
            "audit": {"created": {"at": f"2025-01-{1 + n % 28:02d}T08:00:00.{n % 1000:03d}Z",
                                  "by": None}},
            "revision": 1 + n % 4, "secretHash": f"{n:064x}", **lifecycle, **changes}


def good_file(tokens: int = 30, accounts: int = 3) -> list[str]:
    """Accounts first, then tokens spread over them: many chunks of CHUNK lines."""
    return [*(json.dumps(account(a)) for a in range(accounts)),
            *(json.dumps(token(t, t % accounts)) for t in range(tokens))]


async def counts(engine: AsyncEngine) -> dict[str, int]:
    async with session_factory(engine)() as session:
        return {table: await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0
                for table in ("accounts", "user_groups", "api_tokens", "api_token_modules")}


async def run_import(engine: AsyncEngine, lines: Iterable[str], **options: Any) -> Any:
    """Import and commit (ImportFailed: rolled back, as the command does)."""
    async with session_factory(engine)() as session:
        result = await import_lines(session=session, lines=lines, chunk_lines=CHUNK, **options)
        await session.commit()
        return result


async def refused(engine: AsyncEngine, lines: list[str]) -> list[tuple[int, str]]:
    """The problems of a refused import; nothing may have been written."""
    before = await counts(engine)
    with pytest.raises(ImportFailed) as failed:
        await run_import(engine, lines)
    assert await counts(engine) == before
    return failed.value.problems


async def export(engine: AsyncEngine) -> str:
    async with session_factory(engine)() as session:
        return "".join([line + "\n" async for line in export_lines(session=session)])


# -- a bad line anywhere ------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["first", "middle of a later chunk", "last"])
async def test_a_bad_line_anywhere_refuses_the_whole_file(empty: AsyncEngine,
                                                          where: str) -> None:
    lines = good_file()
    at = {"first": 0, "middle of a later chunk": 4 * CHUNK + 2, "last": len(lines)}[where]
    lines.insert(at, json.dumps(token(900, status="Sleeping")))
    assert await refused(empty, lines) == [(at + 1, "TKN-7100-0900: status: Input should "
                                                    "be 'Active', 'Disabled', 'Deleted' or "
                                                    "'Expired'")]
    assert await counts(empty) == dict.fromkeys(
        ("accounts", "user_groups", "api_tokens", "api_token_modules"), 0)


async def test_a_clash_with_the_store_in_the_last_line_refuses_the_file(
        empty: AsyncEngine) -> None:
    await run_import(empty, [json.dumps(account(0)), json.dumps(token(0))])
    lines = [json.dumps(account(1)), *(json.dumps(token(t, 1)) for t in range(1, 20)),
             json.dumps(token(0, 1))]
    assert await refused(empty, lines) == [
        (21, "secretHash belongs to a token already in the store"),
        (21, "token TKN-7100-0000 already exists")]


async def test_every_bad_line_is_named_up_to_the_limit(empty: AsyncEngine) -> None:
    lines = good_file(60)
    for at in (7, 19, 33, 58):
        lines[at] = lines[at].replace('"status": "', '"status": "x')
    lines[40] = "{"
    problems = await refused(empty, lines)
    assert [number for number, _ in problems] == [8, 20, 34, 41, 59]


# -- what spans lines, across chunks --------------------------------------------------------------

async def test_repeats_across_chunks_are_found(empty: AsyncEngine) -> None:
    lines = good_file()
    lines[22] = json.dumps(token(2, 0))  # the token of line 6
    problems = await refused(empty, lines)
    assert problems == [(23, "TKN-7100-0002 is already on line 6")]

    lines = good_file()
    lines[27] = json.dumps(token(24, 0, secretHash=f"{7:064x}"))  # line 11's hash
    assert await refused(empty, lines) == [
        (28, "secretHash the same value is already on line 11")]

    lines = good_file()
    lines.insert(25, json.dumps(account(5, groups=[{"id": "UGR-7100-0001", "name": "G"}])))
    assert await refused(empty, lines) == [(26, "user group UGR-7100-0001 is already on line 2")]


async def test_a_repeated_id_and_a_bad_shape_are_reported_together_in_line_order(
        empty: AsyncEngine) -> None:
    lines = good_file()
    lines[20] = json.dumps(token(1, 0, status="x"))  # repeats line 5, and a bad shape
    lines[26] = json.dumps(token(99, 0, name=""))
    problems = await refused(empty, lines)
    assert [(n, m.split(":")[0]) for n, m in problems] == [
        (21, "TKN-7100-0001 is already on line 5"), (27, "TKN-7100-0099")]


async def test_references_to_an_earlier_chunk_and_to_nothing(empty: AsyncEngine) -> None:
    new_module = {"id": "MOD-7150", "name": "Streamed module", "accountTypes": ["Client"]}
    lines = [json.dumps(account(0)), json.dumps(new_module), *good_file(25, 1)[1:],
             json.dumps(token(40, 0, modules=[{"id": "MOD-7150"}, {"id": "MOD-1732"}]))]
    bad = [*lines, json.dumps(token(41, 9)),
           json.dumps(token(42, 0, modules=[{"id": "MOD-0404"}, {"id": "MOD-1732"},
                                            {"id": "MOD-0404"}]))]
    assert await refused(empty, bad) == [
        (len(lines) + 1, "token TKN-7100-0041: account ACC-7100-0009 is neither in the "
                         "file nor in the store"),
        (len(lines) + 2, "token TKN-7100-0042: unknown modules MOD-0404, MOD-0404")]
    try:
        result = await run_import(empty, lines)
        assert (result.accounts, result.modules, result.tokens) == (1, 1, 26)
        async with session_factory(empty)() as session:
            assert set(await session.scalars(
                select(token_modules.c.module_id)
                .where(token_modules.c.token_id == "TKN-7100-0040"))) == {"MOD-7150",
                                                                         "MOD-1732"}
    finally:
        async with session_factory(empty)() as session:
            await empty_store(session)
            await session.execute(delete(Module).where(Module.id == "MOD-7150"))
            await session.commit()


async def test_a_module_listed_twice_links_once(empty: AsyncEngine) -> None:
    lines = [json.dumps(account(0)),
             json.dumps(token(1, modules=[{"id": "MOD-1732"}, {"id": "MOD-5907"},
                                          {"id": "MOD-1732"}]))]
    await run_import(empty, lines)
    assert (await counts(empty))["api_token_modules"] == 2


# -- round trips -------------------------------------------------------------------------------

async def _rendered_by_the_api(engine: AsyncEngine) -> str:
    """The store as the API's renderers make it of ORM objects (what export wrote before it
    streamed Core rows)."""
    lines = []
    now = utcnow()
    accesses = LastAccessRecorder(session_factory(engine), 1.0)  # nothing noted: the rows'
    async with session_factory(engine)() as session:
        for item in await session.scalars(select(Account).options(
                selectinload(Account.groups)).order_by(Account.id)):
            lines.append(render_account(item))
        for module in await session.scalars(select(Module).order_by(Module.id)):
            lines.append(render_module(module))
        for stored in await session.scalars(select(ApiToken).order_by(ApiToken.id)):
            spliced_values = spliced(view_of(stored, now), accesses, now=now)
            body = render_token(stored, now=now,
                                dynamic=json.loads(b"{" + spliced_values + b"}"))
            body["secretHash"] = stored.secret_hash
            if body["previousSecret"] is not None:
                body["previousSecretHash"] = stored.previous_secret_hash
                body["retirePreviousOnFirstUse"] = stored.retire_previous_on_first_use
            if stored.rotated_at is not None:
                body["rotatedAt"] = render(stored.rotated_at)
            lines.append(body)
    return "".join(json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"
                   for body in lines)


@pytest.mark.parametrize("bulk", [False, True], ids=["row by row", "bulk"])
async def test_export_import_export_is_byte_identical(empty: AsyncEngine, bulk: bool) -> None:
    options = {"bulk_tokens": 1 if bulk else 10**9}
    await run_import(empty, good_file(40, 4), **options)
    first = await export(empty)
    assert first == await _rendered_by_the_api(empty)
    kinds = [line[7:11] for line in first.splitlines()]
    assert (kinds.count("ACC-"), kinds.count("TKN-")) == (4, 40)
    async with session_factory(empty)() as session:
        await empty_store(session)
        await session.commit()
    await run_import(empty, first.splitlines(), **options)
    assert await export(empty) == first


async def test_the_bulk_write_gives_back_every_key_index_and_foreign_key(
        empty: AsyncEngine, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the bulk write is PostgreSQL's")

    async def definitions() -> list[tuple[Any, ...]]:
        async with session_factory(empty)() as session:
            return [tuple(row) for row in await session.execute(text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid IN ('api_tokens'::regclass, 'api_token_modules'::regclass)"
                " OR confrelid IN ('api_tokens'::regclass, 'api_token_modules'::regclass)"
                " UNION ALL SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)"
                " FROM pg_index WHERE indrelid IN ('api_tokens'::regclass,"
                " 'api_token_modules'::regclass) ORDER BY 1"))]

    before = await definitions()
    assert len(before) >= 9
    await run_import(empty, good_file(), bulk_tokens=1)
    assert await definitions() == before
    assert (await counts(empty))["api_tokens"] == 30


# -- memory -------------------------------------------------------------------------------------

def watched(lines: list[str], reported: list[int]) -> Iterator[str]:
    """The lines, checking before each one is handed over that the import holds at most one
    chunk of CHUNK lines, and has staged (reported) every line but those of that chunk."""
    for handed, line in enumerate(lines):
        assert handed - sum(reported) < CHUNK, (handed, reported)
        if handed % CHUNK == 0:
            gc.collect()  # what is left of earlier imports (a traceback's frames) goes
            # Sizes only: a list of the chunks themselves would keep them alive.
            rows = [len(o.accounts) + len(o.tokens) for o in gc.get_objects()
                    if isinstance(o, Chunk)]
            assert len(rows) <= 1 and all(held <= CHUNK for held in rows), rows
        yield line


async def test_the_import_holds_one_chunk_at_a_time(empty: AsyncEngine) -> None:
    lines = good_file(60)
    reported: list[int] = []
    result = await run_import(empty, watched(lines, reported), progress=reported.append)
    assert result.tokens == 60
    assert sum(reported) == len(lines) and max(reported) == CHUNK


# -- cache invalidation -----------------------------------------------------------------------

async def test_new_rows_publish_nothing_and_module_lines_a_catalog_change(
        empty: AsyncEngine) -> None:
    async def published(lines: list[str]) -> set[Any]:
        async with session_factory(empty)() as session:
            await import_lines(session=session, lines=lines, chunk_lines=CHUNK, bulk_tokens=1)
            await session.flush()
            changes = set(session.info.get(invalidation.PENDING, {}))
            await session.rollback()
            return changes

    assert await published(good_file()) == set()
    module = json.dumps({"id": "MOD-1732", "description": "Changed by a streamed import."})
    assert await published([module, *good_file()]) == {invalidation.CATALOG}


async def test_counts_of_a_refused_file_stay_empty(empty: AsyncEngine) -> None:
    """A refused import leaves nothing staged behind for the next one on the connection."""
    bad = good_file()
    bad[-1] = "not json"
    await refused(empty, bad)
    await run_import(empty, good_file())
    async with session_factory(empty)() as session:
        assert await session.scalar(select(func.count()).select_from(ApiToken)) == 30


async def test_an_export_left_half_way_leaves_its_session_usable(empty: AsyncEngine) -> None:
    """The batch fetched ahead is waited for when the stream is closed early, so the
    connection is not busy when the session goes on (or rolls back)."""
    await run_import(empty, good_file())
    async with session_factory(empty)() as session:
        async with aclosing(export_lines(session=session)) as lines:
            async for line in lines:
                assert line.startswith('{"id":"ACC-')
                break
        assert await session.scalar(select(func.count()).select_from(ApiToken)) == 30
        await session.rollback()


async def test_an_import_after_a_refused_one_in_the_same_transaction(empty: AsyncEngine
                                                                     ) -> None:
    bad = good_file()
    bad[12] = "[]"
    async with session_factory(empty)() as session:
        with pytest.raises(ImportFailed):
            await import_lines(session=session, lines=bad, chunk_lines=CHUNK)
        result = await import_lines(session=session, lines=good_file(), chunk_lines=CHUNK)
        await session.commit()
    assert result.tokens == 30 and (await counts(empty))["api_tokens"] == 30


# -- what an import holds of the store, and of memory ------------------------------------------

async def test_staging_holds_no_writer_on_sqlite(empty: AsyncEngine, backend: str) -> None:
    """The staged lines go to TEMP tables, which take no lock of the file: the server's
    writes (a revocation among them) go on while an import reads its file. The writer is
    taken once every line is read, for the checks against the store and the writes."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no writer of its own")
    writer = writer_of(empty)
    assert writer is not None
    held: list[bool] = []

    def lines() -> Iterator[str]:
        for number, line in enumerate(good_file(30)):
            if number > CHUNK:  # the first chunk is staged by now
                held.append(writer.held)
            yield line

    assert (await run_import(empty, lines())).tokens == 30
    assert held and not any(held)


async def test_an_import_into_a_store_with_tokens_locks_no_table(empty: AsyncEngine,
                                                                 backend: str) -> None:
    """The bulk write (keys and indexes dropped and rebuilt) locks the tokens' tables and,
    through the foreign keys, accounts and modules: it is kept for a store without tokens,
    where nobody can be authenticated. Into a serving store, rows go in one by one, and
    the tables stay readable until the commit."""
    if backend != "postgresql":
        pytest.skip("the bulk write is PostgreSQL's")
    await run_import(empty, good_file(3, 1))
    more = [json.dumps(account(9)), *(json.dumps(token(n, 9)) for n in range(100, 110))]
    async with session_factory(empty)() as session:
        await import_lines(session=session, lines=more, chunk_lines=CHUNK, bulk_tokens=1)
        async with empty.connect() as other:
            await other.execute(text("SET lock_timeout = '2s'"))
            for table in ("accounts", "modules", "api_tokens", "api_token_modules"):
                await other.execute(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
            await other.rollback()
        await session.commit()
    assert (await counts(empty))["api_tokens"] == 13


async def test_a_line_too_long_is_refused_without_being_held(empty: AsyncEngine,
                                                             tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    with path.open("w", encoding="utf-8") as file:
        file.write(json.dumps(account(1)) + "\n")
        file.write(json.dumps(account(2, name="x" * (MAX_LINE_CHARS + 10))) + "\n")
        file.write(json.dumps(account(3)) + "\n")
    seen: list[int] = []
    with path.open(encoding="utf-8") as file:
        lines = [len(line) for line in bounded_lines(file)]
        seen.extend(lines)
    assert len(seen) == 3 and max(seen) == MAX_LINE_CHARS + 1  # never more held
    with path.open(encoding="utf-8") as file:
        problems = await refused(empty, bounded_lines(file))  # type: ignore[arg-type]
    assert problems == [(2, f"the line is longer than {MAX_LINE_CHARS:,} characters")]
