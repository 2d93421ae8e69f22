"""The API token wire shapes."""

from datetime import datetime
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
)

from tokenhouse.accounts.schemas import AccountSummary, render_account
from tokenhouse.audit.subjects import Party, Subject
from tokenhouse.kit.addresses import MAX_NETWORKS, from_stored
from tokenhouse.kit.ratelimit import MAX_LIMIT, MAX_WINDOW
from tokenhouse.kit.timeutil import render
from tokenhouse.kit.wire import READ_ONLY, Audit, ReadOnlyFields, Ref, WireIn, WireOut
from tokenhouse.modules.schemas import ModuleSummary, render_module
from tokenhouse.tokens.lifecycle import MAX_GRACE_SECONDS, status_at
from tokenhouse.tokens.models import ApiToken

EXPIRES_AT_DOC = ("When the token stops working (`null`: never). Must be in the future; at most "
                  "the server's longest lifetime when one is configured.")
RATE_LIMIT_DOC = ("At most `limit` requests in `windowSeconds` (a burst of `limit`, then one "
                  "every `windowSeconds / limit`); `null`: no limit. Left out on create: the "
                  "server's default.")
STATUS_REASON_DOC = ("Why the service disabled the token: `Leaked` (its secret was reported; "
                     "it can be enabled only after a rotation). `null` otherwise.")
ALLOWLIST_DOC = ("The networks (CIDR, IPv4 or IPv6; a bare address is /32 or /128) the token "
                 "may be used from; `null` or `[]`: any address. Stored canonical.")


class RateLimitIn(WireIn):
    limit: StrictInt = Field(ge=1, le=MAX_LIMIT, description="Requests per window.")
    window_seconds: StrictInt = Field(ge=1, le=MAX_WINDOW, description="The window, in "
                                      "seconds.")


class TokenFields(ReadOnlyFields):
    description: str | None = Field(default=None, max_length=2000)
    icon: str | None = Field(default=None, max_length=2048)
    # Read-only on input: accepted so that a client can send back what it read.
    expires_at: AwareDatetime | None = Field(default=None, description=EXPIRES_AT_DOC)
    ip_allowlist: list[str] | None = Field(default=None, max_length=MAX_NETWORKS,
                                           description=ALLOWLIST_DOC)
    rate_limit: RateLimitIn | None = Field(default=None, description=RATE_LIMIT_DOC)
    status_reason: Any = Field(default=None, json_schema_extra=READ_ONLY)
    token: Any = Field(default=None, json_schema_extra=READ_ONLY)
    last_access_at: Any = Field(default=None, json_schema_extra=READ_ONLY)
    last_access_ips: Any = Field(default=None, json_schema_extra=READ_ONLY)
    previous_secret: Any = Field(default=None, json_schema_extra=READ_ONLY)


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


class TokenRotate(WireIn):
    """The body of a rotation (optional: `{}` and no body mean the defaults)."""

    grace_period_seconds: StrictInt = Field(
        default=0, ge=0, le=MAX_GRACE_SECONDS,
        description="How long the replaced secret keeps working (never past its own "
                    "expiry); 0: it stops at once.")
    expires_at: AwareDatetime | None = Field(
        default=None, description="The token's new expiry. Left out: a token that had one "
        "keeps the same lifetime from now; one that had none keeps none.")
    retire_previous_on_first_use: StrictBool = Field(
        default=False, description="The replaced secret stops working the moment the new "
        "one first authenticates a request (or at the end of the grace window).")


class RateLimitOut(WireOut):
    limit: int
    window_seconds: int


class AccessFrom(WireOut):
    ip: str
    at: str


class PreviousSecret(WireOut):
    expires_at: str = Field(description="When the replaced secret stops working.")
    last_access_at: str | None = Field(description="When it last authenticated a request "
                                       "since the rotation.")


class TokenOut(WireOut):
    id: str = Field(json_schema_extra=READ_ONLY)
    href: str = Field(json_schema_extra=READ_ONLY)
    name: str
    description: str | None
    icon: str | None
    status: str = Field(json_schema_extra=READ_ONLY, description="Changed by the enable and "
                        "disable actions and by a delete, never by a PUT. `Expired`: an "
                        "Active token past its `expiresAt` (computed).")
    status_reason: str | None = Field(json_schema_extra=READ_ONLY,
                                      description=STATUS_REASON_DOC)
    expires_at: str | None = Field(description=EXPIRES_AT_DOC)
    ip_allowlist: list[str] | None = Field(description=ALLOWLIST_DOC)
    rate_limit: RateLimitOut | None = Field(description=RATE_LIMIT_DOC)
    last_access_at: str | None = Field(json_schema_extra=READ_ONLY)
    last_access_ips: list[AccessFrom] = Field(
        json_schema_extra=READ_ONLY, description="The last distinct client addresses (up to "
        "5), newest first.")
    previous_secret: PreviousSecret | None = Field(
        json_schema_extra=READ_ONLY, description="The secret the last rotation replaced, "
        "while it still works.")
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


# The properties that change without a new revision (accesses, and the grace window as time
# passes), computed at response time; a token's kept view is split around them (views.py).
DYNAMIC = ("lastAccessAt", "lastAccessIps", "previousSecret", "token")


def render_token(token: ApiToken, *, now: datetime,
                 dynamic: dict[str, Any]) -> dict[str, Any]:
    """The representation; `dynamic`: the values of DYNAMIC, in that order (see
    tokens/views.spliced)."""
    body: dict[str, Any] = {
        "id": token.id,
        "href": href(token.id),
        "name": token.name,
        "description": token.description,
        "icon": token.icon,
        "status": status_at(token.status, token.expires_at, now),
        "statusReason": token.status_reason,
        "expiresAt": render(token.expires_at),
        "ipAllowlist": from_stored(token.ip_allowlist),
        "rateLimit": render_rate_limit(token),
        **dynamic,
    }
    body["account"] = render_account(token.account, full=False)
    body["modules"] = [render_module(module, audit=False) for module in token.modules]
    body["audit"] = token.render_audit()
    body["revision"] = token.revision
    return body


def token_document(token: ApiToken, now: datetime) -> dict[str, Any]:
    """The token as the audit trail keeps it: its representation without what changes with
    every use (accesses) and, above all, without any secret."""
    return render_token(token, now=now, dynamic={})


def token_subject(token: ApiToken) -> Subject:
    """The token as the object of an audit record, in its account's trail."""
    account = token.account
    return Subject(token.id, token.name, "ApiToken",
                   Party(account.id, account.name, account.type))


def render_rate_limit(token: ApiToken) -> dict[str, int] | None:
    quota = token.quota
    return None if quota is None else {"limit": quota.limit, "windowSeconds": quota.window}


class IntrospectionRequest(WireIn):
    """What introspection is asked (RFC 7662): JSON, or the form fields of the same names."""

    token: str = Field(max_length=1024, description="The secret to check.")
    client_ip: str | None = Field(
        default=None, max_length=64,
        description="The address the secret was presented from: a token with an IP "
                    "allowlist is active only when this is given and allowed.")
    token_type_hint: Any = Field(default=None, description="RFC 7662's hint; ignored.")
    consume: StrictBool = Field(
        default=True, description="Whether the check counts against the token's rate limit "
        "(`false`: it only reports what is left).")


class IntrospectedAccount(BaseModel):
    id: str
    name: str
    type: str


class IntrospectedModule(BaseModel):
    id: str
    name: str


class IntrospectedToken(BaseModel):
    id: str
    name: str
    account: IntrospectedAccount
    modules: list[IntrospectedModule]


class IntrospectedRateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    limit: int
    window_seconds: int = Field(alias="windowSeconds")
    remaining: int | None = Field(description="Requests left now (`null`: not known, the "
                                  "counter cannot be reached and the server fails open).")
    reset: int | None = Field(description="Seconds until the whole quota is back.")
    allowed: bool = Field(description="Whether this request is within the limit: answer 429 "
                          "when false.")


class IntrospectionOut(BaseModel):
    """RFC 7662's answer. Inactive: exactly `{"active": false}`, whatever the reason."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    active: bool
    token_type: str | None = Field(default=None, description="`api_token`.")
    jti: str | None = Field(default=None, description="The token's id.")
    sub: str | None = Field(default=None, description="The token's account.")
    scope: str | None = Field(default=None, description="The token's module ids, space "
                              "separated.")
    iat: int | None = Field(default=None, description="When its secret was issued (Unix "
                            "time).")
    exp: int | None = Field(default=None, description="When the secret stops working (Unix "
                            "time); left out when it does not expire.")
    api_token: IntrospectedToken | None = Field(default=None, alias="apiToken")
    rate_limit: IntrospectedRateLimit | None = Field(
        default=None, alias="rateLimit", description="The token's rate limit, when it has "
        "one, counted with this check unless `consume` was false.")
