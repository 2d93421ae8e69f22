"""The account wire shapes."""

from typing import Any, Literal
from uuid import UUID

from pydantic import EmailStr, Field

from tokenhouse.accounts.models import Account, UserGroup
from tokenhouse.kit.timeutil import as_utc
from tokenhouse.kit.wire import READ_ONLY, Audit, ReadOnlyFields, WireIn, WireOut

AccountTypeName = Literal["Client", "Vendor", "Operations"]


class ExternalIds(WireIn):
    pyra_tenant_id: UUID | None = None


class Address(WireIn):
    address_line1: str | None = Field(default=None, max_length=255)
    address_line2: str | None = Field(default=None, max_length=255)
    post_code: str | None = Field(default=None, max_length=32)
    city: str | None = Field(default=None, max_length=255)
    state: str | None = Field(default=None, max_length=255)
    country: str | None = Field(default=None, max_length=64)


class AccountFields(ReadOnlyFields):
    description: str | None = Field(default=None, max_length=2000)
    external_ids: ExternalIds | None = None
    external_id: str | None = Field(default=None, max_length=255)
    external_name: str | None = Field(default=None, max_length=255)
    service_level: str | None = Field(default=None, max_length=64)
    address: Address | None = None
    technical_support_email: EmailStr | None = None
    website: str | None = Field(default=None, max_length=2048)
    # Read-only on input: set by the server, accepted so a client can send back what it read.
    icon: Any = Field(default=None, json_schema_extra=READ_ONLY)
    groups: Any = Field(default=None, json_schema_extra=READ_ONLY)
    # The revision the client read: a stale one is a 409, so edits never overwrite silently.
    revision: int | None = Field(default=None, description="The revision read; if the "
                                 "object has changed since, the PUT is a 409.")


class AccountCreate(AccountFields):
    name: str = Field(min_length=1, max_length=255)
    type: AccountTypeName
    revision: Any = Field(default=None, json_schema_extra=READ_ONLY)


class AccountUpdate(AccountFields):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    type: AccountTypeName | None = None


class AddressOut(WireOut):
    address_line1: str | None = None
    address_line2: str | None = None
    post_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None


class GroupOut(WireOut):
    id: str
    href: str
    name: str
    description: str | None
    logo: str | None
    is_default: bool
    modules: list[dict[str, Any]]


class AccountSummary(WireOut):
    id: str = Field(json_schema_extra=READ_ONLY)
    href: str = Field(json_schema_extra=READ_ONLY)
    type: str
    status: str = Field(json_schema_extra=READ_ONLY, description="Changed by the enable and "
                        "disable actions, never by a PUT.")
    name: str
    description: str | None
    icon: str | None = Field(json_schema_extra=READ_ONLY, description="The icon's address; "
                             "the image is sent as the `icon` part of a multipart body.")
    external_ids: dict[str, str | None]
    external_id: str | None
    external_name: str | None
    service_level: str | None
    address: AddressOut | None
    technical_support_email: str | None
    website: str | None


class AccountOut(AccountSummary):
    groups: list[GroupOut] = Field(json_schema_extra=READ_ONLY)
    audit: Audit | None = Field(default=None, json_schema_extra=READ_ONLY,
                                description="Omitted from list items unless selected "
                                "(select=+audit).")
    revision: int = Field(json_schema_extra=READ_ONLY)
    meta: dict[str, Any] | None = Field(default=None, alias="$meta",
                                        json_schema_extra=READ_ONLY)


def href(account_id: str) -> str:
    return f"/public/v1/accounts/accounts/{account_id}"


def render_account(account: Account, *, full: bool = True) -> dict[str, Any]:
    """The account; `full=False` is the shape nested in a token (no groups, no audit)."""
    body: dict[str, Any] = {
        "id": account.id,
        "href": href(account.id),
        "type": account.type,
        "status": account.status,
        "name": account.name,
        "description": account.description,
        "icon": _icon_link(account),
        "externalIds": {"pyraTenantId": account.pyra_tenant_id},
        "externalId": account.external_id,
        "externalName": account.external_name,
        "serviceLevel": account.service_level,
        "address": account.address,
        "technicalSupportEmail": account.technical_support_email,
        "website": account.website,
    }
    if full:
        body["groups"] = [render_group(group) for group in account.groups]
        body["audit"] = account.render_audit()
        body["revision"] = account.revision
    return body


def _icon_link(account: Account) -> str | None:
    """The icon's address, versioned by upload time so that no cache serves an old one."""
    if account.icon_updated_at is None:
        return None
    version = int(as_utc(account.icon_updated_at).timestamp() * 1000)
    return f"{href(account.id)}/icon?v={version}"


def render_group(group: UserGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "href": f"/public/v1/accounts/user-groups/{group.id}",
        "name": group.name,
        "description": group.description,
        "logo": group.logo,
        "isDefault": group.is_default,
        "modules": [],
    }


