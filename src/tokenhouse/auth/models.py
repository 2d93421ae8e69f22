from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenhouse.kit.db import Base


class AuthChange(Base):
    """A change that invalidates cached credentials, for processes sharing a SQLite file
    (PostgreSQL announces changes with NOTIFY instead; see auth/invalidation.py)."""

    __tablename__ = "auth_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
