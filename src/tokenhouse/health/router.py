"""`/healthz` answers without any I/O; `/readyz` checks that the database answers."""

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from tokenhouse.kit.problems import RETRY_AFTER, ServiceUnavailable
from tokenhouse.kit.routing import LeanRoute
from tokenhouse.runtime import Resources

log = logging.getLogger("tokenhouse.health")
router = APIRouter(tags=["Health"], route_class=LeanRoute)

# A probe must answer in time even when the database hangs instead of refusing.
READY_TIMEOUT = 3.0


@router.get("/healthz", summary="Liveness (no I/O)")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness (the database answers)")
async def readyz(resources: Resources) -> JSONResponse:
    try:
        async with asyncio.timeout(READY_TIMEOUT), \
                resources.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        # The kind of failure to the log only: a driver's message may quote more than it
        # should, and the probe's caller needs no more than the status.
        log.warning("not ready: the database cannot be reached (%s)", type(exc).__name__)
        raise ServiceUnavailable("The database cannot be reached.",
                                 headers={"Retry-After": RETRY_AFTER}) from None
    return JSONResponse({"status": "ok", "database": "ok"})
