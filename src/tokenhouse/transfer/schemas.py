"""The lines of an export file: each object in its public API shape, plus a token's stored
secret hash. Read-only and derived properties (`href`, `$meta`, links) are accepted and
ignored; anything else unknown is an error, so that a typo never loses data silently.

Every limit of a column is a limit here too (lengths, the 32-bit `revision`, ids by their
pattern), so that a line accepted here is one both databases store: a bad file is refused
line by line before anything is written, never by a database error half-way."""

from datetime import datetime
from ipaddress import IPv6Address, ip_address
from typing import Annotated, Any, Literal, TypedDict
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
    with_config,
)

from tokenhouse.kit.addresses import canonical_allowlist
from tokenhouse.kit.problems import ValidationFailed
from tokenhouse.kit.ratelimit import MAX_LIMIT, MAX_WINDOW
from tokenhouse.kit.timeutil import as_utc

# `revision` is an INTEGER column: 32 bits on PostgreSQL.
MAX_REVISION = 2**31 - 1
ACCOUNT_ID = r"^ACC-[0-9]{4}-[0-9]{4}$"
MODULE_ID = r"^MOD-[0-9]{4}$"
SECRET_HASH = r"^[0-9a-f]{64}$"
# The client addresses a token keeps (tokens/last_access.py).
MAX_ACCESS_IPS = 5


def _to_utc(value: datetime) -> datetime:
    try:
        return as_utc(value)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-23:00, past year 9999 in UTC
        raise ValueError("the instant is out of range in UTC") from None


def _canonical(networks: list[str]) -> list[str] | None:
    """The API's own rules for an allowlist (kit/addresses.py): canonical networks, repeats
    dropped; [] is None (any address). A network with host bits set is refused, not
    narrowed or widened."""
    try:
        return canonical_allowlist(networks, field="ipAllowlist")
    except ValidationFailed as exc:
        # The first entry refused (by its index), or the list itself.
        where, messages = next(iter((exc.errors or {"": [exc.detail]}).items()))
        raise ValueError(messages[0] if where in ("", "ipAllowlist")
                         else f"{where}: {messages[0]}") from None


# A status the service can leave a reason on: disable it sets one (the revoke-leaked route),
# and delete keeps it; enable, disable by hand and rotation clear it (tokens/service.py).
REASONED = ("Disabled", "Deleted")


def _reasoned(value: str, info: ValidationInfo) -> str:
    """A reason only on a token the service could have left it on. An Active token with
    `Leaked` would be a leaked secret back in service without the rotation the API demands
    before it enables one (and its status was refused already when `status` is missing)."""
    status = info.data.get("status")
    if status is not None and status not in REASONED:
        raise ValueError(f"{value} only on a Disabled (or Deleted) token, not an {status} one")
    return value


# Checked only when given, so that a null (nearly every line's) costs no Python call.
Instant = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Allowlist = Annotated[list[str], AfterValidator(_canonical)]
Reason = Annotated[Literal["Leaked"], AfterValidator(_reasoned)]


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    href: Any = None
    meta: Any = Field(default=None, alias="$meta")


class ByIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = Field(default=None, max_length=32)
    name: str | None = Field(default=None, max_length=255)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: AwareDatetime
    by: ByIn | None = None

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _to_utc(value)


class AuditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    created: EventIn | None = None
    updated: EventIn | None = None


class AddressIn(BaseModel):
    """The same limits as the API's (accounts/schemas.py), so that what imports here can move
    to any database."""

    model_config = ConfigDict(extra="forbid")
    addressLine1: str | None = Field(default=None, max_length=255)
    addressLine2: str | None = Field(default=None, max_length=255)
    postCode: str | None = Field(default=None, max_length=32)
    city: str | None = Field(default=None, max_length=255)
    state: str | None = Field(default=None, max_length=255)
    country: str | None = Field(default=None, max_length=64)


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(pattern=r"^UGR-[0-9]{4}-[0-9]{4}$")
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    logo: str | None = Field(default=None, max_length=2048)
    isDefault: bool = False


class ExternalIdsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pyraTenantId: UUID | None = None


class AccountLine(Line):
    id: str = Field(pattern=ACCOUNT_ID)
    name: str = Field(min_length=1, max_length=255)
    type: Literal["Client", "Vendor", "Operations"]
    status: Literal["Active", "Enabled", "Disabled"] = "Active"
    description: str | None = Field(default=None, max_length=2000)
    icon: Any = None  # a link to the icon; icons themselves are not exported
    externalIds: "ExternalIdsIn | None" = None
    externalId: str | None = Field(default=None, max_length=255)
    externalName: str | None = Field(default=None, max_length=255)
    serviceLevel: str | None = Field(default=None, max_length=64)
    address: AddressIn | None = None
    technicalSupportEmail: str | None = Field(default=None, max_length=320)
    website: str | None = Field(default=None, max_length=2048)
    groups: list[GroupIn] = []
    audit: AuditIn | None = None
    revision: int = Field(default=1, ge=1, le=MAX_REVISION)


class ModuleLine(Line):
    id: str = Field(pattern=MODULE_ID)
    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    accountTypes: list[Literal["Client", "Vendor", "Operations"]] | None = None
    isEnabledByDefault: bool | None = None
    isConfigurable: bool | None = None
    paid: bool | None = None
    settings: dict[str, Any] | None = None
    filters: dict[str, list[str]] | None = None
    audit: AuditIn | None = None
    revision: int | None = Field(default=None, ge=1, le=MAX_REVISION)

    @model_validator(mode="after")
    def _no_nulls(self) -> "ModuleLine":
        """A property left out keeps its value; one given as null would empty a column that
        cannot be empty."""
        for name in ("name", "accountTypes", "isEnabledByDefault", "isConfigurable", "paid",
                     "settings", "filters", "revision"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


# A token's account and modules, of which an import reads the id alone (the rest, as export
# writes it, is ignored): dicts rather than models, which cost about an eighth of a token
# line's validation to make.
@with_config(ConfigDict(extra="ignore"))
class AccountRef(TypedDict):
    id: Annotated[str, Field(pattern=ACCOUNT_ID)]


@with_config(ConfigDict(extra="ignore"))
class ModuleRef(TypedDict):
    id: Annotated[str, Field(pattern=MODULE_ID)]


class AccessIn(BaseModel):
    """One of a token's last client addresses."""

    model_config = ConfigDict(extra="forbid")
    ip: str = Field(max_length=64)
    at: Instant

    @field_validator("ip")
    @classmethod
    def _address(cls, value: str) -> str:
        """Stored as the service records one (kit/addresses.py): canonical, an IPv4-mapped
        IPv6 address as IPv4, no zone id."""
        try:
            address = ip_address(value)
        except ValueError:
            raise ValueError("not an IP address") from None
        if isinstance(address, IPv6Address):
            if address.scope_id is not None:
                raise ValueError("a zone id (after %) is not part of a client's address")
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
        return str(address)


class PreviousSecretIn(BaseModel):
    """The public shape of the secret a rotation replaced, while it still works."""

    model_config = ConfigDict(extra="forbid")
    expiresAt: Instant
    lastAccessAt: Instant | None = None


class RateLimitIn(BaseModel):
    """A token's rate limit, within the API's bounds (tokens/schemas.RateLimitIn): strict
    integers, so that `"600"` or `600.5` is refused rather than read as something else."""

    model_config = ConfigDict(extra="forbid")
    limit: StrictInt = Field(ge=1, le=MAX_LIMIT)
    windowSeconds: StrictInt = Field(ge=1, le=MAX_WINDOW)


class TokenLine(Line):
    id: str = Field(pattern=r"^TKN-[0-9]{4}-[0-9]{4}$")
    name: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=2000)
    icon: str | None = Field(default=None, max_length=2048)
    # Expired is computed (an Active token past its expiresAt): stored as Active, and
    # needs an expiresAt (service._read_line).
    status: Literal["Active", "Disabled", "Deleted", "Expired"] = "Active"
    # Why the service disabled it; read-only in the API, carried here so that a leaked
    # token moved to another store still needs its rotation before it is enabled.
    statusReason: Reason | None = None
    # Any instant, a past one too (the token is then Expired).
    expiresAt: Instant | None = None
    ipAllowlist: Allowlist | None = None
    # Left out (a file of before issue 12) or null: no limit, as migration 0009 left the
    # tokens of before; the server's default is for tokens created through the API.
    rateLimit: RateLimitIn | None = None
    lastAccessAt: AwareDatetime | None = None
    lastAccessIps: list[AccessIn] | None = Field(default=None, max_length=MAX_ACCESS_IPS)
    previousSecret: PreviousSecretIn | None = None
    account: AccountRef
    modules: list[ModuleRef] = []
    audit: AuditIn | None = None
    revision: int = Field(default=1, ge=1, le=MAX_REVISION)
    # The keyed hash of the secret (never the secret): the token authenticates again after
    # an import into a server with the same TOKENHOUSE_SECRET_KEY.
    secretHash: str | None = Field(default=None, pattern=SECRET_HASH)
    # The same of the secret a rotation replaced, with how it ends: the old secret keeps
    # working after a move in its grace window, until previousSecret.expiresAt. Without
    # it, a previousSecret (as the API shows it) is read and nothing of it is kept.
    previousSecretHash: str | None = Field(default=None, pattern=SECRET_HASH)
    retirePreviousOnFirstUse: bool = False
    # When a rotation issued the current secret (not shown by the API): a rotation without
    # a new expiry keeps the lifetime the secret had from then, not from the creation.
    rotatedAt: Instant | None = None

    @field_validator("lastAccessAt")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _to_utc(value) if value else None

    @field_validator("previousSecretHash")
    @classmethod
    def _previous_hash(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            if "previousSecret" in info.data and info.data["previousSecret"] is None:
                raise ValueError("a previous secret's hash needs its previousSecret")
            if value == info.data.get("secretHash"):
                raise ValueError("the same as secretHash")
        return value

    @field_validator("retirePreviousOnFirstUse")
    @classmethod
    def _retire(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("previousSecretHash") is None \
                and "previousSecretHash" in info.data:
            raise ValueError("true needs a previousSecretHash")
        return value
