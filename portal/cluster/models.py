"""The change feed: one row per committed change that other processes must notice."""

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base


class ChangeRecord(Base):
    __tablename__ = "change_feed"

    seq: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime]
