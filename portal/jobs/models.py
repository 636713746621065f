"""Jobs: work done outside a request, queued in the same transaction as the change."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow


class JobStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for `run_at`, or for a retry
    RUNNING = "running"  # claimed by a worker until `locked_until` (its lease)
    DONE = "done"
    FAILED = "failed"  # out of attempts, or a permanent error: kept with its last error


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_claim", "status", "run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(80), index=True)
    payload: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED)
    run_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    locked_by: Mapped[str | None] = mapped_column(String(120))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class ScheduledRun(Base):
    """One row per scheduled job and time slot: the primary key is the claim that makes a
    slot run once however many workers look at it."""

    __tablename__ = "scheduled_runs"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    slot: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(Integer)
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claimed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
