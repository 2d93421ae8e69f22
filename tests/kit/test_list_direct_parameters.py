"""kit/direct.py sends a statement's parameters as SQLAlchemy's execution does: the values
given through their type's bind processor, the statement's own values (IN lists expanded)
kept from its first run, and a parameter known only at each run that it cannot expand
refused at once."""

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import String, TypeDecorator, bindparam, column, literal, select, values

from tokenhouse.kit.direct import DirectSelect


class Shouted(TypeDecorator[str]):
    """A type whose values SQLAlchemy converts on the way in."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else value.upper()


NAMES = values(column("name", String), name="names").data(
    [("ALPHA",), ("BETA",), ("gamma",), ("DELTA",)])


@pytest.fixture
def postgresql(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the driver sends the statement itself on PostgreSQL alone")


async def sqlalchemys(app: FastAPI, statement: Any, parameters: dict[str, Any]) -> list[Any]:
    async with app.state.runtime.engine.connect() as connection:
        return [tuple(row) for row in (await connection.execute(statement, parameters))]


@pytest.mark.parametrize(("parameters", "expected"), [
    ({"wanted": "beta"}, ["ALPHA", "BETA", "DELTA"]),
    ({"wanted": "gamma"}, ["ALPHA", "DELTA"]),  # sent as GAMMA
])
async def test_the_values_are_those_sqlalchemy_sends(app: FastAPI, postgresql: None,
                                                     parameters: dict[str, Any],
                                                     expected: list[str]) -> None:
    statement = (select(NAMES.c.name).where(
        NAMES.c.name.in_(["ALPHA", "DELTA"]) | (NAMES.c.name == bindparam(
            "wanted", type_=Shouted(), required=True)))
        .order_by(NAMES.c.name).limit(literal(3)))
    direct = DirectSelect(statement)
    for _ in range(2):  # the first run prepares, the second reuses
        rows = [tuple(row) for row in await direct.rows(app.state.runtime.engine, parameters)]
        assert rows == await sqlalchemys(app, statement, parameters)
        assert rows == [(name,) for name in expected]


async def test_a_list_given_at_each_run_is_refused(app: FastAPI, postgresql: None) -> None:
    direct = DirectSelect(select(NAMES.c.name).where(
        NAMES.c.name.in_(bindparam("names", expanding=True, required=True))))
    with pytest.raises(TypeError, match="only known at each run"):
        await direct.rows(app.state.runtime.engine, {"names": ["ALPHA"]})
