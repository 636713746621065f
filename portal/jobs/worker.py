"""The worker loop: claim a job, run it, repeat; claim due scheduled slots; stop gracefully.

Run with `flask --app app jobs work` (any number of processes, on any number of hosts).
SIGTERM or SIGINT lets the job in hand finish, then the worker exits. On PostgreSQL an idle
worker waits on LISTEN for new jobs, with polling as the fallback; on SQLite it polls.
"""

from __future__ import annotations

import logging
import os
import select as select_module
import signal
import socket
import threading
import time
import uuid

from flask import Flask

from portal.extensions import db
from portal.jobs import services
from portal.jobs.registry import KINDS

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, app: Flask, *, name: str | None = None,
                 poll_interval: float | None = None, run_schedules: bool = True) -> None:
        self.app = app
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.poll_interval = poll_interval or float(app.config["JOBS_POLL_SECONDS"])
        self.run_schedules = run_schedules
        self.batch = int(app.config["JOBS_BATCH"])
        self.stopping = threading.Event()
        self._seen_slots: dict = {}
        # What the heartbeat keeps leased: the whole claimed batch until each job is run or
        # given back, so a batch that takes longer than one lease is not taken over midway.
        self._held: set[int] = set()
        self._next_schedule_check = 0.0
        self._listener = None

    # --- running ---------------------------------------------------------------------------

    def run(self, *, burst: bool = False, max_jobs: int | None = None) -> int:
        """Work until stopped; `burst`: until nothing is due. Returns the jobs run."""
        done = 0
        heartbeat = _Heartbeat(self)
        heartbeat.start()
        try:
            while not self.stopping.is_set():
                if self.run_schedules and not burst:
                    self._check_schedules()
                limit = self.batch if max_jobs is None else min(self.batch, max_jobs - done)
                ran = self.run_batch(limit)
                if ran:
                    done += ran
                    if max_jobs is not None and done >= max_jobs:
                        break
                    continue
                if burst:
                    break
                self._wait()
        finally:
            heartbeat.stop()
            self._close_listener()
        return done

    def run_batch(self, limit: int) -> int:
        """Claim up to `limit` due jobs and run them one by one; returns how many ran.

        A stop request lets the job in hand finish and gives the rest back to the queue.
        """
        with self.app.app_context():
            claimed = services.claim(self.name, limit)
            self._held = {job.id for job in claimed}
            try:
                for n, job in enumerate(claimed):
                    if self.stopping.is_set():
                        services.release([j.id for j in claimed[n:]], self.name)
                        return n
                    self._execute(job)
                    self._held.discard(job.id)
                return len(claimed)
            finally:
                self._held = set()

    def _execute(self, job: services.Claimed) -> None:
        session = db.session
        spec = KINDS.get(job.kind)
        started = time.monotonic()
        if job.lease_lost:
            log.warning("job %s (%s): its worker stopped mid-job (lease ran out); running it "
                        "again, attempt %s", job.id, job.kind, job.attempts)
        try:
            if spec is None:
                raise services.UnknownJobKind(f"no handler for {job.kind!r}")
            spec.handler(job.payload)
            session.flush()
            if services.mark_done(session, job.id, self.name):
                session.commit()
            else:
                session.rollback()
                log.warning("job %s (%s): lease lost to another worker", job.id, job.kind)
        except Exception as exc:  # a handler's failure is recorded, never lost
            status = services.record_failure(job, self.name, exc)
            level = logging.ERROR if status == "failed" else logging.WARNING
            log.log(level, "job %s (%s) attempt %s/%s %s: %s", job.id, job.kind, job.attempts,
                    job.max_attempts, "failed" if status == "failed" else "will retry", exc)
        finally:
            session.rollback()
            log.debug("job %s (%s) took %.1f ms", job.id, job.kind,
                      (time.monotonic() - started) * 1000)

    def _check_schedules(self) -> None:
        now = time.monotonic()
        if now < self._next_schedule_check:
            return
        self._next_schedule_check = now + 1.0
        with self.app.app_context():
            try:
                services.enqueue_due_schedules(self.name, self._seen_slots)
            except Exception:
                db.session.rollback()
                log.exception("claiming scheduled jobs failed; trying again shortly")

    # --- waiting ---------------------------------------------------------------------------

    def _wait(self) -> None:
        listener = self._listen()
        if listener is None:
            self.stopping.wait(self.poll_interval)
            return
        try:
            ready, _, _ = select_module.select([listener.fileno()], [], [],
                                               self.poll_interval)
            if ready:
                for _ in listener.notifies(timeout=0, stop_after=100):
                    pass
        except Exception:
            self._close_listener()
            self.stopping.wait(self.poll_interval)

    def _listen(self):
        """A psycopg connection LISTENing for new jobs, on PostgreSQL; None elsewhere."""
        if self._listener is not None:
            return self._listener
        url = db_url(self.app)
        if not url.startswith("postgresql"):
            return None
        try:
            import psycopg

            conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
            conn = psycopg.connect(conninfo, autocommit=True)
            conn.execute(f"LISTEN {services.NOTIFY_CHANNEL}")
            self._listener = conn
        except Exception:
            log.warning("LISTEN for jobs failed; polling instead", exc_info=True)
            return None
        return self._listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None

    # --- stopping --------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def stop(signum, _frame):
            log.info("worker %s: signal %s, stopping after the job in hand", self.name, signum)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def start_thread(self) -> threading.Thread:
        """Run in a background thread (tests, or a web process that hosts its own worker)."""
        thread = threading.Thread(target=self.run, name=f"worker {self.name}", daemon=True)
        thread.start()
        return thread


def db_url(app: Flask) -> str:
    return str(app.config["DATABASE_URL"])


class _Heartbeat:
    """Extends the leases of the worker's held jobs every third of the lease, so a long job
    (or batch) keeps its claim while a killed worker's jobs are free again soon. One thread
    per worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"heartbeat {worker.name}")

    def start(self) -> None:
        with self.worker.app.app_context():
            self.interval = services.lease_seconds() / 3
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            held = list(self.worker._held)
            if not held:
                continue
            try:
                with self.worker.app.app_context():
                    services.extend_leases(held, self.worker.name)
            except Exception:
                log.warning("could not extend the leases of jobs %s", held, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
