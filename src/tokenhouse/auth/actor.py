"""Who is acting: an API token (with its account and modules), or the server's operator."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from tokenhouse.accounts.models import AccountType
from tokenhouse.kit.audit import By
from tokenhouse.kit.problems import Forbidden

if TYPE_CHECKING:
    from tokenhouse.kit.addresses import Allowlist
    from tokenhouse.kit.ratelimit import Quota
    from tokenhouse.tokens.views import View


@dataclass(frozen=True, slots=True)
class Actor:
    account_id: str | None
    account_type: str
    modules: frozenset[str]  # module names the credential may use
    module_ids: frozenset[str]
    token_id: str | None = None
    token_name: str | None = None
    account_name: str | None = None  # as the audit trail shows the actor
    # time.time() from which this credential no longer works (the token's expiry, or the end
    # of the grace window of a replaced secret), or None. A cached credential is not served
    # from then on (auth/cache.py); the database then says why.
    valid_until: float | None = None
    # The token's expiry as rendered, for the API-Token-Expiration header; None: never.
    expiration: str | None = None
    # The networks the token may be used from (None: any address).
    allowlist: "Allowlist | None" = field(default=None, compare=False)
    # The end of the grace window when the credential is the secret a rotation replaced
    # (its uses are recorded for that window, see tokens/last_access.py); else None.
    window: datetime | None = None
    # The token's rate limit (kit/ratelimit.py), counted by authentication; None: none.
    rate_limit: "Quota | None" = None
    # The acting token's representation, read with the credential by this request's
    # authentication (a first-seen token: one round trip for both). Never on a cached actor.
    own_view: "View | None" = field(default=None, compare=False, repr=False)

    @property
    def is_operations(self) -> bool:
        """The platform operator: sees and manages every account."""
        return self.account_type == AccountType.OPERATIONS

    @property
    def by(self) -> By | None:
        if self.token_id is None:
            return None
        return By(id=self.token_id, name=self.token_name or "",
                  href=f"/public/v1/accounts/api-tokens/{self.token_id}")

    def require(self, module: str) -> None:
        if module not in self.modules:
            raise Forbidden(f"This token is not allowed to use the {module} module.")


def system_actor(module_names: frozenset[str], module_ids: frozenset[str]) -> Actor:
    """The operator at the server's shell (the `tokenhouse` command): Operations rights, every
    module, no token. Recorded in audits as `by: null`."""
    return Actor(account_id=None, account_type=AccountType.OPERATIONS, modules=module_names,
                 module_ids=module_ids)


# The service acting on its own (its jobs, a leak report, an import at the shell): no token,
# no module. Audit records show it as `system`.
SYSTEM = system_actor(frozenset(), frozenset())
