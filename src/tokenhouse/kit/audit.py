"""Who changed what and when: the `audit` block and `revision` every resource carries."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from tokenhouse.kit.rql.schema import Obj, Scalar
from tokenhouse.kit.timeutil import render, utcnow


@dataclass(frozen=True)
class By:
    """The actor recorded in `audit.*.by`. None stands for the operator at the server's
    shell (the `tokenhouse` command), which is no API object."""

    id: str
    name: str
    href: str


class Audited:
    """Columns of `audit.created`, `audit.updated` and `revision`."""

    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[str | None] = mapped_column(String(32))
    created_by_name: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_by_id: Mapped[str | None] = mapped_column(String(32))
    updated_by_name: Mapped[str | None] = mapped_column(String(255))

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        # Optimistic concurrency: every UPDATE says "WHERE revision = <the one read>" and
        # bumps it, so of two requests that read the same revision only one can write; the
        # other fails with StaleDataError, rendered as 409. This holds on SQLite too, where
        # SELECT ... FOR UPDATE does not exist.
        return {"version_id_col": cls.revision}

    def stamp_created(self, by: By | None) -> None:
        self.created_at = utcnow()
        self.created_by_id = by.id if by else None
        self.created_by_name = by.name if by else None

    def stamp_updated(self, by: By | None) -> None:
        """Record the change; the mapper bumps `revision` when the row is written."""
        self.updated_at = utcnow()
        self.updated_by_id = by.id if by else None
        self.updated_by_name = by.name if by else None

    def render_audit(self) -> dict[str, Any]:
        audit: dict[str, Any] = {"created": _event(self.created_at, self.created_by_id,
                                                   self.created_by_name)}
        if self.updated_at is not None:
            audit["updated"] = _event(self.updated_at, self.updated_by_id, self.updated_by_name)
        return audit


def audit_schema(model: Any, *, default: bool) -> Obj:
    """The `audit` block of a resource's query schema (filterable, and selectable)."""

    def by(id_column: Any, name_column: Any) -> Obj:
        return Obj({"id": Scalar("string", id_column), "name": Scalar("string", name_column),
                    "icon": Scalar("string"), "href": Scalar("string")},
                   presence=id_column)

    return Obj({
        "created": Obj({"at": Scalar("datetime", model.created_at, nullable=False),
                        "by": by(model.created_by_id, model.created_by_name)}),
        "updated": Obj({"at": Scalar("datetime", model.updated_at),
                        "by": by(model.updated_by_id, model.updated_by_name)},
                       presence=model.updated_at),
    }, default=default)


def _event(at: datetime, by_id: str | None, by_name: str | None) -> dict[str, Any]:
    by = None
    if by_id is not None:
        by = {"id": by_id, "name": by_name, "icon": None, "href": _href_of(by_id)}
    return {"at": render(at), "by": by}


def _href_of(object_id: str) -> str | None:
    if object_id.startswith("TKN-"):
        return f"/public/v1/accounts/api-tokens/{object_id}"
    return None
