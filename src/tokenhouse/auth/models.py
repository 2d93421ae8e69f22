from datetime import datetime

from sqlalchemy import DateTime, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from tokenhouse.kit.db import Base


class AuthChange(Base):
    """A change that invalidates cached credentials, or a `seen` note of lastAccessAt values,
    for processes sharing a SQLite file (PostgreSQL announces them with NOTIFY instead; see
    auth/invalidation.py)."""

    __tablename__ = "auth_changes"
    # Ids never go back, even after the clean-up empties the table: pollers read `id > last
    # seen` (migration 0006).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
