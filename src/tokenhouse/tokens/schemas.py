"""The API token wire shapes."""

from typing import Any

from pydantic import Field, field_validator

from tokenhouse.accounts.schemas import AccountSummary, render_account
from tokenhouse.kit.timeutil import render
from tokenhouse.kit.wire import READ_ONLY, Audit, ReadOnlyFields, Ref, WireOut
from tokenhouse.modules.schemas import ModuleSummary, render_module
from tokenhouse.tokens.models import ApiToken


class TokenFields(ReadOnlyFields):
    description: str | None = Field(default=None, max_length=2000)
    icon: str | None = Field(default=None, max_length=2048)
    # Read-only on input: accepted so that a client can send back what it read.
    token: Any = Field(default=None, json_schema_extra=READ_ONLY)
    last_access_at: Any = Field(default=None, json_schema_extra=READ_ONLY)


def _at_least_one(value: list[Ref] | None) -> list[Ref] | None:
    if value is not None and not value:
        raise ValueError("At least one module is required.")
    return value


class TokenCreate(TokenFields):
    name: str = Field(min_length=1, max_length=255)
    account: Ref
    modules: list[Ref] = Field(max_length=100)
    revision: Any = Field(default=None, json_schema_extra=READ_ONLY)

    _modules = field_validator("modules")(_at_least_one)


class TokenUpdate(TokenFields):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    account: Ref | None = None
    modules: list[Ref] | None = Field(default=None, max_length=100)
    # The revision the client read: a stale one is a 409, so edits never overwrite silently.
    revision: int | None = Field(default=None, description="The revision read; if the "
                                 "object has changed since, the PUT is a 409.")

    _modules = field_validator("modules")(_at_least_one)




class TokenOut(WireOut):
    id: str = Field(json_schema_extra=READ_ONLY)
    href: str = Field(json_schema_extra=READ_ONLY)
    name: str
    description: str | None
    icon: str | None
    status: str = Field(json_schema_extra=READ_ONLY, description="Changed by the enable and "
                        "disable actions and by a delete, never by a PUT.")
    last_access_at: str | None = Field(json_schema_extra=READ_ONLY)
    token: str | None = Field(default=None, json_schema_extra=READ_ONLY,
                              description="The secret: only in the create response and in a "
                              "GET made with this very token.")
    account: AccountSummary
    modules: list[ModuleSummary]
    audit: Audit | None = Field(default=None, json_schema_extra=READ_ONLY,
                                description="Omitted from list items unless selected "
                                "(select=+audit).")
    revision: int = Field(json_schema_extra=READ_ONLY)
    meta: dict[str, Any] | None = Field(default=None, alias="$meta",
                                        json_schema_extra=READ_ONLY)


def href(token_id: str) -> str:
    return f"/public/v1/accounts/api-tokens/{token_id}"


def render_token(token: ApiToken, *, last_access: Any,
                 secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": token.id,
        "href": href(token.id),
        "name": token.name,
        "description": token.description,
        "icon": token.icon,
        "status": token.status,
        "lastAccessAt": render(last_access),
    }
    if secret is not None:
        body["token"] = secret
    body["account"] = render_account(token.account, full=False)
    body["modules"] = [render_module(module, audit=False) for module in token.modules]
    body["audit"] = token.render_audit()
    body["revision"] = token.revision
    return body
