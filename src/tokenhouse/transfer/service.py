"""Export the whole store as JSON Lines, and import such a file, all or nothing.

A line is an object in its public API shape, its kind told by the id prefix (`ACC-`, `MOD-`,
`TKN-`); accounts and modules come before the tokens that refer to them. Import keeps ids,
timestamps and revisions; a module line upserts the catalog entry with its id; accounts and
tokens must be new. Every line is checked before anything is written.
"""

import json
import math
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.accounts.models import Account, UserGroup
from tokenhouse.accounts.schemas import render_account
from tokenhouse.kit.problems import BadRequest
from tokenhouse.kit.timeutil import utcnow
from tokenhouse.modules.models import Module
from tokenhouse.modules.schemas import render_module
from tokenhouse.tokens.models import ApiToken
from tokenhouse.tokens.schemas import render_token
from tokenhouse.transfer import repository
from tokenhouse.transfer.schemas import AccountLine, AuditIn, ModuleLine, TokenLine

KINDS: dict[str, type[AccountLine | ModuleLine | TokenLine]] = {
    "ACC-": AccountLine, "MOD-": ModuleLine, "TKN-": TokenLine}
MAX_REPORTED = 20
# How deeply a line may nest (the deepest export line nests 4 levels: a module's settings).
MAX_DEPTH = 32
ALL_TYPES = ["Client", "Vendor", "Operations"]


class ImportFailed(BadRequest):
    """The file has bad lines; nothing was written. `problems` are (line number, message)."""

    def __init__(self, problems: list[tuple[int, str]]):
        # Messages quote the file (ids, property names, a parser's words about a value):
        # printable and bounded, so that no line can forge or flood the output.
        self.problems = [(number, _shown(message, 500)) for number, message in problems]
        lines = "\n".join(f"line {number}: {message}" for number, message in self.problems)
        super().__init__(f"Nothing was imported:\n{lines}")


@dataclass
class Parsed:
    accounts: list[tuple[int, AccountLine]] = field(default_factory=list)
    modules: list[tuple[int, ModuleLine]] = field(default_factory=list)
    tokens: list[tuple[int, TokenLine]] = field(default_factory=list)


@dataclass(frozen=True)
class Imported:
    accounts: int
    modules: int
    tokens: int


def parse_lines(lines: Iterable[str], progress: Callable[[int], None] | None = None) -> Parsed:
    """Every line checked on its own (JSON, kind, shape); raises ImportFailed listing them."""
    parsed = Parsed()
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if progress:
            progress(1)
        if not text.strip():
            continue
        problem = _parse_line(text, seen, number, parsed)
        if problem is not None:
            problems.append((number, problem))
            if len(problems) >= MAX_REPORTED:
                break
    if problems:
        raise ImportFailed(problems)
    return parsed


def _parse_line(text: str, seen: dict[str, int], number: int, parsed: Parsed) -> str | None:
    """Adds the line to `parsed`, or says what is wrong with it."""
    data, problem = _decode(text)
    if problem is not None:
        return problem
    object_id = data.get("id") if isinstance(data, dict) else None
    kind = KINDS.get(object_id[:4]) if isinstance(object_id, str) else None
    if kind is None or not isinstance(object_id, str):
        return "not an object with an id starting ACC-, MOD- or TKN-"
    shown = _shown(object_id)
    where, problem = _unstorable(data)
    if problem is not None:
        return f"{shown}: {where}: {problem}"
    if object_id in seen:
        return f"{shown} is already on line {seen[object_id]}"
    seen[object_id] = number
    try:
        line = kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(_shown(str(part)) for part in first["loc"]) or "line"
        return f"{shown}: {where}: {first['msg']}"
    if isinstance(line, AccountLine):
        parsed.accounts.append((number, line))
    elif isinstance(line, ModuleLine):
        parsed.modules.append((number, line))
    else:
        parsed.tokens.append((number, line))
    return None


def _decode(text: str) -> tuple[Any, str | None]:
    """The line's JSON value, or why it is none. NaN, Infinity and numbers too large for a
    float are refused: neither database's JSON can hold them."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg})"
    except RecursionError:
        return None, f"not valid JSON (nested more than {MAX_DEPTH} levels deep)"
    except _Refused as exc:
        return None, f"not valid JSON ({exc})"
    except ValueError:  # Python's limit on the digits of an integer
        return None, "not valid JSON (a number of more than 4,300 digits)"


class _Refused(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("a number too large for a float")
    return value


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
                       progress: Callable[[int], None] | None = None) -> Imported:
    """Load an export file. All or nothing: any bad line raises ImportFailed and the caller
    rolls back (no statement is even sent before every line has been checked)."""
    parsed = parse_lines(lines, progress)
    problems: list[tuple[int, str]] = []
    account_ids = [line.id for _, line in parsed.accounts]
    taken = await repository.existing_ids(session, Account, account_ids)
    problems += [(n, f"account {line.id} already exists") for n, line in parsed.accounts
                 if line.id in taken]
    token_ids = [line.id for _, line in parsed.tokens]
    taken = await repository.existing_ids(session, ApiToken, token_ids)
    problems += [(n, f"token {line.id} already exists") for n, line in parsed.tokens
                 if line.id in taken]
    group_ids = [(n, group.id) for n, line in parsed.accounts for group in line.groups]
    taken = await repository.existing_ids(session, UserGroup, [g for _, g in group_ids])
    problems += [(n, f"user group {g} already exists") for n, g in group_ids if g in taken]
    problems += _repeated(group_ids, "user group")
    hashes = [(n, line.secretHash) for n, line in parsed.tokens if line.secretHash]
    taken = await repository.existing_hashes(session, [h for _, h in hashes])
    problems += [(n, "secretHash belongs to a token already in the store")
                 for n, h in hashes if h in taken]
    problems += _repeated(hashes, "secretHash")
    known_modules = await repository.existing_ids(session, Module,
                                                  [line.id for _, line in parsed.modules])
    for number, module in parsed.modules:
        if module.id not in known_modules and not module.name:
            problems.append((number, f"module {module.id} is new: it needs a name"))
    accounts_known = set(account_ids) | await repository.existing_ids(
        session, Account, {line.account.id for _, line in parsed.tokens})
    modules_known = {line.id for _, line in parsed.modules} | await repository.existing_ids(
        session, Module, {m.id for _, line in parsed.tokens for m in line.modules})
    for number, token in parsed.tokens:
        if token.account.id not in accounts_known:
            problems.append((number, f"token {token.id}: account {token.account.id} is "
                                     "neither in the file nor in the store"))
        missing = [m.id for m in token.modules if m.id not in modules_known]
        if missing:
            problems.append((number, f"token {token.id}: unknown modules {', '.join(missing)}"))
    if problems:
        raise ImportFailed(sorted(problems)[:MAX_REPORTED])

    now = utcnow()
    await _modules(session, [line for _, line in parsed.modules], known_modules, now)
    await repository.insert_rows(session, repository.TABLES["accounts"],
                                 [_account_row(line, now) for _, line in parsed.accounts])
    await repository.insert_rows(session, repository.TABLES["user_groups"], [
        {"id": group.id, "account_id": line.id, "name": group.name,
         "description": group.description, "logo": group.logo, "is_default": group.isDefault,
         **_audit_row(None, now)}
        for _, line in parsed.accounts for group in line.groups])
    await repository.insert_rows(session, repository.TABLES["api_tokens"],
                                 [_token_row(line, now) for _, line in parsed.tokens])
    await repository.insert_rows(session, repository.TABLES["api_token_modules"], [
        {"token_id": line.id, "module_id": module_id}
        for _, line in parsed.tokens for module_id in dict.fromkeys(m.id for m in line.modules)])
    return Imported(accounts=len(parsed.accounts), modules=len(parsed.modules),
                    tokens=len(parsed.tokens))


def _repeated(values: list[tuple[int, str]], what: str) -> list[tuple[int, str]]:
    """Lines repeating a value that must be unique (named by their first line)."""
    first: dict[str, int] = {}
    problems = []
    for number, value in values:
        if value in first:
            shown = value if what != "secretHash" else "the same value"
            problems.append((number, f"{what} {shown} is already on line {first[value]}"))
        else:
            first[value] = number
    return problems


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
            values.update(_audit_row(line.audit, now))
        if line.id in known:
            if values:
                await repository.update_module(session, line.id, values)
            continue
        types = values.get("account_types") or ALL_TYPES
        row = {"id": line.id, "description": None, "account_types": types,
               "is_enabled_by_default": False, "is_configurable": False, "paid": False,
               "filters": {}, "revision": 1, **_audit_row(line.audit, now), **values}
        row.setdefault("settings", None)
        if row["settings"] is None:
            row["settings"] = {"sharedAccount": False, "configurable": row["is_configurable"],
                               "default": row["is_enabled_by_default"], "paid": row["paid"],
                               "type": types}
        row["account_types"] = types
        new_rows.append(row)
    await repository.insert_rows(session, repository.TABLES["modules"], new_rows)


def _audit_row(audit: AuditIn | None, now: Any) -> dict[str, Any]:
    created = audit.created if audit else None
    updated = audit.updated if audit else None
    return {
        "created_at": created.at if created else now,
        "created_by_id": created.by.id if created and created.by else None,
        "created_by_name": created.by.name if created and created.by else None,
        "updated_at": updated.at if updated else None,
        "updated_by_id": updated.by.id if updated and updated.by else None,
        "updated_by_name": updated.by.name if updated and updated.by else None,
    }


def _account_row(line: AccountLine, now: Any) -> dict[str, Any]:
    return {
        "id": line.id, "type": line.type, "status": line.status, "name": line.name,
        "description": line.description, "external_id": line.externalId,
        "external_name": line.externalName,
        "pyra_tenant_id": (str(line.externalIds.pyraTenantId)
                           if line.externalIds and line.externalIds.pyraTenantId else None),
        "service_level": line.serviceLevel,
        "address": line.address.model_dump() if line.address else None,
        "technical_support_email": line.technicalSupportEmail, "website": line.website,
        "icon_updated_at": None, "revision": line.revision, **_audit_row(line.audit, now),
    }


def _token_row(line: TokenLine, now: Any) -> dict[str, Any]:
    return {
        "id": line.id, "account_id": line.account.id, "name": line.name,
        "description": line.description, "icon": line.icon, "status": line.status,
        "secret_hash": line.secretHash, "last_access_at": line.lastAccessAt,
        "revision": line.revision, **_audit_row(line.audit, now),
    }


async def export_lines(*, session: AsyncSession) -> AsyncIterator[str]:
    """The whole store, one JSON object a line: accounts, modules, then tokens."""
    async for account in repository.stream(session, Account):
        yield _dump(render_account(account))
    async for module in repository.stream(session, Module):
        yield _dump(render_module(module))
    async for token in repository.stream(session, ApiToken):
        body = render_token(token, last_access=token.last_access_at)
        body["secretHash"] = token.secret_hash
        yield _dump(body)


def _dump(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
