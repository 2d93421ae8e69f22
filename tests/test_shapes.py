"""Each resource's shape is described three times: the wire model that documents it
(`TokenOut`, ...), the function that renders it (`render_token`, ...), and the query
language's field map (`RESOURCE`). They must agree field by field, at every level, with the
same kinds of values, so that the document, the answers and what a query may name never
drift apart."""

import types
import typing
from typing import Any, Union

import httpx
import pytest
from pydantic import BaseModel

from tests.factories import ALL_OF_TYPE, Factory
from tests.helpers import V1
from tokenhouse.accounts.repository import RESOURCE as ACCOUNTS
from tokenhouse.accounts.schemas import AccountOut
from tokenhouse.kit.rql import Collection, Obj, Resource, Scalar
from tokenhouse.modules.repository import RESOURCE as MODULES
from tokenhouse.modules.schemas import ModuleOut
from tokenhouse.tokens.repository import RESOURCE as TOKENS
from tokenhouse.tokens.schemas import TokenOut

# The kind of a query field -> the Python type of its documented value.
KINDS = {"string": str, "enum": str, "datetime": str, "number": int, "boolean": bool}
# Wire-only members: the `$meta` a response may carry.
WIRE_ONLY = {"$meta"}

Tree = dict[str, Any]  # name -> Tree, or a leaf (a type, or None when not described)


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X; `list[X]` -> X."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _unwrap(members[0]) if len(members) == 1 else annotation
    if origin is list:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


def model_tree(model: type[BaseModel]) -> Tree:
    tree: Tree = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in WIRE_ONLY:
            continue
        inner = _unwrap(field.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            tree[key] = model_tree(inner)
        elif typing.get_origin(inner) is dict or inner is dict:
            tree[key] = dict  # an open object: its members are checked against the others
        else:
            tree[key] = inner
    return tree


def resource_tree(node: Obj) -> Tree:
    tree: Tree = {}
    for name, field in node.fields.items():
        if isinstance(field, Obj):
            tree[name] = resource_tree(field)
        elif isinstance(field, Collection):
            tree[name] = resource_tree(field.element)
        else:
            assert isinstance(field, Scalar)
            # A field that queries cannot name is only a member of the shape: its kind is
            # nominal (a list, an open object).
            tree[name] = KINDS[field.kind] if field.filterable else Any
    return tree


def json_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: json_tree(item) for key, item in value.items() if key not in WIRE_ONLY}
    if isinstance(value, list):
        return json_tree(value[0]) if value and isinstance(value[0], dict) else list
    return type(value)


def differences(left: Tree, right: Any, path: str = "",
                absent: frozenset[str] = frozenset()) -> list[str]:
    """Where two trees disagree (an open object or a None value on either side is not
    compared below that point). Paths in `absent` may be missing on the left."""
    if not isinstance(left, dict) or not isinstance(right, dict):
        if left is dict or right is dict or left is type(None) or right is type(None):
            return []
        if left is list or right is list:
            return []
        if left is Any or right is Any or left == right:
            return []
        return [f"{path or '.'}: {left} vs {right}"]
    found = [f"{path}.{key}: only on the left" for key in left.keys() - right.keys()]
    found += [f"{path}.{key}: only on the right" for key in right.keys() - left.keys()
              if f"{path}.{key}" not in absent]
    for key in left.keys() & right.keys():
        found += differences(left[key], right[key], f"{path}.{key}", absent)
    return found


CASES = [pytest.param(TokenOut, TOKENS, "api-tokens", id="api-tokens"),
         pytest.param(AccountOut, ACCOUNTS, "accounts", id="accounts"),
         pytest.param(ModuleOut, MODULES, "modules", id="modules")]


@pytest.mark.parametrize(("model", "resource", "collection"), CASES)
async def test_model_resource_and_rendering_agree(model: type[BaseModel], resource: Resource,
                                                  collection: str, client: httpx.AsyncClient,
                                                  factory: Factory) -> None:
    documented = model_tree(model)
    queried = resource_tree(resource.root)
    assert differences(documented, queried) == []

    admin = await factory.admin()
    account = await client.post(f"{V1}/accounts", headers=admin.headers, json={
        "name": "Shapes", "type": "Client", "description": "d", "externalId": "e",
        "address": {"addressLine1": "1 Main St", "city": "Town", "country": "US"},
        "externalIds": {"pyraTenantId": "6d1c2a5e-55a4-4f0a-9d40-7c3a1ef7d0a1"}})
    assert account.status_code == 201, account.text
    token = await factory.token(account.json()["id"], ALL_OF_TYPE)
    ids = {"api-tokens": token.id, "accounts": account.json()["id"], "modules": "MOD-1732"}
    if collection != "modules":  # changed once, so that audit.updated is there too
        changed = await client.put(f"{V1}/{collection}/{ids[collection]}",
                                   headers=admin.headers, json={"description": "changed"})
        assert changed.status_code == 200, changed.text
    # Every field, audit included, as one object reads.
    body = (await client.get(f"{V1}/{collection}/{ids[collection]}?select=+audit",
                             headers=admin.headers)).json()
    rendered = json_tree(body)
    # The secret is shown only in some answers (create, a token's read of itself).
    documented.pop("token", None)
    queried.pop("token", None)
    # The catalog's entries are never changed through the API: no audit.updated.
    never = frozenset({".audit.updated"}) if collection == "modules" else frozenset()
    assert differences(rendered, documented, absent=never) == []
    assert differences(rendered, queried, absent=never) == []
