"""Who may do what with webhooks (see auth/permissions.py): the Audit module, as for the
records they carry (any account type; each its own account's webhooks, Operations all)."""

from typing import Annotated

from fastapi import Depends

from tokenhouse.audit.auth import AUDIT_MODULE
from tokenhouse.auth.actor import Actor
from tokenhouse.auth.dependencies import authorized
from tokenhouse.auth.permissions import Permission

MANAGE = Permission(AUDIT_MODULE)

WebhooksManager = Annotated[Actor, Depends(authorized(MANAGE))]
