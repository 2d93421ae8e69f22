"""Who may do what with API tokens (see auth/permissions.py).

Reading one token needs only a valid token: a token may always read itself (that is how a
client learns its own account); reading any other token, listing, and every change need
Access Management. The service checks the same rules again for every change."""

from typing import Annotated

from fastapi import Depends

from tokenhouse.auth.actor import Actor
from tokenhouse.auth.dependencies import authorized
from tokenhouse.auth.permissions import Permission
from tokenhouse.modules.models import ACCESS_MANAGEMENT

MANAGE = Permission(ACCESS_MANAGEMENT)

# The actor of a route that lists, creates or changes tokens.
TokensManager = Annotated[Actor, Depends(authorized(MANAGE))]
