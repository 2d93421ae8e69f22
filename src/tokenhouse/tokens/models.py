import enum
from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Index, String, Table, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tokenhouse.accounts.models import Account
from tokenhouse.kit.audit import Audited
from tokenhouse.kit.db import Base
from tokenhouse.modules.models import Module


class TokenStatus(enum.StrEnum):
    ACTIVE = "Active"
    DISABLED = "Disabled"
    DELETED = "Deleted"


token_modules = Table(
    "api_token_modules",
    Base.metadata,
    Column("token_id", ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True),
    Column("module_id", ForeignKey("modules.id"), primary_key=True, index=True),
)


class ApiToken(Audited, Base):
    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("ix_api_tokens_account_id_status", "account_id", "status"),
        Index("ix_api_tokens_account_id_status_created_at", "account_id", "status",
              text("created_at DESC"), "id"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    icon: Mapped[str | None] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default=TokenStatus.ACTIVE)
    # HMAC-SHA256 of the secret (hex). Never the secret itself. NULL for an imported token
    # whose hash was not exported: it cannot authenticate until it is recreated. Indexed, not
    # UNIQUE: PostgreSQL would print a clashing hash in its log (migration 0007).
    secret_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    last_access_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    account: Mapped[Account] = relationship(lazy="joined", innerjoin=True)
    modules: Mapped[list[Module]] = relationship(
        secondary=token_modules, lazy="selectin", order_by=Module.id)
