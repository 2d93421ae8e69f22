"""What the transfer tests share: an engine of their own on each test database (the imports
run through the service, beside the app's engine)."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenhouse.kit.db import create_engine
from tokenhouse.kit.settings import Settings


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    made = create_engine(settings)
    try:
        yield made
    finally:
        await made.dispose()
