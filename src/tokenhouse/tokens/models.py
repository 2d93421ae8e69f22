import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tokenhouse.accounts.models import Account
from tokenhouse.kit.audit import Audited
from tokenhouse.kit.db import Base
from tokenhouse.kit.ratelimit import Quota
from tokenhouse.modules.models import Module


class TokenStatus(enum.StrEnum):
    ACTIVE = "Active"
    DISABLED = "Disabled"
    DELETED = "Deleted"
    # Computed, never stored: an Active token whose `expires_at` has passed (see
    # tokens/lifecycle.py).
    EXPIRED = "Expired"


class StatusReason(enum.StrEnum):
    # Its secret was reported (the revoke-leaked route): enabled again only after a rotation.
    LEAKED = "Leaked"


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
    # NULL: never expires. Indexed for `lt(expiresAt,...)` and the expiry jobs.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # When the current secret was issued by a rotation (NULL: at creation). A rotation
    # without a new expiry gives the new secret the lifetime the old one had from here.
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The secret replaced by the last rotation, while its grace window lasts (its keyed hash,
    # as for `secret_hash`), until `previous_expires_at`; and when it last authenticated a
    # request since that rotation. NULL hash: only the current secret works.
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    previous_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    previous_last_access_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The previous secret ends the moment the current one first authenticates a request.
    retire_previous_on_first_use: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false())
    # Canonical networks, comma-separated (`10.0.0.0/8,2001:db8::/32`); NULL: any address.
    # Plain text, not JSON: the credential look-up reads it on the driver's own connection
    # (kit/direct.py), where no SQLAlchemy result processor runs.
    ip_allowlist: Mapped[str | None] = mapped_column(Text)
    # Up to 5 distinct client addresses, newest first, as JSON text of the wire shape
    # (`[{"ip": ..., "at": ...}]`), written with `last_access_at` (tokens/last_access.py).
    last_access_ips: Mapped[str | None] = mapped_column(Text)
    # At most `rate_limit` requests in any `rate_limit_window` seconds (both NULL: no limit;
    # both set or neither). Counted by kit/ratelimit.py.
    rate_limit: Mapped[int | None] = mapped_column(Integer)
    rate_limit_window: Mapped[int | None] = mapped_column(Integer)
    # Why a Disabled token is Disabled, when the service disabled it (`Leaked`: its secret
    # was reported, and it cannot be enabled before it is rotated); NULL otherwise.
    status_reason: Mapped[str | None] = mapped_column(String(32))

    @property
    def quota(self) -> Quota | None:
        """The rate limit the two columns hold (None: no limit)."""
        if self.rate_limit is None or self.rate_limit_window is None:
            return None
        return Quota(self.rate_limit, self.rate_limit_window)

    @quota.setter
    def quota(self, value: Quota | None) -> None:
        self.rate_limit = value.limit if value is not None else None
        self.rate_limit_window = value.window if value is not None else None
    # How far the expiry job has told of `expires_at` (tokens/expiry.py: 0 nothing, then
    # 30 days, 7 days, 1 day, expired); back to 0 when the expiry changes.
    expiry_notice: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")

    account: Mapped[Account] = relationship(lazy="joined", innerjoin=True)
    modules: Mapped[list[Module]] = relationship(
        secondary=token_modules, lazy="selectin", order_by=Module.id)
