"""Who may do what with the audit trail (see auth/permissions.py).

Reading and writing records, and reading the catalog of event types, need the Audit module
(any account type: each sees its own account's trail, Operations every record). Changing an
event type's description is the platform operator's (Operations, Audit)."""

from typing import Annotated

from fastapi import Depends

from tokenhouse.auth.actor import Actor
from tokenhouse.auth.dependencies import authorized
from tokenhouse.auth.permissions import Permission

AUDIT_MODULE = "Audit"

AUDIT = Permission(AUDIT_MODULE)
MANAGE_EVENT_TYPES = Permission(AUDIT_MODULE, operations_only=True,
                                reason="Only Operations tokens can change event types.")

Auditor = Annotated[Actor, Depends(authorized(AUDIT))]
EventTypesManager = Annotated[Actor, Depends(authorized(MANAGE_EVENT_TYPES))]
