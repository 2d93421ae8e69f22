"""Token documents are encoded by orjson (tokens/views.encode_json): the bytes must be those
of the JSON every other answer is written with (kit/paging.encode_json, Starlette's settings)."""

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import TOKENS
from tokenhouse.kit import paging
from tokenhouse.tokens import views

# What a token's documents are made of (schemas.render_token): no floats. Text of any
# character Python's JSON accepts from a client (surrogates cannot reach a stored value).
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1)
           | st.text())
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                         | st.dictionaries(st.text(), inner, max_size=5), max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(DOCUMENTS)
def test_a_document_is_written_as_json_writes_it(document) -> None:  # type: ignore[no-untyped-def]
    assert views.encode_json(document) == paging.encode_json(document)


def test_the_characters_json_escapes_are_escaped_alike() -> None:
    every = "".join(chr(code) for code in range(0x80)) + "\u2028\u2029\u00e9\U0001f600"
    assert views.encode_json({every: [every]}) == paging.encode_json({every: [every]})


async def test_an_answer_is_the_json_of_its_own_value(client, factory) -> None:  # type: ignore[no-untyped-def]
    admin = await factory.admin()
    tenant = await factory.tenant("Client")
    name = "tab\t quote\" back\\slash \u2028 Ünïcode 😀"
    changed = await client.put(f"{TOKENS}/{tenant.id}", headers=admin.headers,
                               json={"name": name, "description": "</script>"})
    assert changed.status_code == 200, changed.text
    for response in (changed, await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)):
        assert response.json()["name"] == name
        assert response.content == paging.encode_json(json.loads(response.content))


def test_what_json_refuses_is_refused_here_too() -> None:
    """A datetime or a dataclass that strays into a document fails loudly, as json fails,
    instead of being written in orjson's own way."""
    @dataclasses.dataclass
    class Stray:
        at: str

    for value in (datetime(2026, 12, 1, 3, 4, 5, 678_901, tzinfo=UTC), Stray("x")):
        with pytest.raises(TypeError):
            paging.encode_json({"expiresAt": value})
        with pytest.raises(TypeError):
            views.encode_json({"expiresAt": value})
