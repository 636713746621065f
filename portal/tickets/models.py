"""Tickets: the system of record for one customer issue, with its thread and timeline."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.auth.models import Organization, User
from portal.db import Base, utcnow

REFERENCE_PREFIX = "TKT-"
REFERENCE_OFFSET = 1000  # TKT-1001 is ticket id 1: the number comes from the database id


def _str_enum(cls):
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class Status(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"  # awaiting the customer
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TicketType(enum.StrEnum):
    QUESTION = "question"
    INCIDENT = "incident"
    PROBLEM = "problem"
    REQUEST = "request"


class Channel(enum.StrEnum):
    WEB = "web"
    EMAIL = "email"
    AGENT = "agent"
    API = "api"


group_members = Table(
    "group_members",
    Base.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

ticket_tags = Table(
    "ticket_tags",
    Base.metadata,
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


# The unsolved statuses (routing.OPEN_STATUSES), written out as literals: the predicate of the
# open-ticket partial indexes, and the condition that lets a query use them (the planners prove
# a partial index applies only from the same literal terms, not from bound parameters).
OPEN_STATUS_VALUES = ("new", "open", "pending", "on_hold")
OPEN_PREDICATE = "status IN ({})".format(", ".join(f"'{v}'" for v in OPEN_STATUS_VALUES))


# The waiting tickets the SLA check may still have to act on: not escalated, or a target not
# yet flagged as breached (migration scale6_0001; portal.agent.jobs.check_sla states it too).
SLA_CHECK_PREDICATE = {
    "sqlite": "status IN ('new', 'open', 'on_hold') AND (escalated_at IS NULL OR "
              "resolution_breached = 0 OR (first_response_at IS NULL AND "
              "first_response_breached = 0))",
    "postgresql": "status IN ('new', 'open', 'on_hold') AND (escalated_at IS NULL OR NOT "
                  "resolution_breached OR (first_response_at IS NULL AND NOT "
                  "first_response_breached))",
}


def _open_tickets_index(name: str, *columns: str) -> Index:
    return Index(name, *columns, sqlite_where=text(OPEN_PREDICATE),
                 postgresql_where=text(OPEN_PREDICATE))


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # Assign new tickets round-robin to the least-loaded active member.
    auto_assign: Mapped[bool] = mapped_column(Boolean, default=False)

    members: Mapped[list[User]] = relationship(secondary=group_members)


class TicketCategory(Base):
    """The category list admins keep; each can route new tickets to a group."""

    __tablename__ = "ticket_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))

    group: Mapped[Group | None] = relationship()


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_activity", "status", "last_activity_at"),
        Index("ix_tickets_assignee_status", "assignee_id", "status"),
        Index("ix_tickets_group_status", "group_id", "status"),
        Index("ix_tickets_requester_activity", "requester_id", "last_activity_at"),
        Index("ix_tickets_org_activity", "organization_id", "last_activity_at"),
        Index("ix_tickets_status_resolution_due", "status", "resolution_due_at"),
        # Agent workspace (migration 0004_agent): queue sorts and tabs, and report ranges.
        Index("ix_tickets_status_priority_due", "status", "priority", "resolution_due_at"),
        Index("ix_tickets_status_first_due", "status", "first_response_at",
              "first_response_due_at"),
        # Covering indexes: the reports read these columns for every ticket in the period, and
        # the report filters (priority, group, category; assignee) are in them too, so a
        # filtered report reads no table rows either (migration scale_0001).
        Index("ix_tickets_first_response_report", "first_response_at", "created_at",
              "assignee_id", "first_response_due_at", "first_response_breached", "priority",
              "group_id", "category_id"),
        Index("ix_tickets_solved_report", "solved_at", "created_at", "assignee_id",
              "merged_into_id", "public_reply_count", "reopen_count", "resolution_due_at",
              "resolution_breached", "priority", "group_id", "category_id"),
        Index("ix_tickets_csat_report", "csat_at", "csat_rating", "assignee_id", "priority",
              "group_id", "category_id"),
        # Tickets created in the period with every report filter (migration 0004_agent_search).
        Index("ix_tickets_created_report", "created_at", "priority", "assignee_id", "group_id",
              "category_id", "requester_id"),
        # The queue's default order (SLA due) of the unsolved tickets, all of them or one
        # assignee's (or nobody's), read in order instead of sorting every unsolved ticket of
        # the history; with the report filters, the reports' "open now" per assignee reads
        # the second alone (migration scale3_0001).
        # With every queue filter and the "Due soon" columns, checked inside the index while
        # walking it (migration scale4_0001); ix_tickets_due: the same order for all tickets.
        _open_tickets_index("ix_tickets_open_due", "resolution_due_at", "id", "status",
                            "priority", "group_id", "category_id", "assignee_id", "type",
                            "first_response_at", "first_response_due_at"),
        Index("ix_tickets_due", "resolution_due_at", "id"),
        _open_tickets_index("ix_tickets_open_assignee_due", "assignee_id", "resolution_due_at",
                            "id", "priority", "group_id", "category_id"),
        # The unsolved tickets by last activity, the queue's "Updated" order (scale4_0003).
        _open_tickets_index("ix_tickets_open_activity", "last_activity_at", "id"),
        Index("ix_tickets_sla_check", "resolution_due_at", "first_response_due_at",
              sqlite_where=text(SLA_CHECK_PREDICATE["sqlite"]),
              postgresql_where=text(SLA_CHECK_PREDICATE["postgresql"])),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    status: Mapped[Status] = mapped_column(_str_enum(Status), default=Status.NEW)
    priority: Mapped[Priority] = mapped_column(_str_enum(Priority), default=Priority.NORMAL)
    type: Mapped[TicketType] = mapped_column(_str_enum(TicketType), default=TicketType.QUESTION)
    channel: Mapped[Channel] = mapped_column(_str_enum(Channel), default=Channel.WEB)
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket_categories.id", ondelete="SET NULL"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Visitors who filed without an account; also kept for registered requesters.
    requester_name: Mapped[str] = mapped_column(String(120))
    requester_email: Mapped[str] = mapped_column(String(254), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL")
    )
    # The form's one-time key: a double submit finds the ticket it already made.
    submission_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    follow_up_of_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime)
    solved_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    public_reply_count: Mapped[int] = mapped_column(Integer, default=0)  # agent replies

    # SLA: due times are computed when the ticket opens or its priority changes; the clock
    # pauses while the ticket awaits the customer (paused_at set, paused seconds added back).
    first_response_due_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(DateTime)
    sla_paused_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_response_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    resolution_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime)
    stale_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)  # last idle alert

    csat_rating: Mapped[str | None] = mapped_column(String(10))  # "good" | "bad"
    csat_comment: Mapped[str] = mapped_column(Text, default="")
    csat_at: Mapped[datetime | None] = mapped_column(DateTime)

    category: Mapped[TicketCategory | None] = relationship()
    group: Mapped[Group | None] = relationship()
    requester: Mapped[User | None] = relationship(foreign_keys=[requester_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    organization: Mapped[Organization | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=ticket_tags, order_by=Tag.name)
    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.created_at, Message.id"
    )
    ccs: Mapped[list[TicketCC]] = relationship(back_populates="ticket")

    @property
    def reference(self) -> str:
        return reference_of(self.id)

    @staticmethod
    def id_from_reference(reference: str) -> int | None:
        """`TKT-1042` -> 42; anything else -> None."""
        ref = reference.strip().upper()
        if not ref.startswith(REFERENCE_PREFIX):
            return None
        number = ref[len(REFERENCE_PREFIX) :]
        # ASCII only: str.isdigit() also accepts "²" and "①", which int() refuses (a 500).
        if not (number.isascii() and number.isdigit()) or len(number) > 12:
            return None
        ticket_id = int(number) - REFERENCE_OFFSET
        return ticket_id if ticket_id > 0 else None


def reference_of(ticket_id: int) -> str:
    """Ticket id 42 -> `TKT-1042` (the inverse of Ticket.id_from_reference), also for rows
    read without loading the ticket."""
    return f"{REFERENCE_PREFIX}{ticket_id + REFERENCE_OFFSET}"


def is_open() -> ColumnElement[bool]:
    """`tickets.status IN ('new', 'open', 'pending', 'on_hold')` with literal values, so that
    the open-ticket partial indexes can answer."""
    return Ticket.status.in_([literal_column(f"'{v}'") for v in OPEN_STATUS_VALUES])


class TicketCC(Base):
    __tablename__ = "ticket_ccs"
    __table_args__ = (UniqueConstraint("ticket_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))

    ticket: Mapped[Ticket] = relationship(back_populates="ccs")


class Message(Base):
    """One entry of the conversation: a public message, or an agents-only internal note."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_ticket_created", "ticket_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(String(120))
    from_agent: Mapped[bool] = mapped_column(Boolean, default=False)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)
    channel: Mapped[Channel] = mapped_column(_str_enum(Channel), default=Channel.WEB)
    submission_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    author: Mapped[User | None] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message")


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))  # the safe name shown and downloaded
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)  # random, on disk
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    message: Mapped[Message | None] = relationship(back_populates="attachments")


REPORT_FILTER_COPIES = ("ticket_priority", "ticket_group_id", "ticket_category_id",
                        "ticket_assignee_id")


class TicketEvent(Base):
    """The activity timeline: every change with actor and time. `public` events reach the
    customer's view; the rest are for agents only."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        Index("ix_ticket_events_ticket_created", "ticket_id", "created_at"),
        # Agent reports (migrations 0004_agent, 0004_agent_search, scale3_0002): status
        # changes per day, filtered by their tickets' report filters, without table reads.
        Index("ix_ticket_events_kind_value_created", "kind", "new_value", "created_at",
              "old_value", "ticket_id", *REPORT_FILTER_COPIES),
        # Also serves every (kind, created_at) look-up: it replaced ix_ticket_events_kind_created,
        # which SQLite preferred over it and then read the table rows.
        Index("ix_ticket_events_kind_created_actor", "kind", "created_at", "actor_id",
              "ticket_id", *REPORT_FILTER_COPIES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # created, status, priority, type, category, group, assignee, tags, reply, note, rating,
    # breach, escalation, merge, attachment
    kind: Mapped[str] = mapped_column(String(30))
    old_value: Mapped[str | None] = mapped_column(String(200))
    new_value: Mapped[str | None] = mapped_column(String(200))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The ticket's report filters, as they are now: copied from the ticket by the database
    # when the event is written and whenever the ticket's value changes (triggers, migration
    # scale3_0002), so a filtered report reads one index range instead of looking up the
    # ticket of every event of the period. Not written by the application.
    ticket_priority: Mapped[Priority | None] = mapped_column(_str_enum(Priority))
    ticket_group_id: Mapped[int | None] = mapped_column(Integer)
    ticket_category_id: Mapped[int | None] = mapped_column(Integer)
    ticket_assignee_id: Mapped[int | None] = mapped_column(Integer)

    actor: Mapped[User | None] = relationship()


class ReportDay(Base):
    """Per day, kept by the database (triggers, migration scale4_0002) in the transaction of
    every change: tickets created that day (and of those, how many were ever escalated),
    "status -> solved" events and reopenings ("solved -> open"). The unfiltered report reads a
    row per day instead of every ticket and status change of the period. Not written by the
    application."""

    __tablename__ = "report_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    created: Mapped[int] = mapped_column(Integer, default=0)
    escalated: Mapped[int] = mapped_column(Integer, default=0)
    solved: Mapped[int] = mapped_column(Integer, default=0)
    reopened: Mapped[int] = mapped_column(Integer, default=0)


class ReportAgentDay(Base):
    """Public replies per author and day, kept like ReportDay (reply events with an author)."""

    __tablename__ = "report_agent_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    actor_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    replies: Mapped[int] = mapped_column(Integer, default=0)


class QueueCount(Base):
    """Numbers of unsolved tickets per status, assignee (0 for nobody) and stale flag (0/1),
    whose sums are the queue's tab counts: the database adds a row of +1 or -1 in the
    transaction of every ticket change (triggers, migration scale5_0002), and
    portal.agent.counts.compact folds them into one row per kind. Rows are only added, so
    concurrent changes never wait on one another's row lock."""

    __tablename__ = "queue_counts"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    assignee_id: Mapped[int] = mapped_column(Integer)
    stale: Mapped[int] = mapped_column(Integer)
    tickets: Mapped[int] = mapped_column(Integer)


class QueueDueDay(Base):
    """Numbers of waiting tickets (new, open, on hold) per day of their next SLA target, kept
    like QueueCount (migration scale5_0003): the "Due soon or breached" tab adds the days
    before today and counts today's tickets."""

    __tablename__ = "queue_due_days"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    tickets: Mapped[int] = mapped_column(Integer)


class SuggestionEvent(Base):
    """Ticket deflection: suggestions shown, opened, and "this answered my question"."""

    __tablename__ = "suggestion_events"
    __table_args__ = (Index("ix_suggestion_events_kind_created", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # impression | open | deflected
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    # Random per new-request form, so one form's events can be tied together.
    form_key: Mapped[str] = mapped_column(String(64), index=True)
    query: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SlaPolicy(Base):
    __tablename__ = "sla_policies"

    priority: Mapped[Priority] = mapped_column(_str_enum(Priority), primary_key=True)
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    business_hours: Mapped[bool] = mapped_column(Boolean, default=False)


class CannedReply(Base):
    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(120), unique=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Setting(Base):
    """Admin-kept settings as key/value (business hours, time zone, autoclose days)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
