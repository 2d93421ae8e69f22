"""The page's addresses lead to it by a path, whatever Host header a request carries."""

import httpx
import pytest


@pytest.mark.parametrize("path", ["/", "/portal"])
async def test_the_page_is_reached_by_a_relative_redirect(path: str,
                                                          client: httpx.AsyncClient) -> None:
    response = await client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == "/portal/"
    page = await client.get("/portal/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
