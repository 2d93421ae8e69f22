"""The official Python client, `mpt-api-client`, on a live server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from mpt_api_client import BearerTokenAuthentication, MPTClient


def mpt_client(url: str, secret: str) -> MPTClient:
    """`MPTClient.from_config` as the installed 7.x version takes it."""
    return MPTClient.from_config(authentication=BearerTokenAuthentication(secret),
                                 base_url=url)


@contextmanager
def clients(url: str, on_request: Callable[[httpx.Request], None] | None = None
            ) -> Iterator[Callable[[str], MPTClient]]:
    """A maker of clients of `url` for a secret (`on_request` sees each request sent); all
    are closed at the end."""
    made: list[MPTClient] = []

    def make(secret: str) -> MPTClient:
        client = mpt_client(url, secret)
        if on_request is not None:
            client.http_client.httpx_client.event_hooks = {"request": [on_request],
                                                           "response": []}
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            client.http_client.httpx_client.close()
