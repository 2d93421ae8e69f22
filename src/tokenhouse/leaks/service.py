"""Leak reports: a reported secret stops working at once, in every process.

The report is not authenticated and its answer is the same whatever the secrets were
(leaks/router.py), so it cannot tell anyone whether a secret works. The work is the same as
far as it can be: every secret of a valid shape is hashed, and one locked read looks for all
of them, whether or not any matches; only the writes of a match are extra (the router's
answer floor covers them)."""

import logging
import re
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.audit import events
from tokenhouse.audit import service as audit
from tokenhouse.auth.actor import SYSTEM
from tokenhouse.kit import crypto
from tokenhouse.kit.timeutil import utcnow
from tokenhouse.leaks import repository
from tokenhouse.tokens.lifecycle import end_grace, grace_end, previous_until
from tokenhouse.tokens.models import ApiToken, StatusReason, TokenStatus
from tokenhouse.tokens.schemas import token_document, token_subject

log = logging.getLogger("tokenhouse.leaks")

SOURCE_LOGGED = 200
# Anything in a source that may be a secret (a URL may carry one): never logged.
_SECRET_LIKE = re.compile(r"idt(?::|%3A)\S*", re.IGNORECASE)
# A secret's random part however its prefix was written (`idt%253A`, `idt&#58;`, after a
# `#`...): 43 or more such characters in a row. A 40-character commit hash stays.
_RANDOM_LIKE = re.compile(r"[A-Za-z0-9_-]{43,}")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


async def revoke_leaked(*, session: AsyncSession, key: bytes, secrets: Iterable[str],
                        source: str | None) -> None:
    """Make every reported secret useless: a token's current secret disables the token
    (`statusReason` Leaked: enabled again only after a rotation, see tokens/service.py); a
    replaced secret still in its grace window stops alone. Secrets that are malformed,
    unknown, or already useless change nothing. A system change (`audit.updated.by` is
    null); its commit reaches every process's caches (kit/invalidation.py)."""
    named: dict[str, str] = {}  # hash -> the token id its secret names
    for secret in secrets:
        token_id = crypto.token_id_of(secret)  # shape and checksum: no hashing of garbage
        if token_id is not None:
            named[crypto.hash_secret(key, secret)] = token_id
    if not named:
        return
    tokens = await repository.reported_for_update(session, set(named.values()), list(named))
    now = utcnow()
    where = loggable(source)
    stopped: list[tuple[ApiToken, str]] = []
    for token in tokens:
        # A hash counts for the token its secret names only: hashes are not UNIQUE (a
        # damaged import could store one on another row, see migration 0007).
        if token.secret_hash is not None and named.get(token.secret_hash) == token.id \
                and _disable(token, where):
            stopped.append((token, "current"))
        if (token.previous_secret_hash is not None
                and named.get(token.previous_secret_hash) == token.id
                and previous_until(grace_end(token), token.expires_at, now) is not None):
            end_grace(token)
            token.stamp_updated(None)
            stopped.append((token, "previous"))
            log.warning("API token %s: its replaced secret was reported as leaked and stops "
                        "now (source: %s)", token.id, where)
    await session.flush()
    for token, which in stopped:
        # In the token's trail, as the system's change: the reporter is nobody we know.
        audit.record(session, actor=SYSTEM, event=events.TOKEN_LEAKED,
                     subject=token_subject(token),
                     documents={"apiToken": token_document(token, now),
                                "report": {"secret": which, "source": where}})


def _disable(token: ApiToken, where: str) -> bool:
    """Disable the token as Leaked; False when there was nothing more to stop."""
    if token.status == TokenStatus.DELETED or (
            token.status == TokenStatus.DISABLED and token.status_reason == StatusReason.LEAKED):
        return False  # a report repeated changes nothing
    token.status = TokenStatus.DISABLED
    token.status_reason = StatusReason.LEAKED
    token.stamp_updated(None)
    log.warning("API token %s disabled: its secret was reported as leaked (source: %s)",
                token.id, where)
    return True


def loggable(source: str | None) -> str:
    """The report's source as a log line may hold it: anything like a secret cut out, one
    line of printable ASCII (no forged log lines), at most SOURCE_LOGGED characters."""
    if not source:
        return "not given"
    text = _UNPRINTABLE.sub("?", _RANDOM_LIKE.sub(
        "[removed]", _SECRET_LIKE.sub("idt:[removed]", source)))
    return text if len(text) <= SOURCE_LOGGED else text[:SOURCE_LOGGED] + "..."
