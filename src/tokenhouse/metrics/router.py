"""`GET /metrics` in Prometheus's text format, and the counting that runs with the app.

Unauthenticated, as Prometheus scrapes usually are: the series hold counts and times by
route template, outcome and cache, never a token id, a secret or an address. Operators who
do not want it reachable keep it off the public listener (a proxy) or turn it off with
TOKENHOUSE_METRICS=off (then it is a 404).
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from tokenhouse.kit import metrics
from tokenhouse.kit.routing import LeanRoute
from tokenhouse.kit.tasks import cancel
from tokenhouse.runtime import Runtime


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Inside the app's lifespan (app.py), which made the caches."""
    held: Runtime = app.state.runtime
    caches: dict[str, metrics.Counted] = {"credentials": held.credentials,
                                          "token_views": held.token_views,
                                          "modules": held.modules}
    metrics.watch_caches(caches)
    # One process: a scrape syncs what it shows. Several: each worker syncs its own counts
    # for the others to read.
    task = (asyncio.create_task(metrics.sync_forever(), name="metrics-sync")
            if metrics.multiprocess_directory() is not None else None)
    try:
        yield
    finally:
        await cancel(task)
        metrics.unwatch_caches(caches.values())
        metrics.process_stopping()


router = APIRouter(tags=["Metrics"], lifespan=lifespan, route_class=LeanRoute)


@router.get("/metrics", summary="Prometheus metrics (text format 0.0.4)",
            response_class=Response,
            responses={200: {"description": "Every series, summed over the worker processes.",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def scrape() -> Response:
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
