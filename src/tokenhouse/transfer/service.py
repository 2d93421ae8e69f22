"""Export the whole store as JSON Lines, and import such a file, all or nothing.

A line is an object in its public API shape, its kind told by the id prefix (`ACC-`, `MOD-`,
`TKN-`); accounts and modules come before the tokens that refer to them. Import keeps ids,
timestamps and revisions; a module line upserts the catalog entry with its id; accounts and
tokens must be new. Every line is checked before anything is written.

Both directions stream, so that memory does not grow with the file: import reads CHUNK_LINES
lines at a time, checks each line on its own and stages the chunk's rows in TEMP tables
(repository.Staging); what needs every line at once (a repeated id or hash, a reference to
an account or module of the file or of the store, an id already taken) is then asked of
the database, and only a file without any problem is copied into the real tables, in the
same transaction. Export renders Core rows as they come from a server-side cursor.
"""

import json
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from pydantic import ValidationError
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.accounts.schemas import href as account_href
from tokenhouse.audit import events
from tokenhouse.audit import service as audit
from tokenhouse.audit.subjects import Subject
from tokenhouse.auth.actor import SYSTEM
from tokenhouse.kit import ids
from tokenhouse.kit.addresses import from_stored, to_stored
from tokenhouse.kit.problems import BadRequest
from tokenhouse.kit.timeutil import as_utc, render, utcnow
from tokenhouse.kit.wire import STRICT_JSON, NotANumber
from tokenhouse.modules.models import Module
from tokenhouse.modules.schemas import href as module_href
from tokenhouse.tokens.last_access import merged_addresses
from tokenhouse.tokens.lifecycle import previous_until, status_at
from tokenhouse.tokens.schemas import href as token_href
from tokenhouse.transfer import repository
from tokenhouse.transfer.schemas import AccessIn, AccountLine, AuditIn, ModuleLine, TokenLine

KINDS: dict[str, type[AccountLine | ModuleLine | TokenLine]] = {
    "ACC-": AccountLine, "MOD-": ModuleLine, "TKN-": TokenLine}
MAX_REPORTED = 20
# How deeply a line may nest (the deepest export line nests 4 levels: a module's settings).
MAX_DEPTH = 32
ALL_TYPES = ["Client", "Vendor", "Operations"]
# Lines read, checked and staged at a time: what an import holds in memory (a few MB).
CHUNK_LINES = 10_000
# From this many tokens, into a store without tokens, an import rebuilds the tokens' indexes
# and foreign keys rather than maintain them row by row (repository.Staging.write).
BULK_TOKENS = 50_000
# The longest line read (characters, the line break aside): an export line is a few KB (an
# account with thousands of user groups stays well under), and one line is held whole.
MAX_LINE_CHARS = 4 * 1024 * 1024


class ImportFailed(BadRequest):
    """The file has bad lines; nothing was written. `problems` are (line number, message)."""

    def __init__(self, problems: list[tuple[int, str]]):
        # Messages quote the file (ids, property names, a parser's words about a value):
        # printable and bounded, so that no line can forge or flood the output.
        self.problems = [(number, _shown(message, 500)) for number, message in problems]
        lines = "\n".join(f"line {number}: {message}" for number, message in self.problems)
        super().__init__(f"Nothing was imported:\n{lines}")


@dataclass(frozen=True)
class Imported:
    accounts: int
    modules: int
    tokens: int


@dataclass
class Chunk:
    """The rows of up to CHUNK_LINES lines, each row led by its line number (in the orders
    of repository.*_COLUMNS), and the problems of those lines."""

    lines: int = 0  # lines read, blank ones included
    problems: list[tuple[int, str]] = field(default_factory=list)
    # (line, id) of the lines that have an id but no account or token row (whose rows
    # carry it): module lines, lines of a wrong shape.
    ids: list[tuple[int, str]] = field(default_factory=list)
    accounts: list[tuple[Any, ...]] = field(default_factory=list)
    groups: list[tuple[Any, ...]] = field(default_factory=list)
    tokens: list[tuple[Any, ...]] = field(default_factory=list)
    links: list[tuple[Any, ...]] = field(default_factory=list)
    modules: list[tuple[int, ModuleLine]] = field(default_factory=list)
    previous_hashes: int = 0  # tokens with a previousSecretHash


def bounded_lines(stream: TextIO) -> Iterator[str]:
    """The lines of a file, none held longer than MAX_LINE_CHARS + 1 characters: of a longer
    line only that much is kept (read_chunks refuses it) and the rest is read past, so that
    one line of a hostile file cannot take the process's memory (a 200 MB line took 480)."""
    while text := stream.readline(MAX_LINE_CHARS + 1):
        if len(text) > MAX_LINE_CHARS and not text.endswith("\n"):
            while (rest := stream.readline(MAX_LINE_CHARS)) and not rest.endswith("\n"):
                pass
        yield text


def read_chunks(lines: Iterable[str], size: int = CHUNK_LINES) -> Iterator[Chunk]:
    """The lines, `size` at a time, each checked on its own (JSON, kind, what the databases
    can store, shape). Checks that span lines are the database's (see import_lines)."""
    now = utcnow()
    chunk = Chunk()
    for number, text in enumerate(lines, start=1):
        chunk.lines += 1
        if len(text) > MAX_LINE_CHARS and len(text.rstrip("\r\n")) > MAX_LINE_CHARS:
            chunk.problems.append((number, f"the line is longer than {MAX_LINE_CHARS:,} "
                                           "characters"))
        elif text and not text.isspace():  # not blank (strip() copies the line)
            problem = _read_line(text, number, chunk, now)
            if problem is not None:
                chunk.problems.append((number, problem))
        if chunk.lines >= size:
            yield chunk
            chunk = Chunk()
    if chunk.lines:
        yield chunk


# A NUL character or a lone surrogate in a decoded line comes from such an escape, or from a
# lone surrogate itself in a text that was not read from a UTF-8 file (a NUL itself is not
# valid JSON). A line without any (nearly all) skips the walk of every value in
# `_unstorable`.
_ESCAPE = re.compile(r"\\u(?:0000|[dD][89abcdefABCDEF])")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _suspect(text: str) -> bool:
    """Whether the line may hold a NUL or a lone surrogate, or nest too deeply (no value
    nests deeper than the line has brackets)."""
    return bool(("\\u" in text and _ESCAPE.search(text))
                or (not text.isascii() and _SURROGATE.search(text))
                or text.count("{") + text.count("[") > MAX_DEPTH)


def _read_line(text: str, number: int, chunk: Chunk, now: Any) -> str | None:
    """Adds the line's rows to `chunk`, or says what is wrong with it."""
    line = _read_plain(text)
    if line is None:
        line, object_id, problem = _read_checked(text)
        if object_id is not None and not isinstance(line, TokenLine | AccountLine):
            chunk.ids.append((number, object_id))  # not carried by a row: staged alone
        if line is None:
            return problem
    elif isinstance(line, ModuleLine):
        chunk.ids.append((number, line.id))
    if isinstance(line, TokenLine):
        status = line.status
        if status == "Expired":  # computed from the expiry: stored as Active
            if line.expiresAt is None:
                chunk.ids.append((number, line.id))
                return f"{line.id}: expiresAt: an Expired token needs the expiry it is past"
            status = "Active"
        # A previousSecret without its hash (as the API shows it) leaves nothing to keep.
        previous = line.previousSecret if line.previousSecretHash else None
        limit = line.rateLimit
        chunk.previous_hashes += previous is not None
        chunk.tokens.append((number, line.id, line.account["id"], line.name, line.description,
                             line.icon, status, line.secretHash, line.lastAccessAt,
                             line.revision, *_audit_row(line.audit, now), line.expiresAt,
                             to_stored(line.ipAllowlist) if line.ipAllowlist else None,
                             _accesses(line.lastAccessIps) if line.lastAccessIps else None,
                             line.previousSecretHash,
                             previous.expiresAt if previous else None,
                             previous.lastAccessAt if previous else None,
                             line.retirePreviousOnFirstUse, line.rotatedAt,
                             limit.limit if limit else None,
                             limit.windowSeconds if limit else None, line.statusReason))
        listed: set[str] = set()
        for position, module in enumerate(line.modules):
            module_id = module["id"]
            chunk.links.append((number, position, line.id, module_id, module_id in listed))
            listed.add(module_id)
    elif isinstance(line, AccountLine):
        chunk.accounts.append(_account_row(number, line, now))
        chunk.groups.extend(
            (number, position, group.id, line.id, group.name, group.description, group.logo,
             group.isDefault, *_audit_row(None, now))
            for position, group in enumerate(line.groups))
    else:
        chunk.modules.append((number, line))
    return None


def _read_plain(text: str) -> AccountLine | ModuleLine | TokenLine | None:
    """The line, read the fast way, when it is a plain valid line as export writes them (its
    id first); None for any other line, which _read_checked then reads and names the
    problem of.

    pydantic validates the text itself, in a third of the time of decoding it with Python's
    parser first: what a line holds and the import ignores (a token's nested account and
    modules) is never made into Python objects. Its parser accepts the same texts as the
    same values (strict JSON, the last of repeated keys, integers up to 4,300 digits, floats
    rounded alike) except where _read_checked refuses them, so such lines go there: a line
    that may nest too deeply or hold a NUL or a lone surrogate, NaN or Infinity, or a number
    too large for a float, which this parser reads as infinity (_may_overflow). Every
    refusal, and its message, is _read_checked's.

    The searches for those run over the line's UTF-8 bytes, which pydantic reads as they are,
    rather than over the text (_suspect): a lone surrogate is a line that has no UTF-8 bytes,
    a backslash one byte found at memory speed, and the nesting and the number searches share
    one translation (_MARKS); only NaN and Infinity are looked for in the text, where CPython
    finds a word faster. On an export line they took about as long as the validation, and
    take a fifth less."""
    kind = KINDS.get(text[7:11]) if text.startswith('{"id":"') else None
    if kind is None:
        return None
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return None
    marks = data.translate(_MARKS)
    # No value nests deeper than the line has brackets; a NUL or a lone surrogate in a line
    # of UTF-8 comes from an escape.
    if (marks.count(b"[") > MAX_DEPTH or (b"\\" in data and _ESCAPE.search(text))
            or "NaN" in text or "Infinity" in text):
        return None
    try:
        # The id's pattern holds the kind: a line whose last id is of another kind fails.
        line = kind.model_validate_json(data)
    except ValueError:  # a ValidationError
        return None
    return None if _may_overflow(data, marks, line) else line


# Digits as 0, E as e and { as [, so that one search finds a digit before an exponent, one
# count the brackets, one search a run of digits.
_MARKS = bytes.maketrans(b"123456789E{", b"000000000e[")
# The fewest digits before the decimal point of a float too large without an exponent.
_LONG = b"0" * 309


def _may_overflow(data: bytes, marks: bytes, line: AccountLine | ModuleLine | TokenLine
                  ) -> bool:
    """Whether the line (its UTF-8 bytes `data`, and those translated by _MARKS) may hold a
    float literal too large for a float: one with an exponent (a digit, then e or E) or with
    309 digits in a row. A string may look like such a literal too: a token's hashes do (hex
    digits), and so do IPv6 addresses and networks. The digits-then-e of such a value where
    the text holds it quoted as it is (not escaped) are not counted: made of hex digits,
    `:`, `.` and `/` only, quoted it is always inside a string of the line, never a number
    (in valid JSON, what lies between two strings is a lone `:` or holds a character none
    of these values has: a comma, a bracket, a space). Any other look-alike only sends the
    line the slow way."""
    exponents = marks.count(b"0e")
    if exponents and isinstance(line, TokenLine):
        for value in _hex_strings(line):
            held = value.encode()
            exponents -= data.count(b'"%s"' % held) * held.translate(_MARKS).count(b"0e")
    return exponents > 0 or _LONG in marks


def _hex_strings(line: TokenLine) -> set[str]:
    """The distinct values of the line that are written in hex digits (lower case), `:`, `.`
    and `/` alone, as the line holds them once read: hashes, networks, addresses."""
    values = {value for value in (line.secretHash, line.previousSecretHash) if value}
    values.update(line.ipAllowlist or ())
    values.update(access.ip for access in line.lastAccessIps or ())
    return values


def _read_checked(text: str) -> tuple[AccountLine | ModuleLine | TokenLine | None,
                                      str | None, str | None]:
    """(line, id, problem): the line, or what is wrong with it; the id when the line got as
    far as having one of a known kind and nothing unstorable (before its shape)."""
    data, problem = _decode(text)
    if problem is not None:
        return None, None, problem
    object_id = data.get("id") if isinstance(data, dict) else None
    kind = KINDS.get(object_id[:4]) if isinstance(object_id, str) else None
    if kind is None or not isinstance(object_id, str):
        return None, None, "not an object with an id starting ACC-, MOD- or TKN-"
    shown = _shown(object_id)
    if _suspect(text):
        where, problem = _unstorable(data)
        if problem is not None:
            return None, None, f"{shown}: {where}: {problem}"
    try:
        return kind.model_validate(data), object_id, None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(_shown(str(part)) for part in first["loc"]) or "line"
        return None, object_id, f"{shown}: {where}: {first['msg']}"


def _decode(text: str) -> tuple[Any, str | None]:
    """The line's JSON value, or why it is none. NaN, Infinity and numbers too large for a
    float are refused: neither database's JSON can hold them."""
    try:
        if text.startswith("\ufeff"):  # as json.loads has it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)",
                                       text, 0)
        return STRICT_JSON.decode(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg})"
    except RecursionError:
        return None, f"not valid JSON (nested more than {MAX_DEPTH} levels deep)"
    except NotANumber as exc:
        return None, f"not valid JSON ({exc})"
    except ValueError:  # Python's limit on the digits of an integer
        return None, "not valid JSON (a number of more than 4,300 digits)"


def _unstorable(data: Any) -> tuple[str, str | None]:
    """The first value (or key) of a decoded line that no database can store: nesting deeper
    than MAX_DEPTH, a NUL character (PostgreSQL refuses it in text and JSON), or a lone UTF-16
    surrogate (no UTF-8 encoding). Returns (where, problem); problem None when all is fine.
    Iterative, so that the depth of a line is no risk to this process either."""
    pending: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while pending:
        value, path = pending.pop()
        if len(path) > MAX_DEPTH:
            return ".".join(_shown(part) for part in path[:3]) + "...", \
                f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, dict):
            for key, item in value.items():
                problem = _bad_text(key)
                if problem is not None:
                    return ".".join(_shown(part) for part in (*path, key)), \
                        f"a property name {problem}"
                pending.append((item, (*path, key)))
        elif isinstance(value, list):
            pending.extend((item, (*path, str(index))) for index, item in enumerate(value))
        elif isinstance(value, str):
            problem = _bad_text(value)
            if problem is not None:
                return ".".join(_shown(part) for part in path) or "line", problem
    return "line", None


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


def _shown(text: str, limit: int = 40) -> str:
    """A value from the file as it may appear in a message: printable ASCII, short (an id
    or a property name can hold a line break, an escape sequence or megabytes)."""
    escaped = json.dumps(text)[1:-1] if not (text.isascii() and text.isprintable()) else text
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


async def import_lines(*, session: AsyncSession, lines: Iterable[str],
                       progress: Callable[[int], None] | None = None,
                       chunk_lines: int = CHUNK_LINES,
                       bulk_tokens: int = BULK_TOKENS) -> Imported:
    """Load an export file. All or nothing: any bad line raises ImportFailed and the caller
    rolls back (nothing but the TEMP staging tables is written before every line has been
    checked). `progress` is told how many lines each chunk held, once it is staged."""
    staging = await repository.Staging.open(session)
    problems: list[tuple[int, str]] = []
    # The first line of each module id (at most 10,000 ids: MOD- and four digits).
    modules: dict[str, tuple[int, ModuleLine]] = {}
    accounts = tokens = previous_hashes = 0
    for chunk in read_chunks(lines, chunk_lines):
        problems += chunk.problems
        if problems:  # the rest is read for its problems only: ids of rows are kept alone
            await staging.add("ids", [*chunk.ids, *((row[0], row[1]) for row in
                                                    [*chunk.accounts, *chunk.tokens])])
        else:
            await staging.add("ids", chunk.ids)
            for name in ("accounts", "groups", "tokens", "links"):
                await staging.add(name, getattr(chunk, name))
            accounts += len(chunk.accounts)
            tokens += len(chunk.tokens)
            previous_hashes += chunk.previous_hashes
            for number, module in chunk.modules:
                modules.setdefault(module.id, (number, module))
        if progress:
            progress(chunk.lines)
        if len(problems) >= MAX_REPORTED:
            break
        del chunk  # the next chunk is read without this one still held
    # A line repeating an id is named for that (the id is seen before the line's shape).
    repeated = {number: f"{_shown(value)} is already on line {first}"
                for number, value, first in await staging.repeated("ids", "id", MAX_REPORTED)}
    if problems or repeated:
        raise ImportFailed(sorted({**dict(problems), **repeated}.items())[:MAX_REPORTED])

    await repository.claim_store(session)
    await staging.analyze()
    known_modules = await repository.existing_ids(session, Module, modules)
    found = await _clashes(staging, modules, known_modules, previous_hashes)
    if found:
        raise ImportFailed(sorted(found)[:MAX_REPORTED])
    in_order = [line for _, line in sorted(modules.values(), key=lambda item: item[0])]
    await _modules(session, in_order, known_modules, utcnow())
    # The bulk write drops and rebuilds the tokens' keys and indexes, and the foreign keys to
    # accounts and modules with them: every table it touches is locked until the commit,
    # which would stall every first-seen credential of a serving store (the credential's
    # statement reads all four). Only into a store without tokens, where nobody can be
    # authenticated to wait: a restore, or a first load.
    await staging.write(bulk=tokens >= bulk_tokens and not await staging.store_has_tokens())
    await staging.close()
    imported = Imported(accounts=accounts, modules=len(modules), tokens=tokens)
    # One record of the whole import, in its transaction, in Operations' trail only (it
    # spans accounts): made at the server's shell, so by the system.
    audit.record(session, actor=SYSTEM, event=events.IMPORT_COMPLETED,
                 subject=Subject(ids.new_id("IMP", 4), "Import", "Import", None),
                 documents={"import": {"accounts": accounts, "modules": len(modules),
                                       "tokens": tokens}})
    return imported


async def _clashes(staging: repository.Staging, modules: dict[str, tuple[int, ModuleLine]],
                   known_modules: set[str], previous_hashes: int) -> list[tuple[int, str]]:
    """What the valid lines, staged, clash with or lack: ids and hashes taken or repeated,
    new modules without a name, references to nothing. At most MAX_REPORTED of each."""
    limit, found = MAX_REPORTED, []
    taken = (("accounts", "id", repository.ACCOUNTS, "account {} already exists"),
             ("tokens", "id", repository.TOKENS, "token {} already exists"),
             ("groups", "id", repository.GROUPS, "user group {} already exists"))
    for name, column, target, message in taken:
        found += [(number, message.format(value)) for number, value
                  in await staging.taken(name, column, target, column, limit)]
    found += [(number, f"user group {value} is already on line {first}")
              for number, value, first in await staging.repeated("groups", "id", limit)]
    # A hash is no other token's, current or previous: in the store or in the file. The
    # previous ones are few, and only looked for when the file has any.
    hashes = [("secret_hash", "secret_hash"), ("secret_hash", "previous_secret_hash")]
    if previous_hashes:
        hashes += [("previous_secret_hash", "secret_hash"),
                   ("previous_secret_hash", "previous_secret_hash")]
    for column, target_column in hashes:
        name = "secretHash" if column == "secret_hash" else "previousSecretHash"
        found += [(number, f"{name} belongs to a token already in the store")
                  for number, _ in await staging.taken("tokens", column, repository.TOKENS,
                                                       target_column, limit)]
    repeated = (await staging.repeated_hashes(limit) if previous_hashes else
                [(number, "secretHash", first) for number, _, first
                 in await staging.repeated("tokens", "secret_hash", limit)])
    found += [(number, f"{name} the same value is already on line {first}")
              for number, name, first in repeated]
    found += [(number, f"module {module.id} is new: it needs a name")
              for number, module in modules.values()
              if module.id not in known_modules and not module.name]
    found += [(number, f"token {token}: account {account} is neither in the file nor in "
                       "the store")
              for number, token, account in await staging.unknown_accounts(limit)]
    missing: dict[int, tuple[str, list[str]]] = {}
    for number, token, module_id in await staging.unknown_modules(limit):
        missing.setdefault(number, (token, []))[1].append(module_id)
    found += [(number, f"token {token}: unknown modules {', '.join(ids)}")
              for number, (token, ids) in missing.items()]
    return found


async def _modules(session: AsyncSession, lines: list[ModuleLine], known: set[str],
                   now: Any) -> None:
    new_rows = []
    for line in lines:
        given = line.model_fields_set
        values: dict[str, Any] = {}
        for wire, column in (("name", "name"), ("description", "description"),
                             ("accountTypes", "account_types"),
                             ("isEnabledByDefault", "is_enabled_by_default"),
                             ("isConfigurable", "is_configurable"), ("paid", "paid"),
                             ("settings", "settings"), ("filters", "filters"),
                             ("revision", "revision")):
            if wire in given:
                values[column] = getattr(line, wire)
        if "audit" in given:
            values.update(_audit_values(line.audit, now))
        if line.id in known:
            if values:
                await repository.update_module(session, line.id, values)
            continue
        types = values.get("account_types") or ALL_TYPES
        row = {"id": line.id, "description": None, "account_types": types,
               "is_enabled_by_default": False, "is_configurable": False, "paid": False,
               "filters": {}, "revision": 1, **_audit_values(line.audit, now), **values}
        row.setdefault("settings", None)
        if row["settings"] is None:
            row["settings"] = {"sharedAccount": False, "configurable": row["is_configurable"],
                               "default": row["is_enabled_by_default"], "paid": row["paid"],
                               "type": types}
        row["account_types"] = types
        new_rows.append(row)
    await repository.insert_modules(session, new_rows)


def _audit_row(audit: AuditIn | None, now: Any) -> tuple[Any, ...]:
    """The audit columns (repository.AUDIT)."""
    created = audit.created if audit else None
    updated = audit.updated if audit else None
    return (created.at if created else now,
            created.by.id if created and created.by else None,
            created.by.name if created and created.by else None,
            updated.at if updated else None,
            updated.by.id if updated and updated.by else None,
            updated.by.name if updated and updated.by else None)


def _audit_values(audit: AuditIn | None, now: Any) -> dict[str, Any]:
    return dict(zip(repository.AUDIT, _audit_row(audit, now), strict=True))


def _accesses(accesses: list[AccessIn]) -> str:
    """The last client addresses as their column holds them (tokens/last_access.py): JSON
    text of the wire shape, newest first, each address once (its newest use)."""
    seen: set[str] = set()
    kept = []
    for access in sorted(accesses, key=lambda access: access.at, reverse=True):
        if access.ip not in seen:
            seen.add(access.ip)
            kept.append({"ip": access.ip, "at": render(access.at)})
    return _ENCODER.encode(kept)


def _account_row(number: int, line: AccountLine, now: Any) -> tuple[Any, ...]:
    # `address` as the JSON text its column gets (a missing one: JSON null, as before).
    return (number, line.id, line.type, line.status, line.name, line.description,
            line.externalId, line.externalName,
            (str(line.externalIds.pyraTenantId)
             if line.externalIds and line.externalIds.pyraTenantId else None),
            line.serviceLevel,
            json.dumps(line.address.model_dump() if line.address else None),
            line.technicalSupportEmail, line.website, line.revision,
            *_audit_row(line.audit, now))


# -- export -----------------------------------------------------------------------------------

# Rendered nested accounts kept while tokens are written (a token's account is usually one
# of a few recent ones); emptied when full, so that it never holds the whole store.
NESTED_ACCOUNTS = 10_000


async def export_lines(*, session: AsyncSession) -> AsyncGenerator[str, None]:
    """The whole store, one JSON object a line: accounts, modules, then tokens; each line
    byte for byte what the API's renderers make of the object (plus a token's hashes), at
    the moment the export starts (a token's Expired status, its previous secret's window)."""
    now = utcnow()
    # Every stream is closed as soon as it is left (aclosing): a stream still open would
    # hold the session's connection busy.
    async with aclosing(_account_lines(session)) as lines:
        async for line in lines:
            yield line
    nested_modules: dict[str, str] = {}  # the catalog: at most 10,000 ids
    async with aclosing(repository.module_rows(session)) as modules:
        async for row in modules:
            yield _dump(_module_body(row, audit=True))
            nested_modules[row.id] = _dump(_module_body(row, audit=False))
    async with aclosing(_token_lines(session, nested_modules, now)) as lines:
        async for line in lines:
            yield line


async def _account_lines(session: AsyncSession) -> AsyncGenerator[str, None]:
    account: Row[Any] | None = None
    groups: list[dict[str, Any]] = []
    async with aclosing(repository.account_rows(session)) as rows:
        async for row in rows:
            if account is not None and row.id != account.id:
                yield _account_line(account, groups)
                groups = []
            account = row
            if row.group_id is not None:
                groups.append({
                    "id": row.group_id,
                    "href": f"/public/v1/accounts/user-groups/{row.group_id}",
                    "name": row.group_name, "description": row.group_description,
                    "logo": row.group_logo, "isDefault": row.group_is_default,
                    "modules": []})
    if account is not None:
        yield _account_line(account, groups)


def _account_line(row: Row[Any], groups: list[dict[str, Any]]) -> str:
    body = _account_body(row._mapping, "")
    body["groups"] = groups
    body["audit"] = _audit(row)
    body["revision"] = row.revision
    return _dump(body)


def _account_body(values: Any, prefix: str) -> dict[str, Any]:
    """render_account(full=False) of a row's columns named `prefix` + column name."""

    def value(name: str) -> Any:
        return values[prefix + name]

    account_id = value("id")
    icon_at = value("icon_updated_at")
    return {
        "id": account_id,
        "href": account_href(account_id),
        "type": value("type"),
        "status": value("status"),
        "name": value("name"),
        "description": value("description"),
        "icon": (None if icon_at is None else
                 f"{account_href(account_id)}/icon?v={int(as_utc(icon_at).timestamp() * 1000)}"),
        "externalIds": {"pyraTenantId": value("pyra_tenant_id")},
        "externalId": value("external_id"),
        "externalName": value("external_name"),
        "serviceLevel": value("service_level"),
        "address": value("address"),
        "technicalSupportEmail": value("technical_support_email"),
        "website": value("website"),
    }


def _module_body(row: Row[Any], *, audit: bool) -> dict[str, Any]:
    """render_module of a row."""
    body: dict[str, Any] = {
        "id": row.id, "href": module_href(row.id), "name": row.name,
        "description": row.description, "accountTypes": list(row.account_types),
        "isEnabledByDefault": row.is_enabled_by_default,
        "isConfigurable": row.is_configurable, "paid": row.paid,
        "settings": dict(row.settings), "filters": dict(row.filters)}
    if audit:
        body["audit"] = _audit(row)
        body["revision"] = row.revision
    return body


async def _token_lines(session: AsyncSession, nested_modules: dict[str, str], now: datetime
                       ) -> AsyncGenerator[str, None]:
    rank = {module_id: index for index, module_id in enumerate(nested_modules)}
    nested_accounts: dict[str, str] = {}
    width = len(repository.TOKEN_EXPORT) + 1
    async with aclosing(repository.token_rows(session)) as rows:
        async for row in rows:
            # By position: a Row's attributes cost more than the rest of the line.
            *token, module_ids = row[:width]
            account_id = token[-1]
            account = nested_accounts.get(account_id)
            if account is None:
                if len(nested_accounts) >= NESTED_ACCOUNTS:
                    nested_accounts.clear()
                values = dict(row._mapping)
                address = values["owner_address"]
                values["owner_address"] = None if address is None else json.loads(address)
                account = _dump(_account_body(values, "owner_"))
                nested_accounts[account_id] = account
            # The catalog's order (by id, as the database orders it).
            modules = ",".join(nested_modules[module_id] for module_id in
                               sorted(module_ids.split(","), key=rank.__getitem__)
                               ) if module_ids else ""
            yield _token_line(token, account, modules, now)


def _token_line(token: list[Any], account: str, modules: str, now: datetime) -> str:
    """render_token of a row (repository.TOKEN_EXPORT) at `now`, plus its secretHash,
    encoded value by value with the lines' encoder: the same bytes as encoding the whole
    object at once (the nested account and modules come encoded already).

    Then what the API does not show, each only when the token has it: while the secret a
    rotation replaced still works, its hash and whether the new secret's first use ends it
    (previousSecretHash, retirePreviousOnFirstUse: a store moved in a grace window keeps the
    old secret working until the window ends; once it no longer works, nothing of it is
    written, no more than the API shows); and when the last rotation was (rotatedAt)."""
    (token_id, name, description, icon, status, last_access_at, created_at, created_by_id,
     created_by_name, updated_at, updated_by_id, updated_by_name, revision, secret_hash,
     expires_at, ip_allowlist, last_access_ips, previous_hash, previous_end,
     previous_last_access_at, retire_previous, rotated_at, rate_limit, rate_window,
     status_reason, _) = token
    audit = f'{{"created":{_event(created_at, created_by_id, created_by_name)}'
    if updated_at is not None:
        audit += f',"updated":{_event(updated_at, updated_by_id, updated_by_name)}'
    expiry = "null"
    if expires_at is not None:
        status = status_at(status, expires_at, now)
        expiry = _string(render(expires_at))
    networks = "null" if ip_allowlist is None else _ENCODER.encode(from_stored(ip_allowlist))
    # Both set or neither (tokens/models.py); as render_rate_limit, one alone is none.
    quota = ("null" if rate_limit is None or rate_window is None
             else f'{{"limit":{rate_limit:d},"windowSeconds":{rate_window:d}}}')
    addresses = ("[]" if last_access_ips is None
                 else _ENCODER.encode(merged_addresses(last_access_ips, ())))
    previous, stored = "null", f'"secretHash":{_string(secret_hash)}'
    if previous_hash is not None and (until := previous_until(previous_end, expires_at, now)):
        previous = (f'{{"expiresAt":{_string(render(until))},'
                    f'"lastAccessAt":{_string(render(previous_last_access_at))}}}')
        stored += (f',"previousSecretHash":{_string(previous_hash)},'
                   f'"retirePreviousOnFirstUse":{"true" if retire_previous else "false"}')
    if rotated_at is not None:
        stored += f',"rotatedAt":{_string(render(rotated_at))}'
    return (f'{{"id":{_string(token_id)},"href":{_string(token_href(token_id))},'
            f'"name":{_string(name)},"description":{_string(description)},'
            f'"icon":{_string(icon)},"status":{_string(status)},'
            f'"statusReason":{_string(status_reason)},"expiresAt":{expiry},'
            f'"ipAllowlist":{networks},"rateLimit":{quota},'
            f'"lastAccessAt":{_string(render(last_access_at))},'
            f'"lastAccessIps":{addresses},"previousSecret":{previous},"account":{account},'
            f'"modules":[{modules}],"audit":{audit}}},"revision":{_ENCODER.encode(revision)},'
            f'{stored}}}')


def _audit(row: Row[Any]) -> dict[str, Any]:
    """Audited.render_audit of a row."""
    audit = {"created": _event_body(row.created_at, row.created_by_id, row.created_by_name)}
    if row.updated_at is not None:
        audit["updated"] = _event_body(row.updated_at, row.updated_by_id, row.updated_by_name)
    return audit


def _event_body(at: Any, by_id: str | None, by_name: str | None) -> dict[str, Any]:
    by = None
    if by_id is not None:
        by = {"id": by_id, "name": by_name, "icon": None,
              "href": token_href(by_id) if by_id.startswith("TKN-") else None}
    return {"at": render(at), "by": by}


def _event(at: Any, by_id: str | None, by_name: str | None) -> str:
    """_event_body, encoded."""
    if by_id is None:
        return f'{{"at":{_string(render(at))},"by":null}}'
    return _dump(_event_body(at, by_id, by_name))


def _string(value: str | None) -> str:
    return "null" if value is None else _ENCODER.encode(value)


# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dump(body: dict[str, Any]) -> str:
    return _ENCODER.encode(body)
