"""LeanRoute (kit/routing.py): what a route declares is resolved as FastAPI would, by a plan
made once, and what the plan does not resolve is refused when the app is built."""

import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from tokenhouse.kit.routing import LeanRoute, RouteDeclarationError


def client(router: APIRouter) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://test")


async def test_each_dependency_runs_once_with_what_it_declares() -> None:
    calls: list[str] = []

    async def who(request: Request) -> str:
        calls.append("who")
        return request.headers.get("x-who", "nobody")

    Who = Annotated[str, Depends(who)]

    async def greeting(name: Who) -> str:
        calls.append("greeting")
        return f"hello {name}"

    async def audit() -> None:
        calls.append("audit")

    router = APIRouter(route_class=LeanRoute)

    @router.get("/things/{thing_id}/{part}", dependencies=[Depends(audit)])
    async def get_thing(thing_id: str, part: str, request: Request, name: Who,
                        words: Annotated[str, Depends(greeting)]) -> Response:
        return Response(f"{thing_id}|{part}|{name}|{words}|{request.method}")

    async with client(router) as http:
        response = await http.get("/things/T-1/x%20y", headers={"x-who": "ann"})
    assert response.status_code == 200
    assert response.text == "T-1|x y|ann|hello ann|GET"
    # `who` serves the route and `greeting` alike: called once, as FastAPI caches it.
    assert sorted(calls) == ["audit", "greeting", "who"]


async def test_a_generator_ends_before_the_response_is_sent() -> None:
    events: list[str] = []

    async def unit() -> AsyncIterator[list[str]]:
        events.append("begin")
        try:
            yield events
        except Exception as error:
            events.append(f"rollback after {type(error).__name__}")
            raise
        events.append("commit")
        if events.count("commit") == 2:  # the second request's commit fails
            raise RuntimeError("commit failed")

    Unit = Annotated[list[str], Depends(unit, scope="function")]
    router = APIRouter(route_class=LeanRoute)

    @router.post("/ok")
    async def ok(work: Unit) -> Response:
        work.append("work")
        return Response("done")

    @router.post("/fails")
    async def fails(work: Unit) -> Response:
        raise LookupError("no such thing")

    async with client(router) as http:
        assert (await http.post("/ok")).text == "done"
        assert events == ["begin", "work", "commit"]
        # A commit that fails is an error answer, never the success the endpoint made.
        assert (await http.post("/ok")).status_code == 500
        events.clear()
        assert (await http.post("/fails")).status_code == 500
        assert events == ["begin", "rollback after LookupError"]


async def test_an_endpoint_must_answer_with_a_response() -> None:
    router = APIRouter(route_class=LeanRoute)

    @router.get("/dict")
    async def as_dict() -> dict[str, str]:
        return {"shaped": "by FastAPI"}

    async with client(router) as http:
        assert (await http.get("/dict")).status_code == 500


def sync_dependency() -> str:
    return "threaded"


async def query_dependency(q: str) -> str:
    return q


async def lingering() -> AsyncIterator[None]:
    yield


@pytest.mark.parametrize(("declare", "why"), [
    (lambda r: r.get("/q")(_endpoint_with_query), "declares query parameters"),
    (lambda r: r.get("/s")(_endpoint(Depends(sync_dependency))), "is not an async function"),
    (lambda r: r.get("/d")(_endpoint(Depends(query_dependency))), "declares query parameters"),
    (lambda r: r.get("/g")(_endpoint(Depends(lingering))), "without scope='function'"),
    (lambda r: r.get("/n")(_endpoint(Depends(query_dependency, use_cache=False))),
     "use_cache=False"),
    (lambda r: r.get("/i/{number}")(_endpoint_with_int_path), "other than str"),
    (lambda r: r.get("/c/{thing}")(_endpoint_with_constrained_path), "constrains it"),
    # Refused wherever declared, not only where the call is first met.
    (lambda r: r.get("/t")(_endpoint_twice), "use_cache=False"),
    (lambda r: r.get("/p")(_plain_endpoint), "not an async function"),
])
def test_what_the_plan_cannot_resolve_is_refused_when_built(declare, why) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RouteDeclarationError, match=why):
        declare(APIRouter(route_class=LeanRoute))


async def _endpoint_with_query(q: str) -> Response:
    return Response(q)


async def _endpoint_with_int_path(number: int) -> Response:
    return Response(str(number))


async def _endpoint_with_constrained_path(
        thing: Annotated[str, Path(max_length=8, pattern=r"^T-\d+$")]) -> Response:
    return Response(thing)


async def lingering_value() -> str:
    return "value"


async def _endpoint_twice(first: Annotated[str, Depends(lingering_value)],
                          fresh: Annotated[str, Depends(lingering_value, use_cache=False)]
                          ) -> Response:
    return Response(first + fresh)


def _plain_endpoint() -> Response:
    return Response("ran on the event loop")


def _endpoint(dependency: object):  # type: ignore[no-untyped-def]
    async def endpoint(value: Annotated[str, dependency]) -> Response:
        return Response(value)
    return endpoint


def test_every_route_of_the_app_is_lean(app: FastAPI) -> None:
    """A router that forgot `route_class=LeanRoute` would resolve by FastAPI's machinery again
    (a read's CPU up by a third), and skip the refusals above."""
    routes = [context for context in iter_route_contexts(app.routes)
              if isinstance(context.route, APIRoute)]
    assert len(routes) > 30
    assert [context.path for context in routes if not isinstance(context.route, LeanRoute)] == []


async def deny() -> None:
    raise HTTPException(403, "operators only")


async def test_the_dependencies_of_an_inclusion_run() -> None:
    """`include_router(..., dependencies=...)` builds each route again with them: the plan is
    made from that route (an authorization added there must never be skipped)."""
    router = APIRouter(route_class=LeanRoute)

    @router.get("/secret")
    async def secret() -> Response:
        return Response("the secret")

    app = FastAPI()
    app.include_router(router, prefix="/admin", dependencies=[Depends(deny)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:
        response = await http.get("/admin/secret")
    assert response.status_code == 403


async def test_an_override_is_never_answered_by_the_real_dependency() -> None:
    async def who() -> str:
        return "real"

    async def stand_in() -> str:
        return "override"

    router = APIRouter(route_class=LeanRoute)

    @router.get("/who")
    async def endpoint(name: Annotated[str, Depends(who)]) -> Response:
        return Response(name)

    async with client(router) as http:
        http._transport.app.dependency_overrides[who] = stand_in  # type: ignore[attr-defined]
        response = await http.get("/who")
    assert response.status_code == 500 and "real" not in response.text


# What LeanRoute does with each declaration of FastAPI's Dependant. A release that adds a
# kind of declaration (0.165 added `scope` and `concurrency`) fails here until the plan is
# reviewed for it.
DECLARATIONS = {
    "path_params": "resolved (str, unconstrained)", "query_params": "refused",
    "header_params": "refused", "cookie_params": "refused", "body_params": "refused",
    "dependencies": "planned", "name": "the argument", "call": "called",
    "request_param_name": "resolved", "websocket_param_name": "refused",
    "http_connection_param_name": "refused", "response_param_name": "refused",
    "background_tasks_param_name": "refused", "security_scopes_param_name": "refused",
    "own_oauth_scopes": "refused", "parent_oauth_scopes": "only with own scopes: refused",
    "use_cache": "refused when False", "path": "unused",
    "scope": "generators: function only", "concurrency": "refused",
}


def test_every_declaration_fastapi_knows_is_handled() -> None:
    assert {field.name for field in dataclasses.fields(Dependant)} == set(DECLARATIONS)
