"""Rate limits: at most `limit` requests per `window` seconds for a key (a token), counted
across every process when Redis is configured.

The counter is GCRA (the generic cell rate algorithm, as in ATM networks and redis-cell): a
key earns one request every `window / limit` seconds and may save up to `limit` of them,
so a burst of `limit` requests passes at once and then one per interval. It keeps a single
number per key (the theoretical arrival time, TAT), whatever the limit; a sliding log would
keep one entry per request (up to a million per key here).

- With Redis (`TOKENHOUSE_REDIS_URL`): one round trip per request, a Lua script that reads
  and moves the TAT atomically with Redis's own clock, so every process counts on one clock
  and no two can both take the last request.
- Without: the same arithmetic in this process's memory. N processes then allow up to N
  times the limit (the README says so).
- Redis unreachable: requests pass (`open`, the default) or are refused with 503
  (`closed`); a warning is logged at most once a minute. After a failure Redis is not asked
  again for a second, so an outage costs no connect timeout per request.
"""

import heapq
import logging
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as LinkLost
from redis.exceptions import RedisError

from tokenhouse.kit.problems import ServiceUnavailable

log = logging.getLogger("tokenhouse.ratelimit")

MAX_LIMIT = 1_000_000
MAX_WINDOW = 86_400
Failure = Literal["open", "closed"]
# Redis is left alone this long after a failure; a warning is logged at most this often.
RETRY_SECONDS = 1.0
WARN_SECONDS = 60.0
# Keys the in-process counter keeps: past this, keys whose quota is whole again go first.
LOCAL_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Quota:
    """`limit` requests per `window` seconds."""

    limit: int
    window: int

    @classmethod
    def parse(cls, text: str) -> "Quota":
        """`600/60`: 600 requests per 60 seconds (TOKENHOUSE_DEFAULT_RATE_LIMIT)."""
        limit, slash, window = text.strip().partition("/")
        if not slash or not limit.strip().isdigit() or not window.strip().isdigit():
            raise ValueError(f"{text!r} is not <requests>/<seconds>, such as 600/60")
        quota = cls(int(limit), int(window))
        if not 1 <= quota.limit <= MAX_LIMIT or not 1 <= quota.window <= MAX_WINDOW:
            raise ValueError(f"{text!r}: requests must be 1..{MAX_LIMIT} and seconds "
                             f"1..{MAX_WINDOW}")
        return quota


    def within(self, ceiling: "Quota") -> bool:
        """No looser than `ceiling`: no bigger burst, no faster rate."""
        return (self.limit <= ceiling.limit
                and self.limit * ceiling.window <= ceiling.limit * self.window)


@dataclass(frozen=True, slots=True)
class Decision:
    """What a request does to its key's quota."""

    allowed: bool
    limit: int
    # Requests left now, and seconds until the whole quota is back; None: not known
    # (Redis unreachable and failing open).
    remaining: int | None
    reset: int | None
    # Seconds until one more request passes (0 when this one passed).
    retry_after: int


def token_key(token_id: str) -> str:
    """A token's counter: every secret of the token counts against one limit."""
    return "token:" + token_id


def headers(quota: Quota, decision: Decision) -> list[tuple[bytes, bytes]]:
    """The IETF draft's headers (draft-ietf-httpapi-ratelimit-headers): the policy, and what
    is left when it is known."""
    noted = [(b"ratelimit-policy", f'"default";q={quota.limit};w={quota.window}'.encode())]
    if decision.remaining is not None:
        noted.append((b"ratelimit", f'"default";r={decision.remaining};'
                                    f't={decision.reset}'.encode()))
    return noted


class Limiter(ABC):
    @abstractmethod
    async def hit(self, key: str, limit: int, window: int, *, consume: bool = True,
                  local_when_down: bool = False) -> Decision:
        """Count one request of `key` against `limit` per `window` seconds (`consume`:
        False only looks: would one more pass, and what is left). `local_when_down`: if
        the shared counter cannot be reached, count in this process rather than pass or
        refuse (for limits that must hold, and a service that must go on: leak reports)."""

    @abstractmethod
    async def close(self) -> None:
        """Release what it holds (at the app's shutdown)."""


def _decide(tat: float, now: float, limit: int, window: float,
            consume: bool) -> tuple[Decision, float]:
    """GCRA in seconds: the decision and the key's new TAT (the Lua script mirrors it)."""
    interval = window / limit
    tat = max(tat, now)
    # A microsecond of slack: `limit` intervals may add up to a hair over the window.
    allowed = tat + interval - window <= now + 1e-6
    if allowed and consume:
        tat += interval
    remaining = max(0, math.floor((now + window - tat) / interval + 1e-9))
    retry = 0 if allowed else max(1, math.ceil(tat + interval - window - now))
    return Decision(allowed, limit, remaining, math.ceil(tat - now), retry), tat


class LocalLimiter(Limiter):
    """Counts in this process's memory (no Redis configured, or Redis down for a limit that
    must hold).

    Keys are kept per namespace (the part before the first `:`: `token`, `leak`), each
    bounded on its own, so that keys anyone can make (leak reports, one per client
    address) never push a token's count out. Past the bound, the keys whose quota is
    nearest to whole go first (each then starts with a whole quota: leniency, never a
    refusal), and enough of them that the next clean-up is far off."""

    def __init__(self, max_keys: int = LOCAL_KEYS):
        self._spaces: dict[str, dict[str, float]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, limit: int, window: int, *, consume: bool = True,
                  local_when_down: bool = False) -> Decision:
        now = time.time()
        tats = self._spaces.setdefault(key.partition(":")[0], {})
        decision, tat = _decide(tats.get(key, now), now, limit, window, consume)
        if tat > now:
            tats[key] = tat
        else:
            tats.pop(key, None)  # its quota is whole: nothing to keep
        if len(tats) > self._max_keys:
            self._sweep(tats, now)
        return decision

    async def close(self) -> None:
        self._spaces.clear()

    def _sweep(self, tats: dict[str, float], now: float) -> None:
        for key in [key for key, tat in tats.items() if tat <= now]:
            del tats[key]
        keep = self._max_keys * 9 // 10
        if len(tats) > keep:
            for key in heapq.nsmallest(len(tats) - keep, tats, key=tats.__getitem__):
                del tats[key]


# KEYS[1]: the key. ARGV: limit, window (s), consume (1/0). Microseconds on Redis's clock.
# Returns {allowed, remaining, reset (s), retry after (s)}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000000
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allowed = tat + interval - window <= now + 1
if allowed and ARGV[3] == '1' then
  tat = tat + interval
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil((tat - now) / 1000))
end
local remaining = math.floor((now + window - tat) / interval + 1e-9)
if remaining < 0 then remaining = 0 end
local retry = 0
if not allowed then retry = math.max(1, math.ceil((tat + interval - window - now) / 1000000)) end
return {allowed and 1 or 0, remaining, math.ceil((tat - now) / 1000000), retry}
"""


class RedisLimiter(Limiter):
    """Counts in Redis, across every process that uses the same Redis."""

    def __init__(self, url: str, failure: Failure = "open", *, timeout: float = 0.25,
                 retry: float = RETRY_SECONDS, prefix: str = "tokenhouse:rate:"):
        # No retries of redis-py's own (`hit` decides what is tried again): a request
        # must not wait out a backoff while Redis is down.
        self._redis = Redis.from_url(url, socket_timeout=timeout,
                                     socket_connect_timeout=timeout,
                                     retry=Retry(NoBackoff(), 0))
        self._script = self._redis.register_script(_GCRA)
        self._failure = failure
        self._prefix = prefix
        self._retry = retry
        self._local = LocalLimiter()
        self._down_until = 0.0
        self._warned_at = -math.inf

    async def hit(self, key: str, limit: int, window: int, *, consume: bool = True,
                  local_when_down: bool = False) -> Decision:
        if time.monotonic() >= self._down_until:
            for attempt in (1, 2):
                try:
                    reply = await self._script(keys=[self._prefix + key],
                                               args=[limit, window, 1 if consume else 0])
                    allowed, remaining, reset, retry = (int(value) for value in reply)
                except LinkLost as error:
                    # A pooled connection that an earlier outage broke fails once when next
                    # used: once more, on a new connection (refused at once if Redis is
                    # still down). A timeout is not repeated: it would double the stall.
                    if attempt == 2:
                        self._failed(error)
                # A reply of another shape (something else listens there) is an outage
                # too, never a 500 on every limited request.
                except (RedisError, OSError, ValueError, TypeError) as error:
                    self._failed(error)
                    break
                else:
                    return Decision(bool(allowed), limit, remaining, reset, retry)
        if local_when_down:
            return await self._local.hit(key, limit, window, consume=consume)
        if self._failure == "closed":
            raise ServiceUnavailable("Rate limits cannot be checked at the moment; try again "
                                     "shortly.", headers={"Retry-After": "1"})
        return Decision(True, limit, None, None, 0)

    def _failed(self, error: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + self._retry
        if now - self._warned_at >= WARN_SECONDS:
            self._warned_at = now
            # The error's class only: its text may hold the URL, and with it a password.
            log.warning("Redis is unreachable for rate limits (%s); requests %s until it is "
                        "back", type(error).__name__,
                        "pass uncounted" if self._failure == "open" else "are refused (503)")

    async def close(self) -> None:
        await self._local.close()
        await self._redis.aclose()


def limiter_of(redis_url: str | None, failure: Failure) -> Limiter:
    """The limiter the settings ask for."""
    return RedisLimiter(redis_url, failure) if redis_url else LocalLimiter()
