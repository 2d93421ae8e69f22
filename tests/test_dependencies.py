"""Every dependency of every route is a coroutine: FastAPI runs a plain `def` dependency in a
worker thread, on every request (once measured: a read's CPU doubled)."""

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts


def dependencies(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from dependencies(sub)


def test_no_route_depends_on_a_plain_function(app: FastAPI) -> None:
    plain = set()
    routes = 0
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.route, APIRoute):
            continue
        routes += 1
        for call in dependencies(context.route.dependant):
            if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)):
                plain.add(f"{context.path}: {getattr(call, '__qualname__', call)}")
    assert routes > 10
    assert plain == set()
