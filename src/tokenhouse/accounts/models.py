import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tokenhouse.kit.audit import Audited
from tokenhouse.kit.db import Base, JsonDoc


class AccountType(enum.StrEnum):
    CLIENT = "Client"
    VENDOR = "Vendor"
    OPERATIONS = "Operations"


class AccountStatus(enum.StrEnum):
    ACTIVE = "Active"
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class Account(Audited, Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    type: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), default=AccountStatus.ACTIVE)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_name: Mapped[str | None] = mapped_column(String(255))
    pyra_tenant_id: Mapped[str | None] = mapped_column(String(36))
    service_level: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    technical_support_email: Mapped[str | None] = mapped_column(String(320))
    website: Mapped[str | None] = mapped_column(String(2048))

    # Loaded only where an account is shown whole (accounts/repository.py, exports): a token's
    # account never needs them, and loading them on every token read cost a query.
    groups: Mapped[list["UserGroup"]] = relationship(
        back_populates="account", lazy="raise", order_by="UserGroup.id")
    # Set when an icon is uploaded: the representation links to it without loading the bytes.
    icon_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def is_operations(self) -> bool:
        return self.type == AccountType.OPERATIONS

    @property
    def is_disabled(self) -> bool:
        return self.status == AccountStatus.DISABLED


class AccountIcon(Base):
    """An uploaded icon, kept apart so that reading an account never loads its bytes."""

    __tablename__ = "account_icons"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(128))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class UserGroup(Audited, Base):
    __tablename__ = "user_groups"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    logo: Mapped[str | None] = mapped_column(String(2048))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)

    account: Mapped[Account] = relationship(back_populates="groups")
