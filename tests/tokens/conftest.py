"""Fixtures of the token tests."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

Connect = Callable[[str], Any]


@pytest.fixture
def from_address(app: FastAPI, client: httpx.AsyncClient) -> Connect:
    """A client of the test app whose requests come from `address`."""

    @asynccontextmanager
    async def connect(address: str, application: FastAPI = app
                      ) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=application, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://ip.test") as c:
            yield c

    return connect
