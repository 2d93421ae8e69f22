"""Assertions shared by the API tests."""

import re
from typing import Any

import httpx

TRACE_ID = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TOKENS = "/public/v1/accounts/api-tokens"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 7807 problem with this status; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["type"]
    assert TRACE_ID.match(body["traceId"]), body
    return body
