"""Who may do what with API tokens (see auth/permissions.py).

Reading one token needs only a valid token: a token may always read itself (that is how a
client learns its own account); reading any other token, listing, and every change need
Access Management; introspecting another token needs an Operations token with it. The
service checks the same rules again."""

from typing import Annotated

from fastapi import Depends

from tokenhouse.auth.actor import Actor
from tokenhouse.auth.dependencies import authorized
from tokenhouse.auth.permissions import Permission
from tokenhouse.modules.models import ACCESS_MANAGEMENT

MANAGE = Permission(ACCESS_MANAGEMENT)

# The actor of a route that lists, creates or changes tokens.
TokensManager = Annotated[Actor, Depends(authorized(MANAGE))]

# Introspection (RFC 7662) answers "who is this bearer" for the platform's own services: an
# Operations account's token holding Access Management.
INTROSPECT = Permission(ACCESS_MANAGEMENT, operations_only=True,
                        reason="Only the platform's own services (an Operations token with "
                               "Access Management) may introspect tokens.")
Introspector = Annotated[Actor, Depends(authorized(INTROSPECT))]
