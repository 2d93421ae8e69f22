"""The ASGI application: routers, error rendering, and the process-wide resources."""

import copy
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.routing import Match, Mount

from tokenhouse import __version__
from tokenhouse.accounts.router import router as accounts_router
from tokenhouse.apidocs import router as apidocs_router
from tokenhouse.audit.router import router as audit_router
from tokenhouse.auth.cache import CredentialCache
from tokenhouse.auth.refusals import Refusals
from tokenhouse.health.router import router as health_router
from tokenhouse.kit import problems
from tokenhouse.kit.addresses import TrustedProxies
from tokenhouse.kit.db import create_engine, session_factory
from tokenhouse.kit.invalidation import InvalidationListener, local
from tokenhouse.kit.limits import RequestLimits
from tokenhouse.kit.metrics import RequestMetrics
from tokenhouse.kit.ratelimit import Quota, limiter_of
from tokenhouse.kit.rql.folding import tables as folding_tables
from tokenhouse.kit.settings import ConfigurationError, Settings, get_settings
from tokenhouse.kit.wire import BODY_MODELS, ProblemDocument
from tokenhouse.leaks.router import router as leaks_router
from tokenhouse.metrics.router import router as metrics_router
from tokenhouse.modules.catalog import ModuleCatalog
from tokenhouse.modules.router import router as modules_router
from tokenhouse.portal.router import mount as mount_portal
from tokenhouse.portal.router import router as portal_router
from tokenhouse.runtime import Runtime
from tokenhouse.tokens.expiry import ExpiryJob
from tokenhouse.tokens.last_access import LastAccessRecorder
from tokenhouse.tokens.lifecycle import Policy
from tokenhouse.tokens.router import router as tokens_router
from tokenhouse.tokens.views import TokenViews
from tokenhouse.webhooks.delivery import DeliveryWorker
from tokenhouse.webhooks.router import router as webhooks_router

log = logging.getLogger("tokenhouse.cache")

OPENAPI_URL = "/public/v1/accounts/openapi.json"
# The methods a 405's `Allow` header may name.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Fails before serving anything when the key is missing (see Settings.hmac_key), or a
    # trusted proxy is not an address or network.
    hmac_key = settings.hmac_key()
    proxies = TrustedProxies.parse(settings.trusted_proxies)
    try:
        policy = Policy.of(settings.max_token_lifetime_days, settings.default_rate_limit,
                           settings.max_rate_limit)
    except ValueError as error:
        raise ConfigurationError(f"{error}.") from None
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        folding_tables()  # built once at start, not on the first ilike query
        engine = create_engine(settings)
        credentials = CredentialCache(settings.credential_cache_size)
        token_views = TokenViews(settings.token_view_cache_size)
        modules = ModuleCatalog()
        info = local([credentials, token_views, modules])
        sessions = session_factory(engine, info=info)
        last_access = LastAccessRecorder(sessions, settings.last_access_interval)
        listener = InvalidationListener(engine, info, on_seen=last_access.heard)
        limiter = limiter_of(redis_url, settings.rate_limit_failure)
        refusals = Refusals(sessions)
        expiry = ExpiryJob(sessions, settings.job_interval)
        app.state.runtime = Runtime(engine=engine, sessions=sessions, hmac_key=hmac_key,
                                    credentials=credentials, token_views=token_views,
                                    modules=modules, last_access=last_access,
                                    invalidation=listener, proxies=proxies, policy=policy,
                                    limiter=limiter,
                                    leak_reports=Quota(settings.leak_reports_per_hour, 3600),
                                    refusals=refusals)
        await listener.start()
        last_access.start()
        # The audit webhooks' deliveries, from every process (webhooks/delivery.py).
        app.state.webhooks = webhooks = DeliveryWorker(
            sessions, hmac_key, allow_private=settings.webhook_allow_private,
            poll_seconds=settings.webhook_poll_seconds)
        webhooks.start()
        expiry.start()
        _tune_garbage_collection()
        try:
            yield
        finally:
            # Runs after in-flight requests finished: nothing recorded is lost on a clean stop.
            await webhooks.stop()
            await last_access.stop()
            await expiry.stop()
            await refusals.drain()
            await listener.stop()
            await limiter.close()
            await engine.dispose()
            # One line per process, read by `make bench` (read-mix's hit ratio).
            log.info("cache stats: credentials hits=%d misses=%d token_views hits=%d "
                     "misses=%d", credentials.hits, credentials.misses, token_views.hits,
                     token_views.misses)

    app = FastAPI(title="tokenhouse", version=__version__, lifespan=lifespan,
                  # Swagger UI is apidocs.py's: local files, a strict CSP (not FastAPI's
                  # page, which loads it from a CDN).
                  openapi_url=OPENAPI_URL, docs_url=None,
                  redoc_url=None,
                  # No trailing-slash redirects: they copied the Host header into Location,
                  # and no client of this API relies on them (a 404 problem instead).
                  redirect_slashes=False,
                  # The service's own observability is /metrics and a trace id per request.
                  # FastAPI's OpenTelemetry hooks asked the global providers on every request
                  # (~4% of a warm read's CPU) for spans nothing here exports.
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="The API tokens service of the Marketplace Platform's "
                              "Accounts API.")
    app.add_middleware(RequestLimits)  # added first: runs inside ProblemMiddleware (trace id)
    problems.install(app)
    app.add_exception_handler(405, _method_not_allowed)
    if settings.metrics:  # added last: outermost, it times the whole answer
        app.add_middleware(RequestMetrics)
    app.include_router(health_router)
    app.include_router(tokens_router)
    app.include_router(leaks_router)
    app.include_router(modules_router)
    app.include_router(accounts_router)
    app.include_router(audit_router)
    app.include_router(webhooks_router)
    app.include_router(portal_router)
    app.include_router(apidocs_router)
    if settings.metrics:  # after the API's routes: not one more match before theirs
        app.include_router(metrics_router)
    mount_portal(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 with every method of the path in `Allow`. Starlette names only the methods of the
    first route that matches the path, and FastAPI makes one route per method: a PATCH of
    /api-tokens/{id} was told `Allow: GET`, though PUT and DELETE are served there too."""
    routes = [route for route in request.app.routes if not isinstance(route, Mount)]
    allowed = [method for method in METHODS if any(
        route.matches({**request.scope, "method": method})[0] is Match.FULL
        for route in routes)]
    # A path no route serves with any method is a mounted app's (the portal's static files).
    headers = {"Allow": ", ".join(allowed)} if allowed else getattr(exc, "headers", None)
    return problems.problem_response(
        405, f"The method {request.method} is not allowed on {request.url.path}.",
        headers=headers)


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


# The problems an operation may answer, each with what it means here.
PROBLEMS = {
    400: "The query, the path or the body breaks a rule (`errors` names each part).",
    401: "No valid credential (`WWW-Authenticate: Bearer`).",
    403: "The token may not do this: it lacks the module, or its account is not the operator.",
    404: "No such object, or one that this token's account may not see.",
    409: "The object's status or revision does not allow the change.",
    413: "The body is larger than the limit.",
    414: "The query string or the path is longer than the limit.",
    415: "The body's media type is not one the operation reads.",
    503: "The database cannot be reached at the moment; try again shortly.",
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the schemas of bodies the routes read themselves, the Bearer
    scheme every /public/v1 operation uses, and the problems each operation may answer."""
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
    components["responses"] = {
        _problem_name(status): {"description": description, "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for status, description in PROBLEMS.items()}
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                "description": "idt:TKN-xxxx-xxxx:..."}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation["responses"]
            responses.pop("422", None)
            # Each status listed, no `default`: an answer the document does not name (a 500
            # above all) fails the conformance tests instead of passing as "documented".
            # `security: []`: a route for anyone (leaks/router.py), which never answers 401.
            public = operation.get("security") == []
            for status in _problem_statuses(path, method, public=public):
                responses[str(status)] = {
                    "$ref": f"#/components/responses/{_problem_name(status)}"}
            if path.startswith("/public/v1") and not public:
                operation["security"] = [{"bearer": []}]
            if method == "get":
                _selectable_response(operation, schemas)
    app.openapi_schema = schema
    return schema


def _selectable_response(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A read takes `select`, which may leave out any field but `id`, at any depth: its
    answer is documented with a copy of the object's schema ("...Selected") that requires
    `id` alone. Writes keep the full shapes, which they always answer."""
    content = operation["responses"].get("200", {}).get("content", {})
    body = content.get("application/json", {}).get("schema", {})
    name = body.get("$ref", "").rpartition("/")[2]
    if name.startswith("ListOf_"):  # lists alone use the envelope, which is whole
        items = schemas[name]["properties"]["data"]["items"]
        items["$ref"] = _REF + _selected(items["$ref"].rpartition("/")[2], schemas)
    elif name:
        body["$ref"] = _REF + _selected(name, schemas)


_REF = "#/components/schemas/"


def _selected(name: str, schemas: dict[str, Any]) -> str:
    """The name of the "...Selected" copy of schema `name` and of every schema it refers to."""
    selected = name + "Selected"
    if selected not in schemas:
        definition = schemas[selected] = copy.deepcopy(schemas[name])
        if "id" in definition.get("required", ()):
            definition["required"] = ["id"]
        else:
            definition.pop("required", None)
        definition["description"] = (f"{name}, shortened by `select`: every property but "
                                     "`id` may be left out.")
        _select_references(definition, schemas)
    return selected


def _select_references(node: Any, schemas: dict[str, Any]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            node["$ref"] = _REF + _selected(node["$ref"].rpartition("/")[2], schemas)
        for value in node.values():
            _select_references(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _select_references(value, schemas)


def _problem_name(status: int) -> str:
    return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")


def _problem_statuses(path: str, method: str, *, public: bool = False) -> list[int]:
    """The problems an operation can answer: every request is held to the limits on its path
    and query (400, 414, see kit/limits.py); the rest follows from what the operation does."""
    statuses = {400, 414}
    # Liveness and metrics do no I/O; everything else may meet a database outage.
    if path not in ("/healthz", "/metrics"):
        statuses.add(503)
    if path.startswith("/public/v1") and not public:
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
        if method != "get":
            statuses.add(409)
    if method in ("post", "put"):
        statuses |= {413, 415}
    return sorted(statuses)
