"""The ASGI application: routers, error rendering, and the process-wide resources."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tokenhouse import __version__
from tokenhouse.accounts.router import router as accounts_router
from tokenhouse.auth.cache import CredentialCache
from tokenhouse.auth.invalidation import CACHES, InvalidationListener
from tokenhouse.auth.last_access import LastAccessRecorder
from tokenhouse.health.router import router as health_router
from tokenhouse.kit import problems
from tokenhouse.kit.db import create_engine, session_factory
from tokenhouse.kit.limits import RequestLimits
from tokenhouse.kit.rql.folding import tables as folding_tables
from tokenhouse.kit.settings import Settings, get_settings
from tokenhouse.kit.wire import BODY_MODELS, ProblemDocument
from tokenhouse.modules.catalog import ModuleCatalog
from tokenhouse.modules.router import router as modules_router
from tokenhouse.portal.router import mount as mount_portal
from tokenhouse.portal.router import router as portal_router
from tokenhouse.tokens.router import router as tokens_router
from tokenhouse.tokens.views import TokenViews

OPENAPI_URL = "/public/v1/accounts/openapi.json"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Fails before serving anything when the key is missing (see Settings.hmac_key).
    hmac_key = settings.hmac_key()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        folding_tables()  # built once at start, not on the first ilike query
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.credentials = CredentialCache(settings.credential_cache_size)
        app.state.token_views = TokenViews(settings.token_view_cache_size)
        app.state.modules = ModuleCatalog()
        caches = [app.state.credentials, app.state.token_views, app.state.modules]
        # Sessions carry the caches, so that a commit drops what it invalidated at once.
        app.state.sessions = session_factory(engine, info={CACHES: caches})
        app.state.hmac_key = hmac_key
        app.state.last_access = LastAccessRecorder(app.state.sessions,
                                                   settings.last_access_interval)
        listener = InvalidationListener(engine, caches, on_seen=app.state.last_access.heard)
        app.state.invalidation = listener
        await listener.start()
        app.state.last_access.start()
        _tune_garbage_collection()
        try:
            yield
        finally:
            # Runs after in-flight requests finished: nothing recorded is lost on a clean stop.
            await app.state.last_access.stop()
            await listener.stop()
            await engine.dispose()

    app = FastAPI(title="tokenhouse", version=__version__, lifespan=lifespan,
                  openapi_url=OPENAPI_URL, docs_url="/public/v1/accounts/docs",
                  redoc_url=None,
                  # No trailing-slash redirects: they copied the Host header into Location,
                  # and no client of this API relies on them (a 404 problem instead).
                  redirect_slashes=False,
                  description="The API tokens service of the Marketplace Platform's "
                              "Accounts API.")
    app.add_middleware(RequestLimits)  # added first: runs inside ProblemMiddleware (trace id)
    problems.install(app)
    app.include_router(health_router)
    app.include_router(tokens_router)
    app.include_router(modules_router)
    app.include_router(accounts_router)
    app.include_router(portal_router)
    mount_portal(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _tune_garbage_collection() -> None:
    """Keep the cyclic garbage collector off the request path.

    Requests free what they make by reference counting; what the collector meets is mostly
    live: the caches (tens of thousands of entries) and the objects of requests in flight. A
    full collection walks all of it (measured: ~95 ms per worker holding 10,000 credentials
    and views), and with the default thresholds (700, 10, 10) the objects of in-flight
    requests were promoted fast enough to start one every second or so under load: p99 of a
    list 90-115 ms against 21 ms without. Collections are now rarer (a young generation of
    50,000), and what exists at start (modules, routes, mappers) is frozen out of them."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the schemas of bodies the routes read themselves, and the
    Bearer scheme every /public/v1 operation uses."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in sorted(BODY_MODELS, key=lambda m: m.__name__):
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}",
                                             by_alias=True)
        schemas.update(definition.pop("$defs", {}))
        schemas[model.__name__] = definition
    # Errors are problem documents, not FastAPI's 422 validation shape.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = ProblemDocument.model_json_schema(by_alias=True)
    problem = {"description": "An RFC 7807 problem (400, 401, 403, 404, 409, 413, 415, 5xx)",
               "content": {"application/problem+json": {
                   "schema": {"$ref": "#/components/schemas/Problem"}}}}
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                "description": "idt:TKN-xxxx-xxxx:..."}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            operation["responses"]["default"] = problem
            if path.startswith("/public/v1"):
                operation["security"] = [{"bearer": []}]
    app.openapi_schema = schema
    return schema
