"""The module wire shapes."""

from typing import Any

from pydantic import Field

from tokenhouse.kit.wire import Audit, WireOut
from tokenhouse.modules.models import Module


class ModuleSettings(WireOut):
    shared_account: bool
    configurable: bool
    default: bool
    paid: bool
    type: list[str]


class ModuleSummary(WireOut):
    """A module as a token shows it (without audit and revision)."""

    id: str
    href: str
    name: str
    description: str | None
    account_types: list[str]
    is_enabled_by_default: bool
    is_configurable: bool
    paid: bool
    settings: ModuleSettings
    filters: dict[str, list[str]]


class ModuleOut(ModuleSummary):
    audit: Audit | None = None
    revision: int | None = None
    meta: dict[str, Any] | None = Field(default=None, alias="$meta")


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



