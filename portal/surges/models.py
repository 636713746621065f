"""Ticket vectors and their similarity groups, surges, and problems with linked incidents."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.auth.models import User
from portal.db import Base, utcnow
from portal.tickets.models import Ticket


class SimilarGroup(Base):
    """Tickets that read alike: the running sum of their vectors gives the centroid."""

    __tablename__ = "similar_groups"
    __table_args__ = (Index("ix_similar_groups_last", "last_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vector_sum: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime] = mapped_column(DateTime)
    last_at: Mapped[datetime] = mapped_column(DateTime)
    # "Not a surge" silences the group until then.
    quiet_until: Mapped[datetime | None] = mapped_column(DateTime)

    def sum_array(self) -> np.ndarray:
        return np.frombuffer(self.vector_sum, dtype=np.float32)


class TicketVector(Base):
    """A ticket's embedding (subject + first message) and the group it joined."""

    __tablename__ = "ticket_vectors"
    __table_args__ = (
        Index("ix_ticket_vectors_created_group", "ticket_created_at", "group_id"),
        Index("ix_ticket_vectors_group_created", "group_id", "ticket_created_at"),
        Index("ix_ticket_vectors_embedded", "embedded_at"),  # the scan's new rows
    )

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("similar_groups.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(60))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    similarity: Mapped[float] = mapped_column(Float)  # to the group's centroid when it joined
    ticket_created_at: Mapped[datetime] = mapped_column(DateTime)
    embedded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    ticket: Mapped[Ticket] = relationship()

    def array(self) -> np.ndarray:
        return np.frombuffer(self.vector, dtype=np.float32)


class Surge(Base):
    """A group whose recent rate stood out against its own baseline."""

    __tablename__ = "surges"
    __table_args__ = (Index("ix_surges_status_detected", "status", "detected_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("similar_groups.id", ondelete="CASCADE"),
                                          index=True)
    # The group's id while the surge is open, NULL after: unique, so one open surge per group
    # however many workers scan at once.
    open_group_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | ended | dismissed
    sensitivity: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))  # the most representative subject
    words: Mapped[str] = mapped_column(String(200), default="")  # what sets it apart
    # The centre of its tickets when raised: later tickets this close join it.
    center: Mapped[bytes] = mapped_column(LargeBinary)
    # Centres of the same spike's other neighbourhoods, merged into it later (concatenated).
    extra_centers: Mapped[bytes | None] = mapped_column(LargeBinary)
    window_minutes: Mapped[int] = mapped_column(Integer)
    count_at_alert: Mapped[int] = mapped_column(Integer)
    expected: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float] = mapped_column(Float)
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    # Members per 10 minutes over the last two hours, comma separated (the strip's sparkline:
    # kept on the row so the queue's strip is one query).
    sparkline: Mapped[str] = mapped_column(String(200), default="")
    first_at: Mapped[datetime] = mapped_column(DateTime)
    last_at: Mapped[datetime] = mapped_column(DateTime)
    detected_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The last scan that found its rate at the alert level; two hours below it end the surge.
    surging_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    acted_at: Mapped[datetime | None] = mapped_column(DateTime)
    problem_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    notified_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"))

    problem: Mapped[Ticket | None] = relationship(foreign_keys=[problem_id])
    members: Mapped[list[SurgeMember]] = relationship(
        back_populates="surge", order_by="SurgeMember.ticket_id")

    @property
    def minutes(self) -> int:
        return max(1, round((self.last_at - self.first_at).total_seconds() / 60))

    def center_array(self) -> np.ndarray:
        return np.frombuffer(self.center, dtype=np.float32)

    def centers(self) -> np.ndarray:
        """Its first centre and those merged into it, one row each."""
        first = self.center_array()
        if not self.extra_centers:
            return first[None, :]
        extra = np.frombuffer(self.extra_centers, dtype=np.float32).reshape(-1, len(first))
        return np.vstack([first, extra])

    def add_center(self, center: np.ndarray) -> None:
        self.extra_centers = (self.extra_centers or b"") + \
            np.asarray(center, dtype=np.float32).tobytes()

    def sparkline_values(self) -> list[int]:
        return [int(v) for v in self.sparkline.split(",") if v.isdigit()]


class SurgeMember(Base):
    __tablename__ = "surge_members"

    surge_id: Mapped[int] = mapped_column(ForeignKey("surges.id", ondelete="CASCADE"),
                                          primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"),
                                           primary_key=True, index=True)
    similarity: Mapped[float] = mapped_column(Float)  # to the group's centroid
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    surge: Mapped[Surge] = relationship(back_populates="members")
    ticket: Mapped[Ticket] = relationship()


class SurgeFeedback(Base):
    """What an agent did with a surge: the record for reports and for tuning."""

    __tablename__ = "surge_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    surge_id: Mapped[int] = mapped_column(ForeignKey("surges.id", ondelete="CASCADE"),
                                          index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    verdict: Mapped[str] = mapped_column(String(20))  # not_a_surge | new_problem | linked
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user: Mapped[User | None] = relationship()


class ProblemIncident(Base):
    """An incident linked to a problem ticket; an incident belongs to one problem at most."""

    __tablename__ = "problem_incidents"
    __table_args__ = (Index("ix_problem_incidents_problem", "problem_id", "incident_id"),)

    incident_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"),
                                             primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    # Solving the problem solves this incident too, unless an agent opted it out.
    solve_with_problem: Mapped[bool] = mapped_column(Boolean, default=True)
    linked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    linked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    incident: Mapped[Ticket] = relationship(foreign_keys=[incident_id])
    problem: Mapped[Ticket] = relationship(foreign_keys=[problem_id])


class KnownIssue(Base):
    """An open problem published to customers with a short public text."""

    __tablename__ = "known_issues"

    problem_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"),
                                            primary_key=True)
    public_text: Mapped[str] = mapped_column(String(300))
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    published_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    problem: Mapped[Ticket] = relationship()


class ProblemFollower(Base):
    """Someone affected who follows a problem without filing a ticket (a deflection)."""

    __tablename__ = "problem_followers"
    __table_args__ = (UniqueConstraint("problem_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"),
                                            index=True)
    email: Mapped[str] = mapped_column(String(254))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Set by the unsubscribe link: no more emails, but still counted as a deflection.
    unfollowed_at: Mapped[datetime | None] = mapped_column(DateTime)
