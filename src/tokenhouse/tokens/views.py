"""Rendered tokens kept in each process, so that reading a token (GET .../api-tokens/{id},
which every client does to check itself) and the items of a list page need no database
round trip.

A view is the token's representation, kept as JSON bytes split around the properties that
change without a new revision (schemas.DYNAMIC: `lastAccessAt`, `lastAccessIps`,
`previousSecret`, and the secret on a self-read), which are spliced in at response time.
Accesses come from the stored values and the latest this process knows of (its own, and those
other processes tell; see tokens/last_access.py); the grace window of a replaced secret is
judged against the clock. The representation is kept twice: whole (GET) and as a list item
(without `audit`). Bytes, not dicts: a view costs about 2 KB and nothing for the garbage
collector to walk. A `select` decodes it.

Views are dropped by the same changes as cached credentials (a token changed; its account
changed or was disabled; the module catalog changed; see kit/invalidation.py). Like them,
they expire after a safety TTL in case a change is ever lost. A view of an Active token with
an expiry is also stale from that moment (its status is then Expired): it is made again.
"""

import json
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from tokenhouse.kit import paging
from tokenhouse.kit.cache import TaggedCache
from tokenhouse.kit.rql import parse_query
from tokenhouse.kit.rql.shape import project
from tokenhouse.kit.timeutil import as_utc, render, stamp, utcnow
from tokenhouse.tokens.last_access import (
    LastAccessRecorder,
    latest_access,
    latest_previous_access,
    merged_addresses,
)
from tokenhouse.tokens.lifecycle import grace_end, previous_until
from tokenhouse.tokens.models import ApiToken, TokenStatus
from tokenhouse.tokens.repository import RESOURCE, PageRow
from tokenhouse.tokens.schemas import DYNAMIC, render_token

LIST_ITEM = paging.list_shape(parse_query(""), RESOURCE)
_FIRST, _LAST = DYNAMIC[0], DYNAMIC[-1]

# A token's documents hold only strings, integers, booleans, nulls, lists and objects
# (schemas.render_token, `_claims`): for those orjson writes what kit/paging.encode_json does,
# byte for byte (tests/tokens/test_view_encoding.py), about ten times faster, and a view is
# encoded on every first-seen credential, create and change. (Floats would differ: 1e-07.)
def encode_json(value: Any) -> bytes:
    # Datetimes and dataclasses refused (TypeError), as json refuses them: a value that
    # strays into a document fails loudly instead of being written in orjson's own way.
    return orjson.dumps(value, option=_REFUSE)


_REFUSE = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


@dataclass(frozen=True, slots=True)
class Accessed:
    """What the token's row holds about its use: written by the batched access recorder,
    not by a change (no new revision). A page reads it afresh with each list."""

    last_access_at: datetime | None
    last_access_ips: str | None  # JSON text
    previous_last_access_at: datetime | None

    @classmethod
    def of(cls, row: "ApiToken | PageRow") -> "Accessed":
        """From a token, or from the row a page read."""
        return cls(row.last_access_at, row.last_access_ips, row.previous_last_access_at)


@dataclass(frozen=True, slots=True)
class Split:
    """A JSON object with the values of DYNAMIC left out, to be spliced in."""

    head: bytes  # up to and including the comma before the first of DYNAMIC
    tail: bytes  # from the comma after the last of DYNAMIC to the end

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Split":
        keys = list(body)
        start = keys.index(_FIRST)
        end = start
        while end < len(keys) and keys[end] in DYNAMIC:
            end += 1
        head = encode_json({key: body[key] for key in keys[:start]})[:-1]
        tail = encode_json({key: body[key] for key in keys[end:]})[1:]
        return cls(head + b",", b"," + tail)

    def join(self, middle: bytes) -> bytes:
        return self.head + middle + self.tail


@dataclass(frozen=True, slots=True)
class View:
    token_id: str
    account_id: str
    status: str  # as stored
    revision: int
    expires_at: datetime | None
    grace_end: datetime | None  # of the replaced secret (lifecycle.grace_end)
    accessed: Accessed  # as stored when the view was made
    # time.time() from which this view is wrong (an Active token's expiry), or None.
    stale_from: float | None
    whole: Split
    item: Split
    # Its introspection answer (RFC 7662), split where `exp` goes: it is the presented
    # secret's (a replaced secret stops before the token does).
    claims: Split

    def body(self, middle: bytes) -> dict[str, Any]:
        """The representation as a dict, for `select` (the slow path)."""
        body: dict[str, Any] = json.loads(self.whole.join(middle))
        return body


def view_of(token: ApiToken, now: datetime | None = None) -> View:
    now = now or utcnow()
    body = render_token(token, now=now, dynamic={key: None for key in DYNAMIC})
    stale_from = None
    if token.status == TokenStatus.ACTIVE and token.expires_at is not None:
        expiry = as_utc(token.expires_at)
        if expiry > now:  # rendered Active: wrong from its expiry on
            stale_from = expiry.timestamp()
    return View(token.id, token.account_id, token.status, token.revision, token.expires_at,
                grace_end(token), Accessed.of(token), stale_from, Split.of(body),
                Split.of(project(body, LIST_ITEM)), _claims(token))


def _claims(token: ApiToken) -> Split:
    issued = as_utc(token.rotated_at or token.created_at)
    head = {"active": True, "token_type": "api_token", "jti": token.id,
            "sub": token.account_id, "scope": " ".join(module.id for module in token.modules),
            "iat": int(issued.timestamp())}
    tail = {"apiToken": {
        "id": token.id, "name": token.name,
        "account": {"id": token.account.id, "name": token.account.name,
                    "type": token.account.type},
        "modules": [{"id": module.id, "name": module.name} for module in token.modules]}}
    return Split(encode_json(head)[:-1], b"," + encode_json(tail)[1:])


def introspection(view: View, until: float | None, rate_limit: bytes = b"") -> bytes:
    """The answer for an active secret of `view`'s token that stops at `until` (time.time(),
    None: never); `rate_limit`: its `"rateLimit":{...}` member, if it has a limit."""
    exp = b',"exp":' + str(int(until)).encode() if until is not None else b""
    if rate_limit:
        exp += b"," + rate_limit
    return view.claims.head + exp + view.claims.tail


def spliced(view: View, accesses: LastAccessRecorder | None, *,
            accessed: Accessed | None = None, now: datetime | None = None,
            secret: str | None = None) -> bytes:
    """The values of DYNAMIC for `view`, as the bytes between a Split's head and tail: what
    is stored (`accessed`: fresher stored values than the view's, from a page's own read)
    and what `accesses` noted since (None: what is stored alone, for the command line). It
    runs for every token of every answer: what is stored alone is encoded once and kept."""
    stored = accessed or view.accessed
    noted = accesses.noted(view.token_id) if accesses is not None else []
    if noted:
        last = latest_access(stored.last_access_at, noted)
        ips = merged_addresses(stored.last_access_ips, [each.ips for each in noted])
        # By hand: timestamps and canonical addresses need no JSON escaping.
        part = (b'"lastAccessAt":' + (b'"' + stamp(last).encode() + b'"' if last else b"null")
                + b',"lastAccessIps":[' + ",".join(
                    f'{{"ip":"{address["ip"]}","at":"{address["at"]}"}}' for address in ips
                ).encode() + b"]")
    else:
        part = _stored_part(stored.last_access_at, stored.last_access_ips)
    until = None
    if view.grace_end is not None:  # the clock is read only when there is a window to judge
        until = previous_until(view.grace_end, view.expires_at, now or utcnow())
    if until is None:
        part += b',"previousSecret":null'
    else:
        used = latest_previous_access(stored.previous_last_access_at, view.grace_end, noted)
        part += b',"previousSecret":' + encode_json({"expiresAt": render(until),
                                                      "lastAccessAt": render(used)})
    if secret is not None:
        part += b',"token":' + encode_json(secret)
    return part


@lru_cache(maxsize=16_384)
def _stored_part(last_access_at: datetime | None, last_access_ips: str | None) -> bytes:
    return (b'"lastAccessAt":' + encode_json(render(last_access_at)) + b',"lastAccessIps":'
            + encode_json(merged_addresses(last_access_ips, ())))


class TokenViews(TaggedCache[View]):
    """Views by token id."""

    def tags(self, value: View) -> tuple[str, str]:
        return value.token_id, value.account_id

    def get(self, key: str) -> View | None:
        view = super().get(key)
        if view is not None and view.stale_from is not None and time.time() >= view.stale_from:
            return None  # the token expired since: made again, showing Expired
        return view
