"""Every table, imported in one place for Alembic and for tools that need the whole schema."""

from tokenhouse.accounts.models import Account, AccountIcon, UserGroup
from tokenhouse.audit.models import AuditRecord, EventType
from tokenhouse.kit.invalidation import AuthChange
from tokenhouse.kit.lease import JobLease
from tokenhouse.modules.models import Module
from tokenhouse.tokens.models import ApiToken, token_modules
from tokenhouse.webhooks.models import Delivery, Webhook

__all__ = ["Account", "AccountIcon", "ApiToken", "AuditRecord", "AuthChange", "Delivery",
           "EventType", "JobLease", "Module", "UserGroup", "Webhook", "token_modules"]
