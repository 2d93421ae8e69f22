"""The module wire shapes."""

from typing import Any

from pydantic import Field

from tokenhouse.kit.wire import READ_ONLY, Audit, WireOut
from tokenhouse.modules.models import Module


class ModuleSettings(WireOut):
    shared_account: bool
    configurable: bool
    default: bool
    paid: bool
    type: list[str]


class ModuleSummary(WireOut):
    """A module as a token shows it (without audit and revision)."""

    id: str = Field(json_schema_extra=READ_ONLY)
    href: str = Field(json_schema_extra=READ_ONLY)
    name: str
    description: str | None
    account_types: list[str]
    is_enabled_by_default: bool
    is_configurable: bool
    paid: bool
    settings: ModuleSettings
    filters: dict[str, list[str]]


class ModuleOut(ModuleSummary):
    audit: Audit | None = Field(default=None, json_schema_extra=READ_ONLY)
    revision: int | None = Field(default=None, json_schema_extra=READ_ONLY)
    meta: dict[str, Any] | None = Field(default=None, alias="$meta",
                                        json_schema_extra=READ_ONLY)


def href(module_id: str) -> str:
    return f"/public/v1/accounts/modules/{module_id}"


def render_module(module: Module, *, audit: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": module.id,
        "href": href(module.id),
        "name": module.name,
        "description": module.description,
        "accountTypes": list(module.account_types),
        "isEnabledByDefault": module.is_enabled_by_default,
        "isConfigurable": module.is_configurable,
        "paid": module.paid,
        "settings": dict(module.settings),
        "filters": dict(module.filters),
    }
    if audit:
        body["audit"] = module.render_audit()
        body["revision"] = module.revision
    return body



