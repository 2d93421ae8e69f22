"""What the API tests share: the collections' addresses and the assertions on answers."""

import re
from http import HTTPStatus
from typing import Any

import httpx

V1 = "/public/v1/accounts"
TOKENS = f"{V1}/api-tokens"
ACCOUNTS = f"{V1}/accounts"
MODULES = f"{V1}/modules"
TRACE_ID = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def problem(response: httpx.Response, status: int, *errors: str) -> dict[str, Any]:
    """Assert an RFC 7807 problem with this status (and these keys in `errors`); return its
    body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"] == HTTPStatus(status).phrase
    assert body["type"]
    assert TRACE_ID.match(body["traceId"]), body
    for key in errors:
        assert key in body.get("errors", {}), body
    return body
