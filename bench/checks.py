"""Requests outside the load: the set-up calls a client would make (the list scenario's
Client token) and, per scenario, one request whose answer is checked before the load, so
that a set-up mistake fails there with its answer rather than as a column of errors."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench import BenchError
from bench.scenarios import ACCESS_MANAGEMENT, INTROSPECT_PATH, LIST_QUERY, TOKENS_PATH, Scenario


def http(method: str, url: str, *, secret: str | None = None, body: Any = None,
         timeout: float = 30.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if secret:
        request.add_header("Authorization", f"Bearer {secret}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@dataclass(frozen=True)
class Credentials:
    """What the checks authenticate with: the admin token, the list scenario's Client token
    (None until made), a known secret, a read-mix secret, and a Client account id."""
    admin: str
    client: str | None
    known: str
    mix: str
    account: str


def make_client_token(base_url: str, admin_secret: str, account: str) -> str:
    """The list scenario's Client token, made through the API as a client would."""
    status, body = http("POST", f"{base_url}{TOKENS_PATH}", secret=admin_secret,
                        body={"name": "Bench client", "account": {"id": account},
                              "modules": [{"id": ACCESS_MANAGEMENT}]})
    if status != 201:
        raise BenchError(f"creating the Client token answered {status}: {body}")
    secret: str = body["token"]
    return secret


def introspect_check(base_url: str, credentials: Credentials) -> tuple[int, Any]:
    """The introspect scenario's request for a known (Active) secret must say it is active,
    and the same token id with a wrong secret must say it is not: the scenario's answers are
    all 200, so without this an endpoint answering {"active": false} to everything, or
    {"active": true}, would give a fast figure that means nothing."""
    url = f"{base_url}{INTROSPECT_PATH}"
    token_id = credentials.known.split(":")[1]
    answer = http("POST", url, secret=credentials.admin, body={"token": credentials.known})
    status, body = answer
    if status != 200:
        return answer
    # Errors show the answer, never the secret asked about.
    if not isinstance(body, dict) or body.get("active") is not True:
        raise BenchError(f"scenario introspect: a known Active token was answered "
                         f"{str(body)[:1000]}, not active")
    if body.get("jti", token_id) != token_id:  # RFC 7662's jti: the token's id
        raise BenchError(f"scenario introspect: the answer is about another token: "
                         f"{str(body)[:1000]}")
    wrong = f"idt:{token_id}:{secrets.token_urlsafe(32)}"
    status, body = http("POST", url, secret=credentials.admin, body={"token": wrong})
    if status != 200 or body != {"active": False}:
        raise BenchError(f"scenario introspect: a wrong secret of a known token was answered "
                         f"{status} {str(body)[:1000]}, not 200 {{\"active\": false}}")
    return answer


def check(scenario: Scenario, base_url: str, credentials: Credentials) -> None:
    """One request as the scenario sends them; its status, and what its answer must hold."""
    if scenario.name == "healthz":
        answer = http("GET", f"{base_url}/healthz")
    elif scenario.name in ("read", "read-cold", "read-mix"):
        secret = credentials.mix if scenario.name == "read-mix" else credentials.known
        token_id = secret.split(":")[1]
        answer = http("GET", f"{base_url}{TOKENS_PATH}/{token_id}", secret=secret)
        if answer[0] == 200 and answer[1].get("id") != token_id:
            raise BenchError(f"scenario {scenario.name}: read another token: "
                             f"{str(answer[1])[:1000]}")
    elif scenario.name == "introspect":
        answer = introspect_check(base_url, credentials)
    elif scenario.name == "list":
        answer = http("GET", f"{base_url}{TOKENS_PATH}?{LIST_QUERY}", secret=credentials.client)
        if answer[0] == 200 and (not answer[1]["data"] or any(
                item["status"] != "Active" for item in answer[1]["data"])):
            raise BenchError(f"scenario list: unexpected page {str(answer[1])[:1000]}")
    elif scenario.name == "create":
        answer = http("POST", f"{base_url}{TOKENS_PATH}", secret=credentials.admin,
                      body={"name": "Bench check", "account": {"id": credentials.account},
                            "modules": [{"id": ACCESS_MANAGEMENT}]})
    else:
        raise BenchError(f"no check for scenario {scenario.name}")
    status, body = answer
    if status != scenario.expect:
        raise BenchError(f"scenario {scenario.name}: the check request answered {status} "
                         f"(expected {scenario.expect}): {str(body)[:1000]}")
