"""Every table, imported in one place for Alembic and for tools that need the whole schema."""

from tokenhouse.accounts.models import Account, AccountIcon, UserGroup
from tokenhouse.audit.models import AuditRecord, EventType
from tokenhouse.kit.invalidation import AuthChange
from tokenhouse.modules.models import Module
from tokenhouse.tokens.models import ApiToken, token_modules

__all__ = ["Account", "AccountIcon", "ApiToken", "AuditRecord", "AuthChange", "EventType",
           "Module", "UserGroup", "token_modules"]
