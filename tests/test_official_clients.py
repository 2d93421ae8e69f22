"""Acceptance: the official clients, unmodified, against a live `tokenhouse serve`.

One real server process per backend (SQLite, PostgreSQL) is shared by the whole module; each
test makes the accounts and tokens it needs, so the tests do not depend on each other's data.

- `mpt-api-client` (the tests' virtualenv): api_tokens create/get/update/disable/enable/
  delete/fetch_page/iterate, modules fetch_page/iterate, accounts create (multipart), and
  the error strings it builds from our problem documents ("404 Not Found").
- `mpt-cli accounts add <secret> -e <url>` (its own virtualenv, path in MPT_CLI).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mpt_api_client import MPTClient
from mpt_api_client.exceptions import MPTAPIError

from tests.databases import BACKENDS
from tests.helpers import ACCOUNTS, TOKENS
from tests.live_server import LiveServer, serving
from tests.mpt import clients

pytestmark = pytest.mark.slow

SECRET_RE = re.compile(r"^idt:(TKN-\d{4}-\d{4}):(.+)$")
TOKEN_ID_RE = re.compile(r"^TKN-\d{4}-\d{4}$")
ACCOUNT_ID_RE = re.compile(r"^ACC-\d{4}-\d{4}$")
TRACE_RE = re.compile(r"\(00-[0-9a-f]{32}-[0-9a-f]{16}-00\)")
# The smallest valid PNG (1x1, transparent): the logo `accounts.create` may upload.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
ROOT = Path(__file__).resolve().parent.parent


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`tokenhouse migrate`, `bootstrap --json` and `serve`, as real processes."""
    with serving(request.param, tmp_path_factory.mktemp(f"live-{request.param}")) as live:
        yield live


@pytest.fixture(scope="module")
def connect(server: LiveServer) -> Iterator[Callable[[str], MPTClient]]:
    """Make an `MPTClient` on the live server for a secret; all are closed at the end."""
    with clients(server.url) as make:
        yield make


@pytest.fixture(scope="module")
def admin(server: LiveServer, connect: Callable[[str], MPTClient]) -> MPTClient:
    """The bootstrap token of the Operations account (every Operations module)."""
    return connect(server.admin_secret)


@pytest.fixture(scope="module")
def modules(admin: MPTClient) -> dict[str, str]:
    """Module name -> id, read through the client."""
    return {module.name: module.id for module in admin.accounts.modules.iterate()}


@pytest.fixture
def client_account(server: LiveServer) -> dict[str, Any]:
    """A new Client account, created with a plain JSON POST by the admin."""
    with server.client(server.admin_secret) as http:
        response = http.post(ACCOUNTS, json={"name": "Acceptance Client", "type": "Client"})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def client_manager(admin: MPTClient, connect: Callable[[str], MPTClient],
                   client_account: dict[str, Any], modules: dict[str, str]
                   ) -> tuple[MPTClient, Any]:
    """An MPTClient authenticated as an Access Management token of a new Client account,
    and that token (as created, with its secret)."""
    token = admin.accounts.api_tokens.create(
        token_body(client_account["id"], [modules["Access Management"]], "Client manager"))
    return connect(token.token), token


@pytest.fixture
def mpt_cli() -> str:
    path = os.environ.get("MPT_CLI") or str(ROOT / ".venv-mptcli" / "bin" / "mpt-cli")
    if not Path(path).is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"mpt-cli not found at {path}: set MPT_CLI to its path or run "
                    "'make install-test' (it creates .venv-mptcli); 'make test' sets MPT_CLI.")
    return path


# -- helpers -----------------------------------------------------------------------------


def token_body(account_id: str, module_ids: list[str], name: str,
               description: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"account": {"id": account_id}, "name": name,
                            "modules": [{"id": module_id} for module_id in module_ids]}
    if description is not None:
        body["description"] = description
    return body


def status_with(server: LiveServer, secret: str, token_id: str) -> int:
    """The status of `GET /api-tokens/{token_id}` made with `secret`, raw over HTTP."""
    with server.client(secret) as http:
        return http.get(f"{TOKENS}/{token_id}").status_code


def api_error(call: Callable[[], Any]) -> MPTAPIError:
    with pytest.raises(MPTAPIError) as caught:
        call()
    return caught.value


def run_cli(cli: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MPT_", "TOKENHOUSE_")) and k != "HOME"}
    env.update(HOME=str(home), COLUMNS="200", NO_COLOR="1", TERM="dumb")
    return subprocess.run([cli, *args], env=env, cwd=home, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)


# -- mpt-api-client ----------------------------------------------------------------------


def test_modules_catalog_pages_and_iterates(admin: MPTClient, modules: dict[str, str]) -> None:
    assert "Access Management" in modules
    assert all(re.fullmatch(r"MOD-\d{4}", module_id) for module_id in modules.values())
    page = admin.accounts.modules.fetch_page(limit=3)
    assert len(page) == 3
    assert page.meta.pagination.limit == 3
    assert page.meta.pagination.offset == 0
    assert page.meta.pagination.total == len(modules)
    ids = [module.id for module in admin.accounts.modules.iterate(batch_size=3)]
    assert len(ids) == len(set(ids)) == len(modules)
    one = admin.accounts.modules.get(modules["Access Management"])
    assert one.name == "Access Management"
    assert "Client" in one.account_types


def test_token_lifecycle(server: LiveServer, admin: MPTClient,
                         modules: dict[str, str]) -> None:
    tokens = admin.accounts.api_tokens
    access = modules["Access Management"]

    created = tokens.create(token_body(server.account_id, [access], "Lifecycle",
                                       "made by the acceptance test"))
    assert TOKEN_ID_RE.fullmatch(created.id)
    match = SECRET_RE.fullmatch(created.token)
    assert match is not None, created.token
    assert match.group(1) == created.id
    assert created.revision == 1
    assert created.status == "Active"
    assert created.name == "Lifecycle"
    assert created.description == "made by the acceptance test"
    assert created.account.id == server.account_id
    assert created.account.type == "Operations"
    assert [module.id for module in created.modules] == [access]
    assert created.audit.created.by.id == server.token["id"]
    secret = created.token

    # Its secret authenticates (raw HTTP), and that is recorded as lastAccessAt.
    assert status_with(server, secret, created.id) == 200
    fetched = tokens.get(created.id)
    assert fetched.id == created.id
    assert fetched.name == "Lifecycle"
    assert fetched.revision == 1
    assert fetched.last_access_at is not None
    assert not hasattr(fetched, "token"), "the secret is shown to its own token only"

    # PUT, sending the account back as the client's own tests do.
    updated = tokens.update(created.id, {"name": "Lifecycle renamed",
                                         "description": "changed",
                                         "account": {"id": server.account_id}})
    assert updated.revision == 2
    assert updated.name == "Lifecycle renamed"
    assert updated.description == "changed"
    assert [module.id for module in updated.modules] == [access]
    again = tokens.get(created.id)
    assert (again.name, again.description, again.revision) == ("Lifecycle renamed", "changed", 2)

    disabled = tokens.disable(created.id)
    assert disabled.status == "Disabled"
    assert disabled.revision == 3
    assert status_with(server, secret, created.id) == 401
    assert tokens.get(created.id).status == "Disabled"

    enabled = tokens.enable(created.id)
    assert enabled.status == "Active"
    assert enabled.revision == 4
    assert status_with(server, secret, created.id) == 200

    assert tokens.delete(created.id) is None
    assert status_with(server, secret, created.id) == 401
    # Operations still sees a Deleted token.
    assert tokens.get(created.id).status == "Deleted"


def test_lifecycle_fields_through_the_client(server: LiveServer, admin: MPTClient,
                                            connect: Callable[[str], MPTClient],
                                            modules: dict[str, str]) -> None:
    """Issue 11's fields are additions: the client's generic create and update carry them,
    and its models read them back."""
    tokens = admin.accounts.api_tokens
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    created = tokens.create({**token_body(server.account_id, [modules["Access Management"]],
                                          "Expiring"),
                             "expiresAt": expires, "ipAllowlist": ["127.0.0.0/8",
                                                                   "2001:DB8::/32"]})
    assert created.expires_at == expires
    assert created.ip_allowlist == ["127.0.0.0/8", "2001:db8::/32"]
    assert created.previous_secret is None and created.status == "Active"
    own = connect(created.token)
    assert own.accounts.api_tokens.get(created.id).id == created.id  # from 127.0.0.1
    assert [address.ip for address in tokens.get(created.id).last_access_ips] == ["127.0.0.1"]

    updated = tokens.update(created.id, {"expiresAt": None, "ipAllowlist": ["192.0.2.0/24"]})
    assert updated.expires_at is None and updated.ip_allowlist == ["192.0.2.0/24"]
    error = api_error(lambda: own.accounts.api_tokens.get(created.id))
    assert error.status_code == 403
    again = tokens.get(created.id)
    assert (again.expires_at, again.ip_allowlist, again.revision) == (None, ["192.0.2.0/24"], 2)
    # A past expiry is the client's error, naming the property.
    refused = api_error(lambda: tokens.update(created.id, {"expiresAt": "2001-01-01T00:00:00Z"}))
    assert refused.status_code == 400 and "expiresAt" in str(refused)


def test_disabled_token_is_refused_to_the_client(server: LiveServer, admin: MPTClient,
                                                 connect: Callable[[str], MPTClient],
                                                 modules: dict[str, str]) -> None:
    created = admin.accounts.api_tokens.create(
        token_body(server.account_id, [modules["Access Management"]], "Soon disabled"))
    own = connect(created.token)
    assert own.accounts.api_tokens.get(created.id).id == created.id
    admin.accounts.api_tokens.disable(created.id)
    error = api_error(lambda: own.accounts.api_tokens.get(created.id))
    assert error.status_code == 401
    assert "401 Unauthorized" in str(error)


def test_token_reads_itself_with_its_secret(server: LiveServer, admin: MPTClient,
                                            connect: Callable[[str], MPTClient],
                                            client_account: dict[str, Any],
                                            modules: dict[str, str]) -> None:
    # A token without Access Management may still read itself (what mpt-cli relies on).
    created = admin.accounts.api_tokens.create(
        token_body(client_account["id"], [modules["Marketplace"]], "Reads itself"))
    own = connect(created.token)
    itself = own.accounts.api_tokens.get(created.id)
    assert itself.id == created.id
    assert itself.token == created.token
    assert itself.account.id == client_account["id"]
    assert itself.account.name == client_account["name"]
    assert itself.account.type == "Client"
    # ... but without Access Management it may not list tokens (403), nor read another
    # account's token (403 for the missing right, or 404 for the other tenant: both refuse).
    assert api_error(lambda: own.accounts.api_tokens.fetch_page()).status_code == 403
    assert api_error(lambda: own.accounts.api_tokens.get(server.token["id"])).status_code in (
        403, 404)
    # Read by anyone else, the secret is left out.
    assert not hasattr(admin.accounts.api_tokens.get(created.id), "token")


def test_fetch_page_and_iterate_over_more_than_one_page(
        client_manager: tuple[MPTClient, Any], client_account: dict[str, Any],
        admin: MPTClient, modules: dict[str, str]) -> None:
    manager, manager_token = client_manager
    tokens = manager.accounts.api_tokens
    made = [tokens.create(token_body(client_account["id"], [modules["Access Management"]],
                                     f"Paged {n:02d}")).id for n in range(12)]
    expected = {manager_token.id, *made}  # a Client token sees exactly its account's tokens
    assert len(expected) == 13

    first = tokens.fetch_page(limit=5)
    assert len(first) == 5
    assert (first.meta.pagination.offset, first.meta.pagination.limit,
            first.meta.pagination.total) == (0, 5, 13)
    last = tokens.fetch_page(limit=5, offset=10)
    assert len(last) == 3
    assert (last.meta.pagination.offset, last.meta.pagination.total) == (10, 13)
    # An over-large limit is clamped, and the effective limit is what the server reports
    # (iterate() pages with the reported limit).
    clamped = tokens.fetch_page(limit=1000)
    assert len(clamped) == 13
    assert clamped.meta.pagination.limit == 100

    seen = [token.id for token in tokens.iterate(batch_size=5)]
    assert len(seen) == 13
    assert set(seen) == expected

    # Operations sees them too, among every other account's.
    everything = [token.id for token in admin.accounts.api_tokens.iterate(batch_size=5)]
    assert len(everything) == len(set(everything))
    assert expected <= set(everything)


def test_deleted_and_unknown_tokens_are_404(client_manager: tuple[MPTClient, Any],
                                            client_account: dict[str, Any],
                                            admin: MPTClient, modules: dict[str, str]) -> None:
    manager, _ = client_manager
    tokens = manager.accounts.api_tokens
    doomed = tokens.create(token_body(client_account["id"], [modules["Access Management"]],
                                      "Doomed"))
    assert tokens.get(doomed.id).status == "Active"
    tokens.delete(doomed.id)

    error = api_error(lambda: tokens.get(doomed.id))
    assert error.status_code == 404
    assert "404 Not Found" in str(error)
    assert TRACE_RE.search(str(error)), str(error)

    unknown = api_error(lambda: admin.accounts.api_tokens.get("TKN-0000-0000"))
    assert unknown.status_code == 404
    assert "404 Not Found" in str(unknown)
    # Deleting twice is refused; the Operations view still has the Deleted token.
    assert admin.accounts.api_tokens.get(doomed.id).status == "Deleted"
    assert api_error(lambda: admin.accounts.api_tokens.delete(doomed.id)).status_code == 409


def test_another_tenants_token_is_404_for_a_client(client_manager: tuple[MPTClient, Any],
                                                   server: LiveServer) -> None:
    manager, _ = client_manager
    tokens = manager.accounts.api_tokens
    for call in (lambda: tokens.get(server.token["id"]),
                 lambda: tokens.enable(server.token["id"]),  # Active: would be a 409
                 lambda: tokens.update(server.token["id"], {"name": "hijacked"})):
        error = api_error(call)
        assert "404 Not Found" in str(error), str(error)
    # The admin token was not touched.
    assert status_with(server, server.admin_secret, server.token["id"]) == 200


def test_accounts_create_multipart_then_token_for_it(server: LiveServer, admin: MPTClient,
                                                     connect: Callable[[str], MPTClient],
                                                     modules: dict[str, str]) -> None:
    # `accounts.create` always sends multipart/form-data, the JSON in a part named `account`.
    account = admin.accounts.accounts.create({"name": "Multipart Client", "type": "Client"})
    assert ACCOUNT_ID_RE.fullmatch(account.id)
    assert (account.name, account.type, account.status) == ("Multipart Client", "Client",
                                                             "Active")
    assert admin.accounts.accounts.get(account.id).name == "Multipart Client"

    with_logo = admin.accounts.accounts.create({"name": "Client with logo", "type": "Client"},
                                               file=("logo.png", PNG, "image/png"))
    assert with_logo.icon
    with server.client(server.admin_secret) as http:
        icon = http.get(with_logo.icon)
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/png"
    assert icon.content == PNG

    token = admin.accounts.api_tokens.create(
        token_body(account.id, [modules["Access Management"]], "For the multipart account"))
    assert token.account.id == account.id
    assert connect(token.token).accounts.api_tokens.get(token.id).token == token.token


def test_bad_input_becomes_an_api_error_with_the_property(admin: MPTClient,
                                                          server: LiveServer) -> None:
    error = api_error(lambda: admin.accounts.api_tokens.create(
        {"account": {"id": server.account_id}, "modules": []}))
    assert error.status_code == 400
    assert str(error).startswith("400 Bad Request")
    assert error.errors and "name" in error.errors and "modules" in error.errors


# -- mpt-cli -----------------------------------------------------------------------------


def test_mpt_cli_accounts_add(mpt_cli: str, server: LiveServer, admin: MPTClient,
                              client_account: dict[str, Any], modules: dict[str, str],
                              tmp_path: Path) -> None:
    token = admin.accounts.api_tokens.create(
        token_body(client_account["id"], [modules["Access Management"]], "For mpt-cli"))
    result = run_cli(mpt_cli, tmp_path, "accounts", "add", token.token, "-e", server.url)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"

    accounts = json.loads((tmp_path / ".swocli" / "accounts.json").read_text())
    assert len(accounts) == 1
    entry = accounts[0]
    assert entry["id"] == client_account["id"]
    assert entry["name"] == client_account["name"]
    assert entry["type"] == "Client"
    assert entry["token_id"] == token.id
    assert entry["token"] == token.token
    assert entry["environment"] == server.url
    assert entry["is_active"] is True


def test_mpt_cli_accounts_add_of_the_admin_token(mpt_cli: str, server: LiveServer,
                                                 tmp_path: Path) -> None:
    result = run_cli(mpt_cli, tmp_path, "accounts", "add", server.admin_secret,
                     "-e", f"{server.url}/public/v1")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    accounts = json.loads((tmp_path / ".swocli" / "accounts.json").read_text())
    assert [(a["id"], a["type"], a["token_id"]) for a in accounts] == [
        (server.account_id, "Operations", server.token["id"])]


def test_mpt_cli_refuses_a_disabled_token(mpt_cli: str, server: LiveServer, admin: MPTClient,
                                          client_account: dict[str, Any],
                                          modules: dict[str, str], tmp_path: Path) -> None:
    token = admin.accounts.api_tokens.create(
        token_body(client_account["id"], [modules["Access Management"]], "Disabled for cli"))
    admin.accounts.api_tokens.disable(token.id)
    result = run_cli(mpt_cli, tmp_path, "accounts", "add", token.token, "-e", server.url)
    assert result.returncode != 0, f"{result.stdout}\n{result.stderr}"
    # Refused by the server (the client's error string), not by some local failure.
    output = " ".join((result.stdout + result.stderr).split())
    assert "401 Unauthorized" in output, output
    accounts_file = tmp_path / ".swocli" / "accounts.json"
    if accounts_file.exists():
        assert client_account["id"] not in accounts_file.read_text()
