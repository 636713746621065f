"""The job queue: enqueue in the caller's transaction, claim with a lease, finish or retry.

Claiming takes the next due job (or one whose worker's lease ran out) in a short transaction:
`FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers never wait for each other; on SQLite the
transaction begins IMMEDIATE, so one writer claims at a time. A job's effects and its "done"
mark commit together, so work kept in the database happens once even when a worker dies;
effects outside it (an SMTP send) happen at most twice.
"""

from __future__ import annotations

import json
import logging
import random
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.db import utcnow
from portal.extensions import db
from portal.jobs.models import Job, JobStatus, ScheduledRun
from portal.jobs.registry import KINDS, SCHEDULES, Schedule

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "portal_jobs"
KEEP_FINISHED = timedelta(days=7)


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help (a malformed address): fail at once."""


class UnknownJobKind(ValueError):
    pass


def enqueue(kind: str, payload: dict[str, Any] | None = None, *,
            run_at: datetime | None = None, session: Session | None = None) -> Job:
    """Add a job to the caller's transaction: it exists only if that transaction commits."""
    spec = KINDS.get(kind)
    if spec is None:
        raise UnknownJobKind(kind)
    session = session or db.session
    job = Job(kind=kind, payload=json.dumps(payload or {}, sort_keys=True),
              status=JobStatus.QUEUED, run_at=run_at or utcnow(),
              max_attempts=spec.max_attempts, attempts=0, created_at=utcnow())
    session.add(job)
    if session.get_bind().dialect.name == "postgresql":
        # Delivered at commit only, so a worker never wakes for a job it cannot see yet.
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return job


def lease_seconds() -> float:
    return float(current_app.config["JOBS_LEASE_SECONDS"])


def _claimable(now: datetime):
    return or_(
        and_(Job.status == JobStatus.QUEUED, Job.run_at <= now),
        and_(Job.status == JobStatus.RUNNING, Job.locked_until < now),
    )


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    lease_lost: bool  # a previous worker held it and its lease ran out


def claim(worker: str, limit: int = 1) -> list[Claimed]:
    """Take up to `limit` due jobs for `worker` and commit the claim (one short transaction
    for the batch); an empty list when nothing is due."""
    session = db.session
    session.commit()
    now = utcnow()
    due = select(Job.id).where(_claimable(now))
    with db.deferred():  # an idle worker's look takes no write lock on SQLite
        anything = session.scalar(due.limit(1))
        session.rollback()
    if anything is None:
        return []
    rows = session.execute(
        select(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts, Job.status)
        .where(_claimable(now)).order_by(Job.run_at, Job.id).limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        session.rollback()
        return []
    session.execute(
        update(Job).where(Job.id.in_([row.id for row in rows]))
        .values(status=JobStatus.RUNNING, locked_by=worker, attempts=Job.attempts + 1,
                locked_until=now + timedelta(seconds=lease_seconds()), started_at=now)
    )
    session.commit()
    return [Claimed(row.id, row.kind, json.loads(row.payload or "{}"), row.attempts + 1,
                    row.max_attempts, row.status == JobStatus.RUNNING) for row in rows]


def release(job_ids: list[int], worker: str) -> None:
    """Give back claimed jobs this worker will not start (it is stopping)."""
    if not job_ids:
        return
    session = db.session
    session.rollback()
    session.execute(
        update(Job).where(Job.id.in_(job_ids), Job.locked_by == worker)
        .values(status=JobStatus.QUEUED, locked_by=None, locked_until=None,
                attempts=Job.attempts - 1)
    )
    session.commit()


def extend_leases(job_ids: list[int], worker: str) -> int:
    """Heartbeat for the jobs a worker holds (the one in hand and the rest of its batch); run
    on its own connection. Returns how many leases are still this worker's."""
    if not job_ids:
        return 0
    engine = db.engine
    with engine.begin() as conn:
        result = conn.execute(
            update(Job).where(Job.id.in_(job_ids), Job.locked_by == worker,
                              Job.status == JobStatus.RUNNING)
            .values(locked_until=utcnow() + timedelta(seconds=lease_seconds()))
        )
    return result.rowcount


def mark_done(session: Session, job_id: int, worker: str) -> bool:
    """In the handler's own transaction: its effects and this mark commit together.

    False when another worker took the job over (this one's lease ran out): the caller
    must roll the handler's work back, the other worker is doing it.
    """
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.locked_by == worker,
                          Job.status == JobStatus.RUNNING)
        .values(status=JobStatus.DONE, finished_at=utcnow(), locked_by=None,
                locked_until=None, last_error=None)
    )
    return result.rowcount == 1


def retry_delay(attempts: int, base: float, ceiling: float) -> float:
    """Exponential backoff with jitter: about base·2^(n-1), at most `ceiling`."""
    delay = min(ceiling, base * 2 ** max(0, attempts - 1))
    return delay * random.uniform(0.75, 1.25)


def record_failure(job: Claimed, worker: str, exc: BaseException) -> str:
    """After a handler raised: schedule a retry, or fail the job for good. Returns the status."""
    spec = KINDS.get(job.kind)
    error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
    final = (
        isinstance(exc, PermanentError | UnknownJobKind)
        or spec is None
        or job.attempts >= job.max_attempts
    )
    values: dict[str, Any] = {"last_error": error, "locked_by": None, "locked_until": None}
    if final:
        values.update(status=JobStatus.FAILED, finished_at=utcnow())
    else:
        delay = retry_delay(job.attempts, spec.base_delay, spec.max_delay)
        values.update(status=JobStatus.QUEUED, run_at=utcnow() + timedelta(seconds=delay))
    session = db.session
    session.rollback()
    session.execute(update(Job).where(Job.id == job.id, Job.locked_by == worker).values(**values))
    session.commit()
    return values["status"]


# --- scheduled jobs ------------------------------------------------------------------------


def slot_start(schedule: Schedule, now: datetime) -> datetime:
    """The start of the time slot `now` falls in (slots are aligned to the epoch)."""
    seconds = int(schedule.every.total_seconds())
    epoch = datetime(1970, 1, 1)
    elapsed = int((now - epoch).total_seconds())
    return epoch + timedelta(seconds=elapsed - elapsed % seconds)


def last_slot(name: str) -> datetime | None:
    """The latest slot a worker claimed for the scheduled job `name` (None: never)."""
    return db.session.scalar(select(func.max(ScheduledRun.slot)).where(ScheduledRun.name == name))


def claim_schedule_slot(schedule: Schedule, slot: datetime, worker: str) -> bool:
    """Insert the (name, slot) claim and its job in one transaction; False if taken."""
    session = db.session
    session.commit()
    try:
        job = enqueue(schedule.kind, {"slot": slot.isoformat()})
        session.flush()
        session.add(ScheduledRun(name=schedule.name, slot=slot, job_id=job.id,
                                 claimed_by=worker, claimed_at=utcnow()))
        session.commit()
        return True
    except IntegrityError:
        session.rollback()
        return False


def enqueue_due_schedules(worker: str, seen: dict[str, datetime],
                          now: datetime | None = None) -> int:
    """Claim every schedule's current slot not yet seen by this worker; returns how many
    this worker claimed. A slot missed while no worker ran is skipped, not made up."""
    now = now or utcnow()
    claimed = 0
    for schedule in list(SCHEDULES.values()):
        slot = slot_start(schedule, now)
        if seen.get(schedule.name) == slot:
            continue
        seen[schedule.name] = slot
        exists = db.session.scalar(
            select(ScheduledRun.name).where(ScheduledRun.name == schedule.name,
                                            ScheduledRun.slot == slot)
        )
        db.session.rollback()
        if exists is None and claim_schedule_slot(schedule, slot, worker):
            claimed += 1
    return claimed


def run_schedule_now(name: str) -> None:
    """Queue a scheduled job outside its slots (the manual trigger on the admin page)."""
    schedule = SCHEDULES[name]
    enqueue(schedule.kind, {"manual": True})


# --- what admins see and do ----------------------------------------------------------------


@dataclass(frozen=True)
class KindStats:
    kind: str
    queued: int
    running: int
    failed: int
    oldest_waiting: datetime | None


def queue_stats() -> list[KindStats]:
    now = utcnow()
    rows = db.session.execute(
        select(
            Job.kind,
            func.count().filter(Job.status == JobStatus.QUEUED, Job.run_at <= now),
            func.count().filter(Job.status == JobStatus.RUNNING),
            func.count().filter(Job.status == JobStatus.FAILED),
            func.min(Job.run_at).filter(Job.status == JobStatus.QUEUED, Job.run_at <= now),
        )
        .where(Job.status != JobStatus.DONE)
        .group_by(Job.kind).order_by(Job.kind)
    ).all()
    return [KindStats(kind, int(q or 0), int(r or 0), int(f or 0), oldest)
            for kind, q, r, f, oldest in rows]


@dataclass(frozen=True)
class ScheduleState:
    name: str
    every: timedelta
    last_slot: datetime | None
    last_status: str | None
    last_finished: datetime | None
    last_error: str | None


def schedule_states() -> list[ScheduleState]:
    latest = (
        select(ScheduledRun.name, func.max(ScheduledRun.slot).label("slot"))
        .group_by(ScheduledRun.name).subquery()
    )
    rows = db.session.execute(
        select(ScheduledRun.name, ScheduledRun.slot, Job.status, Job.finished_at, Job.last_error)
        .join(latest, and_(latest.c.name == ScheduledRun.name, latest.c.slot == ScheduledRun.slot))
        .outerjoin(Job, Job.id == ScheduledRun.job_id)
    ).all()
    by_name = {row.name: row for row in rows}
    states = []
    for schedule in sorted(SCHEDULES.values(), key=lambda s: s.name):
        row = by_name.get(schedule.name)
        states.append(ScheduleState(
            schedule.name, schedule.every, row.slot if row else None,
            row.status if row else None, row.finished_at if row else None,
            row.last_error if row else None,
        ))
    return states


def failed_jobs(limit: int = 100) -> list[Job]:
    return list(db.session.scalars(
        select(Job).where(Job.status == JobStatus.FAILED)
        .order_by(Job.finished_at.desc(), Job.id.desc()).limit(limit)
    ))


def retry_job(job: Job) -> None:
    """Give a failed job a fresh set of attempts, due now."""
    job.status = JobStatus.QUEUED
    job.attempts = 0
    job.run_at = utcnow()
    job.finished_at = None


def discard_job(job: Job) -> None:
    db.session.delete(job)


def purge_finished(now: datetime | None = None) -> int:
    """Daily cleanup: finished jobs and schedule claims older than a week."""
    cutoff = (now or utcnow()) - KEEP_FINISHED
    removed = db.session.execute(
        delete(Job).where(Job.status == JobStatus.DONE, Job.finished_at < cutoff)
    ).rowcount
    db.session.execute(delete(ScheduledRun).where(ScheduledRun.slot < cutoff))
    return removed
