"""The route class of every router: a route's dependencies resolved by a plan made once.

FastAPI resolves a route's dependencies anew on each request: `solve_dependencies` walks
the tree, classifies each callable, builds cache keys and validates every parameter. On the
hot path (GET of one token, its credential and view in memory) that machinery took about a
quarter of the worker's CPU, more than authenticating and answering together. The routes of
this service declare little: the `Request`, `str` path parameters, and async dependencies
(functions, or generators such as the unit of work) taking those. `LeanRoute` turns that
declaration into a plan when the route is built, and runs the plan per request: each
dependency called once, in order, with its arguments picked by position.

The signatures stay what FastAPI documents (OpenAPI is built from them as before), and
permissions stay declared in them (`actor: TokensManager`). A route that declares anything
the plan does not resolve (a query, header, cookie or body parameter, a sync dependency,
security scopes, `use_cache=False`, a generator without `scope="function"`) fails when the
app is built: no route quietly falls back to other rules. `app.dependency_overrides` are not
applied: a request made while any is set is an error (500), never served by the real
dependency in the override's place.

Not kept from FastAPI: its shield of a generator dependency's exit against an anyio cancel
scope (a unit of work's commit under a cancelled scope). Nothing here cancels requests that
way; uvicorn cancels a request's task natively, which FastAPI does not shield either.
"""

import inspect
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, _effective_route_context_var

# Where an argument's value comes from.
_REQUEST, _PATH, _DEPENDENCY = range(3)

Arguments = tuple[tuple[str, int, Any], ...]


class RouteDeclarationError(TypeError):
    """A route declares what `LeanRoute` does not resolve."""


class _Plan:
    """The dependencies of one route in the order they run (each before those that take it),
    every call made once per request as FastAPI does by default (`use_cache`)."""

    def __init__(self, dependant: Dependant, where: str):
        self._where = where
        self._slots: dict[Callable[..., Any], int] = {}
        # (call, arguments, is a generator) for each dependency, in order.
        self.steps: list[tuple[Callable[..., Any], Arguments, bool]] = []
        self.endpoint = self._arguments(dependant)
        self.needs_exit = any(generator for _, _, generator in self.steps)

    def _arguments(self, dependant: Dependant) -> Arguments:
        unsupported = [kind for kind, found in (
            ("query", dependant.query_params), ("header", dependant.header_params),
            ("cookie", dependant.cookie_params), ("body", dependant.body_params),
            ("websocket", dependant.websocket_param_name),
            ("HTTP connection", dependant.http_connection_param_name),
            ("response", dependant.response_param_name),
            ("background tasks", dependant.background_tasks_param_name),
            ("security scopes", dependant.security_scopes_param_name),
            ("OAuth scopes", dependant.own_oauth_scopes)) if found]
        if unsupported:
            self._refuse(dependant, f"declares {', '.join(unsupported)} parameters")
        arguments: list[tuple[str, int, Any]] = []
        if dependant.request_param_name:
            arguments.append((dependant.request_param_name, _REQUEST, None))
        for field in dependant.path_params:
            if field.field_info.annotation is not str or field.field_info.metadata:
                # Anything but a plain str (another type, or constraints such as max_length
                # or pattern) would need FastAPI's validation (and its 422).
                self._refuse(dependant, f"types path parameter {field.name!r} other than str, "
                             "or constrains it")
            arguments.append((field.name, _PATH, field.alias))
        for sub in dependant.dependencies:
            if sub.name is None:  # `dependencies=[...]` of a route: run, value unused
                self._slot(sub)
            else:
                arguments.append((sub.name, _DEPENDENCY, self._slot(sub)))
        return tuple(arguments)

    def _slot(self, dependant: Dependant) -> int:
        call = dependant.call
        assert call is not None
        # Checked wherever the call is declared, not only where it is first met: a second
        # `Depends(call, use_cache=False)` would otherwise share the first value.
        if not dependant.use_cache:
            self._refuse(dependant, "asks for use_cache=False")
        if dependant.concurrency is not None:
            self._refuse(dependant, "asks for max_concurrency")
        if call in self._slots:
            return self._slots[call]
        generator = inspect.isasyncgenfunction(call)
        if generator and dependant.scope != "function":
            # Closed after the response is sent (FastAPI's default scope) would let a unit of
            # work commit after the client was told it succeeded.
            self._refuse(dependant, "is a generator without scope='function'")
        if not generator and not inspect.iscoroutinefunction(call):
            self._refuse(dependant, "is not an async function or async generator")
        arguments = self._arguments(dependant)
        self._slots[call] = len(self.steps)
        self.steps.append((asynccontextmanager(call) if generator else call, arguments,
                           generator))
        return self._slots[call]

    def _refuse(self, dependant: Dependant, why: str) -> None:
        name = getattr(dependant.call, "__qualname__", repr(dependant.call))
        raise RouteDeclarationError(f"{self._where}: {name} {why}; LeanRoute resolves the "
                                    "Request, str path parameters and async dependencies")


def _values(arguments: Arguments, request: Request, solved: list[Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, source, key in arguments:
        if source == _DEPENDENCY:
            values[name] = solved[key]
        elif source == _PATH:
            values[name] = request.path_params[key]
        else:
            values[name] = request
    return values


class LeanRoute(APIRoute):
    """An APIRoute whose handler runs a plan of its dependencies (see the module's text).
    What it keeps of FastAPI's: matching, the body size limit, the exception handlers, the
    OpenAPI document. The endpoint must return a Response (every route here renders its own)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        # Included in a router or an app (FastAPI >= 0.165), a route is built again with the
        # inclusion's prefix and dependencies (`include_router(..., dependencies=...)`):
        # plan from that dependant, as APIRoute does, or those dependencies never run.
        context = _effective_route_context_var.get()
        route: Any = context if context is not None and context.original_route is self \
            else self
        where = f"{sorted(self.methods or ())} {route.path}"
        plan = _Plan(route.dependant, where)
        endpoint = route.dependant.call
        assert endpoint is not None
        if not inspect.iscoroutinefunction(endpoint):
            raise RouteDeclarationError(f"{where}: the endpoint is not an async function; "
                                        "LeanRoute awaits it")
        overrides = getattr(route.dependency_overrides_provider, "dependency_overrides", None)
        steps, arguments = plan.steps, plan.endpoint

        async def solve(request: Request, stack: AsyncExitStack | None) -> Response:
            if overrides:  # FastAPI's dependency_overrides: not resolved by the plan
                raise RouteDeclarationError(f"{where}: dependency_overrides are set; "
                                            "LeanRoute does not apply them")
            solved: list[Any] = []
            for call, needs, generator in steps:
                if generator:
                    assert stack is not None
                    solved.append(await stack.enter_async_context(
                        call(**_values(needs, request, solved))))
                else:
                    solved.append(await call(**_values(needs, request, solved)))
            response = await endpoint(**_values(arguments, request, solved))
            if not isinstance(response, Response):
                raise TypeError(f"{where} returned {type(response).__name__}, not a Response")
            return response

        if not plan.needs_exit:
            async def direct(request: Request) -> Response:
                return await solve(request, None)

            return direct

        async def handler(request: Request) -> Response:
            # Generators (the unit of work) end when the endpoint returns or raises, before
            # the response is sent: a commit that fails is an error answer, never a success.
            async with AsyncExitStack() as stack:
                return await solve(request, stack)

        return handler
