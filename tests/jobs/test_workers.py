"""Real worker processes (`flask --app app jobs work`) on one database: nothing lost when
one is killed with SIGKILL mid-run, at most one duplicate per kill, scheduled slots once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from portal.extensions import db
from portal.jobs.models import Job, JobStatus, ScheduledRun
from portal.mail import build_message
from portal.mail.models import MailStatus, OutboxMessage
from portal.mail.services import queue_message

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("PORTAL_TEST_POSTGRES_URL")
MESSAGES = 500


def start_worker(app, name: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PORTAL_INSTANCE_PATH": app.instance_path,
        "PORTAL_DATABASE_URL": app.config["DATABASE_URL"],
        "PORTAL_SECRET_KEY": app.config["SECRET_KEY"],
        "PORTAL_SEMANTIC_SEARCH": "false",
        "PORTAL_JOBS_LEASE_SECONDS": "2",
        "PORTAL_JOBS_POLL_SECONDS": "0.05",
        "PORTAL_MAIL_SERVER": "",  # development mail: each send is an .eml file
    }
    # A file, not a pipe: a full pipe would block a worker that logs every message.
    with open(Path(app.instance_path) / f"{name}.log", "wb") as log:
        return subprocess.Popen(  # noqa: S603 (our own CLI, run with this interpreter)
            [sys.executable, "-m", "flask", "--app", "app", "jobs", "work", "--name", name],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )


def counts() -> Counter:
    db.session.commit()
    with db.deferred():  # watching takes no write lock from the workers
        rows = db.session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
        db.session.rollback()
    return Counter(dict(rows))


def queue_mail(count: int) -> None:
    for n in range(count):
        queue_message(build_message(f"person{n}@example.com", f"Message {n}", f"Body {n}"),
                      "test")
    db.session.commit()


def sent_message_ids(app) -> Counter:
    ids: Counter = Counter()
    for path in Path(app.config["MAIL_DIR"]).glob("*.eml"):
        for line in path.read_bytes().splitlines():
            if line.lower().startswith(b"message-id:"):
                ids[line.split(b":", 1)[1].strip()] += 1
                break
    return ids


def stop(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=30)
        assert proc.returncode in (0, -signal.SIGKILL)


def kill_one_mid_run(app):
    queue_mail(MESSAGES)
    procs = [start_worker(app, "worker-a"), start_worker(app, "worker-b")]
    try:
        deadline = time.monotonic() + 60
        while counts()[MailStatus.SENT] < MESSAGES // 5:
            assert time.monotonic() < deadline, "workers made no progress"
            time.sleep(0.05)
        procs[0].send_signal(signal.SIGKILL)  # mid-run, maybe mid-job
        procs[0].wait(10)
        while counts()[MailStatus.SENT] < MESSAGES:
            assert time.monotonic() < deadline, f"not all sent: {counts()}"
            time.sleep(0.1)
    finally:
        stop(procs)
    db.session.commit()
    assert db.session.scalar(select(func.count(Job.id)).where(
        Job.kind == "mail.send", Job.status != JobStatus.DONE)) == 0
    ids = sent_message_ids(app)
    assert len(ids) == MESSAGES  # every message went out
    assert sum(ids.values()) - MESSAGES <= 1  # at most one sent twice: the one killed mid-send


def test_two_workers_one_killed_on_sqlite(app):
    kill_one_mid_run(app)


def test_scheduled_jobs_run_once_per_slot_with_two_workers(app):
    scheduled_once_per_slot(app)


def test_scheduled_jobs_run_once_per_slot_with_two_workers_on_postgres(pg_app):
    scheduled_once_per_slot(pg_app)


def scheduled_once_per_slot(app):
    procs = [start_worker(app, "worker-a"), start_worker(app, "worker-b")]
    try:
        deadline = time.monotonic() + 30
        while True:
            db.session.commit()
            with db.deferred():
                finished = db.session.scalar(select(func.count(Job.id)).where(
                    Job.kind.like("scheduled:%"), Job.status == JobStatus.DONE))
                slots = db.session.scalar(select(func.count()).select_from(ScheduledRun))
                db.session.rollback()
            if slots and finished == slots:
                break
            assert time.monotonic() < deadline, f"{finished} of {slots} scheduled jobs ran"
            time.sleep(0.1)
        time.sleep(1.5)  # both workers have looked at the schedules more than once by now
    finally:
        stop(procs)
    db.session.commit()
    per_slot = db.session.execute(
        select(Job.kind, func.count()).where(Job.kind.like("scheduled:%")).group_by(Job.kind)
    ).all()
    slots = dict(db.session.execute(
        select(ScheduledRun.name, func.count()).group_by(ScheduledRun.name)).all())
    assert per_slot and all(count == slots[kind.split(":", 1)[1]] for kind, count in per_slot)
    claimers = set(db.session.scalars(select(ScheduledRun.claimed_by)))
    assert claimers <= {"worker-a", "worker-b"}


def test_two_workers_one_killed_on_postgres(pg_app):
    kill_one_mid_run(pg_app)
