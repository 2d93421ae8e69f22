"""Statements of small filters are kept; those of large ones are compiled for their one use,
so that a stream of different large filters (any token may send them) cannot fill a worker's
memory with kept statements."""

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Factory
from tests.helpers import MODULES, TOKENS
from tokenhouse.kit.repository import CACHED_TERMS
from tokenhouse.tokens import repository as tokens


def large_filter(seed: int) -> str:
    """A filter of CACHED_TERMS + 1 comparisons whose structure (not only its values) differs
    from one seed to the next, as a statement cache key does."""
    operators = ("eq", "ne", "gt", "lt", "ge", "le")
    terms = ",".join(f"{operators[(seed >> (i % 8)) % 6 if i < 8 else i % 6]}(name,n{i})"
                     for i in range(CACHED_TERMS + 1))
    return f"or({terms})"


def kept(app: FastAPI) -> tuple[int, int]:
    """Statements kept by SQLAlchemy (compiled) and by the tokens repository (built)."""
    compiled = app.state.runtime.engine.sync_engine._compiled_cache
    return len(compiled) if compiled is not None else 0, \
        tokens._list_statements.cache_info().currsize


@pytest.mark.parametrize("path", [TOKENS, MODULES])
async def test_large_filters_are_not_kept(path: str, app: FastAPI, client: httpx.AsyncClient,
                                          factory: Factory) -> None:
    admin = await factory.admin()
    # Warm: the statements every request runs are kept already.
    assert (await client.get(f"{path}?{large_filter(0)}", headers=admin.headers)
            ).status_code == 200
    before = kept(app)
    for seed in range(1, 11):
        response = await client.get(f"{path}?{large_filter(seed)}", headers=admin.headers)
        assert response.status_code == 200, response.text
    after = kept(app)
    assert after[1] == before[1]
    # Kept, they would add two statements each (the count and the page): 20. The background
    # lastAccessAt writer may compile its own statement meanwhile.
    assert after[0] - before[0] <= 2


async def test_small_filters_are_kept(app: FastAPI, client: httpx.AsyncClient,
                                      factory: Factory) -> None:
    admin = await factory.admin()
    query = f"{TOKENS}?or(eq(name,kept-a),eq(name,kept-b))"
    assert (await client.get(query, headers=admin.headers)).status_code == 200
    before = kept(app)
    assert (await client.get(query, headers=admin.headers)).status_code == 200
    assert kept(app) == before
    assert before[1] > 0
