"""The OpenAPI document describes every endpoint, and real responses match it."""

from typing import Any

from tests.helpers import ACCOUNTS, TOKENS
from tokenhouse.accounts.router import ICON_SIGNATURES
from tokenhouse.accounts.schemas import AccountOut
from tokenhouse.kit.wire import ListOf, ProblemDocument
from tokenhouse.modules.schemas import ModuleOut
from tokenhouse.tokens.schemas import TokenOut

OPENAPI = "/public/v1/accounts/openapi.json"


async def test_every_operation_is_documented(client):
    document = (await client.get(OPENAPI)).json()
    paths = document["paths"]
    expected = {
        (TOKENS, "get"), (TOKENS, "post"), (f"{TOKENS}/{{token_id}}", "get"),
        (f"{TOKENS}/{{token_id}}", "put"), (f"{TOKENS}/{{token_id}}", "delete"),
        (f"{TOKENS}/{{token_id}}/enable", "post"), (f"{TOKENS}/{{token_id}}/disable", "post"),
        ("/public/v1/accounts/modules", "get"), ("/public/v1/accounts/modules/{module_id}", "get"),
        ("/public/v1/accounts/accounts", "get"), ("/public/v1/accounts/accounts", "post"),
        ("/public/v1/accounts/accounts/{account_id}", "get"),
        ("/public/v1/accounts/accounts/{account_id}", "put"),
        ("/public/v1/accounts/accounts/{account_id}/enable", "post"),
        ("/public/v1/accounts/accounts/{account_id}/disable", "post"),
        ("/public/v1/accounts/accounts/{account_id}/icon", "get"),
        ("/healthz", "get"), ("/readyz", "get"),
    }
    documented = {(path, method) for path, ops in paths.items() for method in ops}
    assert expected <= documented
    schemas = document["components"]["schemas"]
    for path, method in expected:
        operation = paths[path][method]
        assert "422" not in operation["responses"]
        assert "default" not in operation["responses"]
        if path.startswith("/public/v1"):
            assert operation["security"] == [{"bearer": []}]
    for name, response in document["components"]["responses"].items():
        problem = response["content"]["application/problem+json"]
        assert problem["schema"]["$ref"] == "#/components/schemas/Problem", name
    for path, method, model in ((TOKENS, "post", "TokenCreate"),
                                (f"{TOKENS}/{{token_id}}", "put", "TokenUpdate"),
                                ("/public/v1/accounts/accounts", "post", "AccountCreate")):
        body = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"] == f"#/components/schemas/{model}"
        assert model in schemas
    assert set(schemas["TokenCreate"]["required"]) == {"name", "account", "modules"}
    # Reads take `select` (only `id` is certain); writes answer the whole object.
    token_read = paths[f"{TOKENS}/{{token_id}}"]["get"]["responses"]["200"]
    assert token_read["content"]["application/json"]["schema"]["$ref"] == \
        "#/components/schemas/TokenOutSelected"
    assert schemas["TokenOutSelected"]["required"] == ["id"]
    assert schemas["ListOf_TokenOut_"]["properties"]["data"]["items"]["$ref"] == \
        "#/components/schemas/TokenOutSelected"
    assert {"name", "status", "account", "modules"} <= set(schemas["TokenOut"]["required"])
    assert "$meta" in schemas["ListOf_TokenOut_"]["properties"]
    for path in (TOKENS, "/public/v1/accounts/modules", "/public/v1/accounts/accounts"):
        names = [p["name"] for p in paths[path]["get"]["parameters"]]
        assert names == ["limit", "offset", "select", "order"]


def _problems(operation: dict[str, Any]) -> set[int]:
    return {int(status) for status, response in operation["responses"].items()
            if response.get("$ref", "").startswith("#/components/responses/")}


async def test_each_operation_names_the_problems_it_can_answer(client):
    """Every status is listed, with no `default` to catch the rest: schemathesis'
    status_code_conformance (tests/test_schemathesis.py) then fails on anything else."""
    paths = (await client.get(OPENAPI)).json()["paths"]
    every = {400, 414}  # the limits on every request's path and query (kit/limits.py)
    public = every | {401, 403, 503}
    assert _problems(paths["/healthz"]["get"]) == every
    assert _problems(paths["/readyz"]["get"]) == every | {503}
    assert _problems(paths[TOKENS]["get"]) == public
    assert _problems(paths[TOKENS]["post"]) == public | {413, 415}
    assert _problems(paths[f"{TOKENS}/{{token_id}}"]["get"]) == public | {404}
    for method in ("put", "delete"):
        extra = {413, 415} if method == "put" else set()
        assert _problems(paths[f"{TOKENS}/{{token_id}}"][method]) == public | {404, 409} | extra
    for action in ("enable", "disable"):
        assert _problems(paths[f"{TOKENS}/{{token_id}}/{action}"]["post"]) == \
            public | {404, 409, 413, 415}
    assert _problems(paths[f"{ACCOUNTS}/{{account_id}}/icon"]["get"]) == public | {404}


async def test_an_icon_is_documented_in_every_format_an_upload_may_have(client):
    """An uploaded GIF or WebP icon is served as such; the document named PNG and JPEG (and
    JSON) only."""
    paths = (await client.get(OPENAPI)).json()["paths"]
    content = paths[f"{ACCOUNTS}/{{account_id}}/icon"]["get"]["responses"]["200"]["content"]
    assert set(content) == set(ICON_SIGNATURES)


async def test_real_responses_match_the_documented_models(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id, ("Access Management", "Billing"))
    await client.put(f"{TOKENS}/{target.id}", json={"name": "x"}, headers=admin.headers)
    await client.get(TOKENS, headers=target.headers)
    # Extra keys are forbidden by the models: an undocumented field fails here.
    TokenOut.model_validate((await client.get(f"{TOKENS}/{target.id}",
                                              headers=admin.headers)).json())
    TokenOut.model_validate((await client.get(f"{TOKENS}/{target.id}",
                                              headers=target.headers)).json())
    ListOf[TokenOut].model_validate((await client.get(TOKENS, headers=admin.headers)).json())
    ListOf[ModuleOut].model_validate((await client.get("/public/v1/accounts/modules",
                                                       headers=admin.headers)).json())
    modules = await factory.modules()
    ModuleOut.model_validate((await client.get(
        f"/public/v1/accounts/modules/{modules['Billing']}", headers=admin.headers)).json())
    ListOf[AccountOut].model_validate((await client.get("/public/v1/accounts/accounts",
                                                        headers=admin.headers)).json())
    AccountOut.model_validate((await client.get(
        f"/public/v1/accounts/accounts/{admin.account_id}", headers=admin.headers)).json())
    ProblemDocument.model_validate((await client.post(TOKENS, json={},
                                                      headers=admin.headers)).json())
    ProblemDocument.model_validate((await client.get(TOKENS)).json())


# Properties of the representation that the server sets; a client may send them back (a PUT of
# what it read) and they are ignored. `revision` is read-only on create; on a PUT it is the
# revision the client read (optimistic locking), which changes nothing either.
TOKEN_READ_ONLY = {"id", "href", "status", "statusReason", "audit", "$meta", "token",
                   "lastAccessAt", "lastAccessIps", "previousSecret"}
READ_ONLY = {
    "TokenCreate": TOKEN_READ_ONLY | {"revision"},
    "TokenUpdate": TOKEN_READ_ONLY,
    "AccountCreate": {"id", "href", "status", "audit", "$meta", "icon", "groups", "revision"},
    "AccountUpdate": {"id", "href", "status", "audit", "$meta", "icon", "groups"},
    "TokenOut": TOKEN_READ_ONLY | {"revision"},
    "AccountOut": {"id", "href", "status", "audit", "$meta", "icon", "groups", "revision"},
    "ModuleOut": {"id", "href", "audit", "$meta", "revision"},
}


def _read_only(schema: dict[str, Any]) -> set[str]:
    return {name for name, prop in schema["properties"].items() if prop.get("readOnly")}


async def test_read_only_fields_are_marked(client):
    schemas = (await client.get(OPENAPI)).json()["components"]["schemas"]
    for name, expected in READ_ONLY.items():
        assert _read_only(schemas[name]) == expected, name


def _sent_back(schema: str, **changes: Any) -> dict[str, Any]:
    """What a client might send: every read-only field of `schema`, each with a value other
    than the server's, plus `changes`."""
    other = {"id": "TKN-0000-0000" if schema.startswith("Token") else "ACC-0000-0000",
             "href": "/public/v1/accounts/elsewhere", "status": "Disabled",
             "statusReason": "Leaked",
             "audit": {"created": {"at": "2000-01-01T00:00:00.000Z", "by": {"id": "X"}}},
             "$meta": {"omitted": []}, "token": "idt:TKN-0000-0000:" + "x" * 43,
             "lastAccessAt": "2000-01-01T00:00:00.000Z", "icon": "/elsewhere.png",
             "lastAccessIps": [{"ip": "192.0.2.1", "at": "2000-01-01T00:00:00.000Z"}],
             "previousSecret": {"expiresAt": "2000-01-01T00:00:00.000Z", "lastAccessAt": None},
             "groups": [{"id": "UGR-0000-0000"}]}
    return {**{name: other[name] for name in READ_ONLY[schema] - {"revision"}}, **changes}


async def test_read_only_fields_sent_back_change_nothing(client, factory):
    admin = await factory.admin()
    target = await factory.tenant("Client")
    modules = await factory.modules()
    path = f"{TOKENS}/{target.id}"
    read = (await client.get(f"{path}?select=+audit", headers=admin.headers)).json()
    changed = await client.put(path, json=_sent_back("TokenUpdate", name="renamed"),
                               headers=admin.headers)
    assert changed.status_code == 200, changed.text
    after = (await client.get(path, headers=admin.headers)).json()
    assert after["name"] == "renamed"
    for name in ("id", "href", "status", "statusReason", "lastAccessAt", "previousSecret"):
        assert after[name] == read[name], name
    assert after["audit"]["created"] == read["audit"]["created"]
    assert "token" not in changed.json()
    assert (await client.get(TOKENS, headers=target.headers)).status_code == 200

    created = await client.post(TOKENS, headers=admin.headers, json={
        **_sent_back("TokenCreate", revision=99), "name": "new",
        "account": {"id": target.account_id}, "modules": [{"id": modules["Access Management"]}]})
    assert created.status_code == 201, created.text
    new = created.json()
    assert (new["status"], new["statusReason"], new["revision"]) == ("Active", None, 1)
    assert new["id"] != read["id"] and new["href"] == f"{TOKENS}/{new['id']}"
    assert new["token"].startswith(f"idt:{new['id']}:")
    assert new["lastAccessAt"] is None
    assert new["audit"]["created"]["by"]["id"] == admin.id

    account_path = f"{ACCOUNTS}/{target.account_id}"
    account = (await client.get(account_path, headers=admin.headers)).json()
    changed = await client.put(account_path, json=_sent_back("AccountUpdate", name="Renamed"),
                               headers=admin.headers)
    assert changed.status_code == 200, changed.text
    after = (await client.get(account_path, headers=admin.headers)).json()
    assert after["name"] == "Renamed"
    for name in ("id", "href", "status", "icon", "groups"):
        assert after[name] == account[name], name
    assert after["audit"]["created"] == account["audit"]["created"]

    created = await client.post(ACCOUNTS, headers=admin.headers, json={
        **_sent_back("AccountCreate", revision=99), "name": "Fresh", "type": "Vendor"})
    assert created.status_code == 201, created.text
    fresh = created.json()
    assert (fresh["status"], fresh["revision"], fresh["icon"]) == ("Active", 1, None)
    assert fresh["id"] != account["id"] and len(fresh["groups"]) == len(account["groups"])
