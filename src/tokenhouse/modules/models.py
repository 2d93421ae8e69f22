from typing import Any

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tokenhouse.kit.audit import Audited
from tokenhouse.kit.db import Base, JsonDoc

ACCESS_MANAGEMENT = "Access Management"
ACCOUNT_MANAGEMENT = "Account Management"


class Module(Audited, Base):
    __tablename__ = "modules"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    account_types: Mapped[list[str]] = mapped_column(JsonDoc)
    is_enabled_by_default: Mapped[bool] = mapped_column(Boolean, default=False)
    is_configurable: Mapped[bool] = mapped_column(Boolean, default=False)
    paid: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    filters: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
