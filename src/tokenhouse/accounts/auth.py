"""Who may do what with accounts (see auth/permissions.py).

Every token reads its own account (Operations: every account); creating and changing
accounts is the platform operator's business: an Operations token with Account Management.
The service checks the same rule again for every change."""

from typing import Annotated

from fastapi import Depends

from tokenhouse.auth.actor import Actor
from tokenhouse.auth.dependencies import authorized
from tokenhouse.auth.permissions import Permission
from tokenhouse.modules.models import ACCOUNT_MANAGEMENT

MANAGE = Permission(ACCOUNT_MANAGEMENT, operations_only=True,
                    reason="Only Operations tokens can create or change accounts.")

# The actor of a route that creates or changes accounts.
AccountsManager = Annotated[Actor, Depends(authorized(MANAGE))]
