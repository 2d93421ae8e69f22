"""The time rules of a token, in one place for the service, authentication and the views.

- Expiry: an Active token whose `expires_at` has passed is Expired. The status is computed,
  never stored (no job has to run for a token to stop working), here in Python and in SQL
  by `status_expression` (lists and filters).
- The grace window: the secret a rotation replaced keeps working until
  `previous_expires_at` (never past the token's own expiry), unless revoked earlier.

"Now" is always the service's clock (kit/timeutil.utcnow), never the database's: the rules
then agree everywhere, and tests move one clock.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, DateTime, and_, bindparam, case, or_

from tokenhouse.kit.ratelimit import Quota
from tokenhouse.kit.timeutil import as_utc
from tokenhouse.tokens.models import ApiToken, TokenStatus

# The longest grace window a rotation may give the secret it replaces: a week.
MAX_GRACE_SECONDS = 7 * 24 * 3600
# The name of the clock's value in the statements that compute the status.
NOW = "now"


@dataclass(frozen=True, slots=True)
class Policy:
    """What the operator configured (kit/settings.py): the longest lifetime of a token, the
    rate limit of a token created without one, and the loosest one a tenant may give."""

    max_lifetime: timedelta | None = None
    default_rate_limit: Quota | None = None
    max_rate_limit: Quota | None = None

    @classmethod
    def of(cls, max_lifetime_days: int | None, default_rate_limit: str | None = None,
           max_rate_limit: str | None = None) -> "Policy":
        """From the settings TOKENHOUSE_MAX_TOKEN_LIFETIME_DAYS, TOKENHOUSE_DEFAULT_RATE_LIMIT
        and TOKENHOUSE_MAX_RATE_LIMIT (ValueError naming the setting that is wrong)."""
        quotas = []
        for name, text in (("TOKENHOUSE_DEFAULT_RATE_LIMIT", default_rate_limit),
                           ("TOKENHOUSE_MAX_RATE_LIMIT", max_rate_limit)):
            try:
                quotas.append(Quota.parse(text) if text else None)
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
        default, ceiling = quotas
        if default is not None and ceiling is not None and not default.within(ceiling):
            raise ValueError("TOKENHOUSE_DEFAULT_RATE_LIMIT is looser than "
                             "TOKENHOUSE_MAX_RATE_LIMIT")
        return cls(None if max_lifetime_days is None else timedelta(days=max_lifetime_days),
                   default, ceiling)

    def latest_expiry(self, now: datetime) -> datetime | None:
        """The latest expiry a token made or changed now may have (also the default of a
        create without one); None: no limit."""
        return now + self.max_lifetime if self.max_lifetime is not None else None


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and as_utc(expires_at) <= now


def status_at(status: str, expires_at: datetime | None, now: datetime) -> str:
    """The status shown: Expired for an Active token past its expiry."""
    if status == TokenStatus.ACTIVE and is_expired(expires_at, now):
        return TokenStatus.EXPIRED
    return status


def grace_end(token: ApiToken) -> datetime | None:
    """The end of the grace window as stored, or None when there is no previous secret.
    (`previous_expires_at` is set exactly while `previous_secret_hash` is: every change of
    one changes the other; the hash itself is never read back into memory.)"""
    return token.previous_expires_at


def end_grace(token: ApiToken) -> None:
    """The replaced secret stops working: its hash and its window go together."""
    token.previous_secret_hash = None
    token.previous_expires_at = None
    token.previous_last_access_at = None
    token.retire_previous_on_first_use = False


def previous_until(end: datetime | None, expires_at: datetime | None,
                   now: datetime) -> datetime | None:
    """When the secret replaced by the last rotation stops working (`end`: its `grace_end`;
    never past the token's own expiry), or None when it does not work (any more)."""
    if end is None:
        return None
    until = as_utc(end)
    if expires_at is not None:
        until = min(until, as_utc(expires_at))
    return until if until > now else None


# The clock's value in a statement (see `tokens/repository.list_visible`).
_NOW = bindparam(NOW, type_=DateTime(timezone=True), required=True)


def _expired() -> ColumnElement[bool]:
    return and_(ApiToken.status == TokenStatus.ACTIVE, ApiToken.expires_at.is_not(None),
                ApiToken.expires_at <= _NOW)


def status_expression() -> Any:
    """`status_at` in SQL, for sorting and comparing fields (run with the clock's value as
    the parameter NOW)."""
    return case((_expired(), TokenStatus.EXPIRED.value), else_=ApiToken.status)


def status_is(value: Any) -> ColumnElement[bool]:
    """`eq(status,value)` on the stored columns: `status = ...` stays a condition the
    tenant's list index serves (`eq(status,Active)` is the common filter)."""
    if value == TokenStatus.EXPIRED:
        return _expired()
    if value == TokenStatus.ACTIVE:
        return and_(ApiToken.status == TokenStatus.ACTIVE,
                    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > _NOW))
    stored: ColumnElement[bool] = ApiToken.status == str(value)
    return stored
