"""Every error is an RFC 7807 problem with a traceId, and no stack trace leaks."""

import httpx
from fastapi import FastAPI

from tests.helpers import TRACE_ID, problem
from tokenhouse.kit import problems


async def test_unknown_path_and_wrong_method(client):
    assert "/nowhere" in problem(await client.get("/nowhere"), 404)["detail"]
    problem(await client.get("/public/v1/accounts/api-tokens/TKN-1/extra"), 404)
    problem(await client.patch("/public/v1/accounts/api-tokens"), 405)
    problem(await client.delete("/healthz"), 405)


async def test_trace_id_is_also_a_response_header(client):
    response = await client.get("/nowhere")
    assert response.headers["traceparent"] == response.json()["traceId"]
    assert TRACE_ID.match((await client.get("/healthz")).headers["traceparent"])


async def test_unexpected_errors_are_500_problems_without_internals(caplog):
    """The same installation the real app uses, on an app with a route that fails."""
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("internal detail: password=hunter2")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/boom")
    body = problem(response, 500)
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert body["traceId"] in caplog.text  # the log line can be matched to the report
    assert response.headers["traceparent"] == body["traceId"]


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
