"""What an operation requires of its actor, declared once and checked in two places.

Each domain's `auth.py` declares its permissions; a route takes the actor through the
permission's dependency (so 401 and 403 are decided before the route reads anything), and
the service that changes data checks the same permission again (so that the command line, the
web page and any future caller are covered even where no route stands in front).
"""

from dataclasses import dataclass

from tokenhouse.auth.actor import Actor
from tokenhouse.kit.problems import Forbidden


@dataclass(frozen=True, slots=True)
class Permission:
    """A module the actor's token must hold; `operations_only`: and the actor must be the
    platform operator (an Operations account's token)."""

    module: str
    operations_only: bool = False
    reason: str = ""

    def check(self, actor: Actor) -> None:
        """403 unless the actor has this permission."""
        if self.operations_only and not actor.is_operations:
            raise Forbidden(self.reason or "Only Operations tokens can do this.")
        actor.require(self.module)
