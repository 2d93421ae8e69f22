"""What an audit record is about, and the accounts it names (no dependency: every domain
describes its objects with these)."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Party:
    """An account as a record names it (an object's owner, a viewer)."""

    id: str
    name: str
    type: str

    def viewer(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": self.type, "icon": None}


@dataclass(frozen=True, slots=True)
class Subject:
    """What a record is about."""

    id: str
    name: str | None
    object_type: str
    account: Party | None  # whose trail holds the record; None: Operations' alone
