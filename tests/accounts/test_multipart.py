"""Multipart creates and updates are bounded while they arrive (issue 9, defect 5): a chunked
upload (no Content-Length) is a 413 as soon as it passes the limit, and the server stops
reading it there; each part is bounded too."""

import json
from collections.abc import AsyncIterator

import httpx

from tests.factories import Factory
from tests.helpers import ACCOUNTS, problem
from tokenhouse.accounts.router import MAX_FORM_BYTES, MAX_ICON_BYTES
from tokenhouse.kit.wire import MAX_JSON_BYTES

BOUNDARY = "hostile-boundary"
CHUNK = 64 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


class Upload:
    """A chunked multipart body: `head`, then `filler` bytes in chunks for as long as the
    server reads, then `tail`. Counts what the server took."""

    def __init__(self, head: bytes, filler: int, tail: bytes = b""):
        self.head, self.filler, self.tail = head, filler, tail
        self.sent = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._count(self.head)
        left = self.filler
        while left > 0:
            size = min(CHUNK, left)
            left -= size
            yield self._count(b"\x00" * size)
        yield self._count(self.tail)

    def _count(self, data: bytes) -> bytes:
        self.sent += len(data)
        return data


def part(name: str, filename: str | None = None, content_type: str = "application/json"
         ) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()


def account_part(name: str = "A") -> bytes:
    return part("account") + json.dumps({"name": name, "type": "Client"}).encode() + b"\r\n"


END = f"\r\n--{BOUNDARY}--\r\n".encode()
HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def send(client: httpx.AsyncClient, headers: dict[str, str], upload: Upload
               ) -> httpx.Response:
    response = await client.post(ACCOUNTS, headers={**headers, **HEADERS},
                                 content=upload.chunks())
    assert "content-length" not in response.request.headers  # sent chunked
    return response


async def count_accounts(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    response = await client.get(f"{ACCOUNTS}?limit=0", headers=headers)
    total: int = response.json()["$meta"]["pagination"]["total"]
    return total


async def test_a_chunked_upload_is_413_at_the_total_limit_and_read_no_further(
        client: httpx.AsyncClient, factory: Factory) -> None:
    admin = (await factory.admin()).headers
    # Every part within its own limit (a full-size icon, then `logo`), 100 MiB offered.
    icon = PNG + b"\x00" * (MAX_ICON_BYTES - len(PNG))
    upload = Upload(account_part() + part("icon", "i.png", "image/png") + icon + b"\r\n"
                    + part("logo", "l.png", "image/png") + PNG, 100 * 1024 ** 2)

    body = problem(await send(client, admin, upload), 413)

    assert "request body" in body["detail"]
    assert upload.sent <= MAX_FORM_BYTES + 2 * CHUNK
    assert await count_accounts(client, admin) == 1


async def test_a_chunked_icon_over_its_limit_is_413_when_it_passes_it(
        client: httpx.AsyncClient, factory: Factory) -> None:
    admin = (await factory.admin()).headers
    upload = Upload(account_part() + part("icon", "i.png", "image/png") + PNG, 10 * 1024 ** 2)

    body = problem(await send(client, admin, upload), 413)

    assert "icon" in body["detail"]
    assert upload.sent <= MAX_ICON_BYTES + len(upload.head) + 2 * CHUNK
    assert await count_accounts(client, admin) == 1


async def test_a_chunked_account_part_is_bounded_too(client: httpx.AsyncClient,
                                                     factory: Factory) -> None:
    admin = (await factory.admin()).headers
    upload = Upload(part("account") + b'{"name": "', 50 * 1024 ** 2)

    body = problem(await send(client, admin, upload), 413)

    assert "account" in body["detail"]
    assert upload.sent <= MAX_JSON_BYTES + len(upload.head) + 2 * CHUNK


async def test_a_chunked_upload_within_the_limits_is_accepted(client: httpx.AsyncClient,
                                                              factory: Factory) -> None:
    admin = (await factory.admin()).headers
    upload = Upload(account_part("Chunked") + part("icon", "i.png", "image/png") + PNG,
                    MAX_ICON_BYTES - len(PNG), END)

    response = await send(client, admin, upload)

    assert response.status_code == 201, response.text
    icon = await client.get(f"{ACCOUNTS}/{response.json()['id']}/icon", headers=admin)
    assert len(icon.content) == MAX_ICON_BYTES and icon.content.startswith(PNG)


async def test_unknown_repeated_or_cut_short_parts_are_400(client: httpx.AsyncClient,
                                                           factory: Factory) -> None:
    admin = (await factory.admin()).headers
    cases = [
        (account_part() + part("other", "x.bin") + b"x" + END, "other"),
        (account_part() + account_part() + END, "account"),
        (account_part() + part("icon", "i.png", "image/png") + PNG, None),  # no closing
    ]
    for content, named in cases:
        response = await client.post(ACCOUNTS, headers={**admin, **HEADERS}, content=content)
        body = problem(response, 400)
        if named:
            assert named in body["errors"], body
    assert await count_accounts(client, admin) == 1


async def test_deep_or_unstorable_json_in_the_account_part_is_400(client: httpx.AsyncClient,
                                                                  factory: Factory) -> None:
    admin = (await factory.admin()).headers
    for document, named in [(b"[" * 100_000, "body"), (b'{"name": "a\\u0000", "type": "Client"}',
                                                        "name")]:
        content = part("account") + document + END
        response = await client.post(ACCOUNTS, headers={**admin, **HEADERS}, content=content)
        assert named in problem(response, 400)["errors"]
