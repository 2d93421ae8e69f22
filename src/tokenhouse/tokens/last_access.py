"""`lastAccessAt`, `lastAccessIps` and the replaced secret's `lastAccessAt`, recorded without
a database write on every request.

Authentication notes the time, the client's address and which secret was used in memory; a
background task writes what was noted at most once per token per interval, and a final flush
runs on shutdown. Most tokens need `lastAccessAt` alone (one statement per chunk of tokens);
a token seen from a new address, after a use of its replaced secret, or whose stored
addresses are older than ADDRESS_REFRESH_SECONDS has its row read, locked, merged and
written. Responses read the noted values on top of the stored ones, so a client sees its own
access at once.

Each flush also tells every process what it noted (`Seen` notes on the channel of
kit/invalidation.py), and every process keeps the latest accesses it heard of per token.
Token views kept in memory therefore show accesses made through any process within about
one interval, without reading the row again.

A use of the replaced secret counts for its grace window only: it is noted with the window's
end, and is written (and shown) only while the token's row still has that window.
"""

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenhouse.kit import metrics
from tokenhouse.kit.invalidation import Seen, publish
from tokenhouse.kit.outage import unavailable
from tokenhouse.kit.tasks import cancel
from tokenhouse.kit.timeutil import as_utc, stamp, utcnow
from tokenhouse.tokens import repository

log = logging.getLogger("tokenhouse.last_access")
REMEMBERED = 100_000
CHUNK = 2000  # tokens per UPDATE
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
NOTE_SIZE = 7000  # characters per `seen` note: PostgreSQL's NOTIFY takes at most 8000 bytes
ADDRESSES = 5  # distinct client addresses kept per token
# How old a stored address's time may grow before a flush writes it again: the addresses are
# read, merged and written (a locked read per token) only for a new address, a use of a
# replaced secret, or past this age; otherwise the flush writes `lastAccessAt` alone, in one
# statement. Responses of this process show the exact times all along.
ADDRESS_REFRESH_SECONDS = 300.0


@dataclass(slots=True)
class Noted:
    """The accesses to one token noted since the last flush (or heard of)."""

    at: datetime
    # address -> latest access from it, rendered (as it is shown and stored: rendered times
    # sort as time does); the newest last; at most ADDRESSES
    ips: dict[str, str] = field(default_factory=dict)
    # (the grace window's end, the latest access by the replaced secret in it)
    previous: tuple[datetime, datetime] | None = None

    def add(self, at: datetime, address: str | None = None,
            window: datetime | None = None) -> None:
        if at > self.at:
            self.at = at
        if address is not None:
            self.address(address, stamp(at))
        if window is not None and (self.previous is None or self.previous[0] != window
                                   or self.previous[1] < at):
            self.previous = (window, at)

    def address(self, address: str, at: str) -> None:
        """An access from `address` at `at` (rendered)."""
        known = self.ips.pop(address, None)
        self.ips[address] = at if known is None or known < at else known
        if len(self.ips) > ADDRESSES:
            del self.ips[min(self.ips, key=self.ips.__getitem__)]

    def merge(self, other: "Noted") -> None:
        for address, at in other.ips.items():
            self.address(address, at)
        self.add(other.at)
        if other.previous is not None:
            self.add(other.previous[1], None, other.previous[0])


class LastAccessRecorder:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float):
        self._sessions = sessions
        self._interval = interval
        self._pending: dict[str, Noted] = {}
        self._flushing: dict[str, Noted] = {}
        # What flushes wrote here or elsewhere (heard through `seen` notes), most recent last
        # and bounded: a row read before the write committed, or a token's view kept in
        # memory, may still hold older values, so responses take the latest known ones.
        self._known: OrderedDict[str, Noted] = OrderedDict()
        # When this process last wrote a token's addresses (time.monotonic()), and which.
        self._written: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def touch(self, token_id: str, address: str | None = None,
              window: datetime | None = None) -> None:
        """Note an access now, from `address` (None: unknown), by the replaced secret of the
        grace window ending at `window` (None: by the current secret)."""
        now = utcnow()
        noted = self._pending.get(token_id)
        if noted is None:
            self._pending[token_id] = noted = Noted(now)
        noted.add(now, address, window)

    def noted(self, token_id: str) -> list[Noted]:
        """What is noted of a token's accesses (here since the last flush, being flushed, and
        written here or elsewhere), to be merged with what its row holds."""
        return [noted for noted in (self._pending.get(token_id), self._flushing.get(token_id),
                                    self._known.get(token_id)) if noted is not None]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="last-access-flush")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception as exc:
                metrics.count_last_access_failure()
                # Kept for the next round (see flush); a database hiccup must not stop it.
                if unavailable(exc) or _deadlock(exc):  # one line per round, no traceback
                    log.warning("could not write lastAccessAt values (%s); will retry",
                                type(exc).__name__)
                else:
                    log.exception("could not write lastAccessAt values; will retry")

    async def flush(self) -> int:
        """Write every noted access. Returns how many tokens were written."""
        async with self._lock:
            if not self._pending:
                return 0
            self._flushing, self._pending = self._pending, {}
            # In id order, so that two processes writing the same tokens lock their rows in
            # the same order (no deadlock); in chunks, each its own short transaction, so no
            # flush holds many row locks or the event loop for long.
            ids = sorted(self._flushing)
            try:
                for start in range(0, len(ids), CHUNK):
                    chunk = {token_id: self._flushing[token_id]
                             for token_id in ids[start:start + CHUNK]}
                    now = time.monotonic()
                    full = {token_id: noted for token_id, noted in chunk.items()
                            if self._needs_addresses(token_id, noted, now)}
                    # What the other processes are told: the addresses only where written.
                    told = {token_id: noted if token_id in full else Noted(noted.at)
                            for token_id, noted in chunk.items()}
                    async with self._sessions() as session:
                        plain = {token_id: noted.at for token_id, noted in chunk.items()
                                 if token_id not in full}
                        if plain:
                            await repository.write_last_access(session, plain)
                        if full:
                            await repository.write_accesses(session, full, merged_addresses)
                        for note in seen_notes(told):
                            publish(session, note)
                        await session.commit()
                    for token_id, noted in chunk.items():
                        self._remember(token_id, noted)
                    for token_id, noted in full.items():
                        self._written.pop(token_id, None)
                        self._written[token_id] = (now, tuple(noted.ips))
                    while len(self._written) > REMEMBERED:
                        del self._written[next(iter(self._written))]
            except BaseException:
                # Kept for the next round. Chunks already written are written again then,
                # which changes nothing: a stored value never moves backwards.
                for key, value in self._flushing.items():
                    pending = self._pending.get(key)
                    if pending is None:
                        self._pending[key] = value
                    else:
                        pending.merge(value)
                self._flushing = {}
                raise
            self._flushing = {}
            metrics.observe_last_access_batch(len(ids))
            return len(ids)

    def _needs_addresses(self, token_id: str, noted: Noted, now: float) -> bool:
        """Whether the flush must write the token's addresses (or the replaced secret's last
        use), not `lastAccessAt` alone (see ADDRESS_REFRESH_SECONDS)."""
        if noted.previous is not None:
            return True
        if not noted.ips:
            return False
        written = self._written.get(token_id)
        if written is None or now - written[0] > ADDRESS_REFRESH_SECONDS:
            return True
        return any(address not in written[1] for address in noted.ips)

    def heard(self, seen: Seen) -> None:
        """Take in another process's note (see `seen_notes`)."""
        try:
            for item in seen.note.split(","):
                token_id, noted = _parse_item(item)
                self._remember(token_id, noted)
        except (ValueError, IndexError):
            log.warning("ignored a malformed seen note")

    def _remember(self, token_id: str, noted: Noted) -> None:
        known = self._known.get(token_id)
        if known is None:
            known = self._known[token_id] = Noted(noted.at)
        known.merge(noted)
        self._known.move_to_end(token_id)
        while len(self._known) > REMEMBERED:
            self._known.popitem(last=False)


def latest_access(stored: datetime | None, noted: Iterable[Noted]) -> datetime | None:
    latest = stored if stored is None else as_utc(stored)
    for each in noted:
        if latest is None or latest < each.at:
            latest = each.at
    return latest


def latest_previous_access(stored: datetime | None, window: datetime | None,
                           noted: Iterable[Noted]) -> datetime | None:
    latest = stored if stored is None else as_utc(stored)
    if window is None:
        return latest
    window = as_utc(window)
    for each in noted:
        if each.previous is not None and each.previous[0] == window \
                and (latest is None or latest < each.previous[1]):
            latest = each.previous[1]
    return latest


def _deadlock(exc: BaseException) -> bool:
    """PostgreSQL broke a deadlock by failing this flush (SQLSTATE 40P01): expected now and
    then, since a flush locks rows in id order and another statement may lock the same rows
    in its scan order (a whole-table write); the next round writes the same values."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "40P01"


def merged_addresses(stored: str | None,
                     noted: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """The newest ADDRESSES distinct addresses of `stored` (JSON text of the wire shape) and
    `noted` (address -> rendered time), newest first."""
    latest = dict(_stored_addresses(stored)) if stored else {}
    for ips in noted:
        for address, at in ips.items():
            if latest.get(address, "") < at:  # rendered timestamps sort as time does
                latest[address] = at
    newest = sorted(latest.items(), key=lambda pair: pair[1], reverse=True)[:ADDRESSES]
    return [{"ip": address, "at": at} for address, at in newest]


@lru_cache(maxsize=16_384)
def _stored_addresses(stored: str) -> tuple[tuple[str, str], ...]:
    """A token's stored addresses, (address, rendered time) pairs. Kept: every response
    showing the token merges them again, and they change once per flush at most."""
    try:
        pairs = tuple((str(item["ip"]), str(item["at"])) for item in json.loads(stored))
    except (ValueError, TypeError, KeyError):
        pairs = ((" ", ""),)  # refused below
    if all(_ADDRESS.fullmatch(ip) and _STAMP.fullmatch(at) for ip, at in pairs):
        return pairs
    # Responses splice these in without escaping (tokens/views.spliced): only an address
    # and a timestamp of the expected form may pass. A row edited by hand shows none.
    log.warning("ignored stored lastAccessIps that are not of the expected shape")
    return ()


# What an address and a rendered time may hold (kit/addresses.py, kit/timeutil.stamp).
_ADDRESS = re.compile(r"[0-9a-f:.]{2,45}")
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _millis(at: datetime) -> int:
    return (at - EPOCH) // MILLISECOND


def _at(millis: str) -> datetime:
    return EPOCH + int(millis) * MILLISECOND


def _item(token_id: str, noted: Noted) -> str:
    """`id=millis[#window!millis][@address!millis...]` (no address holds `@`, `!` or `,`)."""
    item = f"{token_id}={_millis(noted.at)}"
    if noted.previous is not None:
        item += f"#{_millis(noted.previous[0])}!{_millis(noted.previous[1])}"
    for address, at in noted.ips.items():
        item += f"@{address}!{_millis(datetime.fromisoformat(at))}"
    return item


def _parse_item(item: str) -> tuple[str, Noted]:
    token_id, _, rest = item.partition("=")
    first, *addresses = rest.split("@")
    at, _, previous = first.partition("#")
    noted = Noted(_at(at))
    if previous:
        window, _, used = previous.partition("!")
        noted.previous = (_at(window), _at(used))
    for part in addresses:
        address, _, used = part.partition("!")
        if not _ADDRESS.fullmatch(address):
            raise ValueError("not an address")
        noted.address(address, stamp(_at(used)))
    return token_id, noted


def seen_notes(accesses: dict[str, Noted]) -> list[Seen]:
    """Accesses as notes of at most NOTE_SIZE characters each."""
    notes: list[Seen] = []
    items: list[str] = []
    size = 0
    for token_id, noted in accesses.items():
        item = _item(token_id, noted)
        if items and size + len(item) + 1 > NOTE_SIZE:
            notes.append(Seen(",".join(items)))
            items, size = [], 0
        items.append(item)
        size += len(item) + 1
    if items:
        notes.append(Seen(",".join(items)))
    return notes
