"""`/healthz` answers without any I/O; `/readyz` checks that the database answers."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from tokenhouse.kit.problems import ServiceUnavailable

router = APIRouter(tags=["Health"])

@router.get("/healthz", summary="Liveness (no I/O)")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness (the database answers)")
async def readyz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable(
            f"The database cannot be reached ({type(exc).__name__}).") from None
    return JSONResponse({"status": "ok", "database": "ok"})
