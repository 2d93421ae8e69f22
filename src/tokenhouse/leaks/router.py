"""POST /public/v1/accounts/api-tokens/revoke-leaked: anyone reports secrets found in public."""

import asyncio
import time
from ipaddress import IPv6Network

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from tokenhouse.auth.dependencies import client_address
from tokenhouse.kit.db import Session
from tokenhouse.kit.problems import TooManyRequests, note_header
from tokenhouse.kit.ratelimit import headers
from tokenhouse.kit.routing import LeanRoute
from tokenhouse.kit.wire import body_doc, read_body, validate
from tokenhouse.leaks import service
from tokenhouse.leaks.schemas import LeakReceived, LeakReport
from tokenhouse.runtime import Resources, Runtime

router = APIRouter(prefix="/public/v1/accounts/api-tokens", tags=["API tokens"],
                   route_class=LeanRoute)

# Far below other bodies' limit (kit/wire.py): 100 secrets and a source fit in 40 KB, and
# this route is open to anyone.
MAX_REPORT_BYTES = 64 * 1024
# The answer leaves no sooner than this after the request came: the writes and the commit
# of a secret that matched are then hidden in the same time as a report of unknown ones
# (a few milliseconds against a tenth of a second), so the answer's timing does not tell
# whether a secret was real any more than its body does.
ANSWER_FLOOR = 0.1

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@router.post(
    "/revoke-leaked", status_code=202, response_model=LeakReceived,
    summary="Report leaked secrets: each one that works stops working at once",
    # No authentication: it is for scanners and for anyone who finds a secret.
    openapi_extra={**body_doc(LeakReport), "security": []},
    responses={429: {"description": "Too many reports from this address; see Retry-After.",
                     "content": PROBLEM}})
async def revoke_leaked(request: Request, session: Session, resources: Resources) -> Response:
    """Always 202 `{"received": n}` for a well-formed report, whatever its secrets were
    (valid, unknown, already revoked or garbage): the answer cannot be used to test one."""
    started = time.monotonic()
    # Counted before the body is read: a refused client costs no more than this.
    await _count(request, resources)
    body = await read_body(request, MAX_REPORT_BYTES)
    report = validate(LeakReport, body.json())
    await service.revoke_leaked(session=session, key=resources.hmac_key,
                                secrets=report.tokens, source=report.source)
    # Committed here rather than when the route returns (kit/db.unit_of_work), so that the
    # floor covers the commit as well.
    await session.commit()
    await asyncio.sleep(started + ANSWER_FLOOR - time.monotonic())
    return JSONResponse({"received": len(report.tokens)}, status_code=202)


async def _count(request: Request, resources: Runtime) -> None:
    """One report of the client's address against TOKENHOUSE_LEAK_REPORTS_PER_HOUR (in Redis
    when configured, so across processes): 429 past it."""
    # As authentication takes it: X-Forwarded-For only from trusted proxies, or anyone
    # could spread reports over addresses of their choosing.
    address = client_address(request, resources.proxies)
    quota = resources.leak_reports
    # Counted in this process while Redis is down, whatever the failure mode: reports must
    # go on (they stop leaked secrets), and their limit must hold.
    decision = await resources.limiter.hit(counter(address), quota.limit, quota.window,
                                           local_when_down=True)
    for name, value in headers(quota, decision):
        note_header(request.scope, name, value)
    if not decision.allowed:
        raise TooManyRequests(
            f"Too many leak reports from this address ({quota.limit} an hour); retry in "
            f"{decision.retry_after} s.", headers={"Retry-After": str(decision.retry_after)})


def counter(address: str | None) -> str:
    """The limiter's key of a client address (canonical, see kit/addresses.py). An IPv6
    client is counted by its /64: whoever holds one address of it holds them all (SLAAC,
    privacy addresses), and could otherwise take a fresh address, and a fresh count, per
    report. An unknown address (a malformed forwarded hop) shares one count with all others."""
    if address is None:
        return "leak:unknown"
    if ":" in address:
        return f"leak:{IPv6Network((address, 64), strict=False)}"
    return f"leak:{address}"
