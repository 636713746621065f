"""The job queue in one process: transactional enqueue, retries with backoff, failure kept,
scheduled slots claimed once, and the admin page."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from portal.db import utcnow
from portal.extensions import db
from portal.jobs import PermanentError, enqueue, job
from portal.jobs import services as jobs
from portal.jobs.models import Job, JobStatus, ScheduledRun
from portal.jobs.registry import KINDS, SCHEDULES
from portal.jobs.worker import Worker

CALLS: list[dict] = []


@pytest.fixture(autouse=True)
def test_kinds():
    """Handlers that record their calls or fail on purpose (registered for these tests)."""
    CALLS.clear()

    @job("test.record", max_attempts=3)
    def record(payload):
        CALLS.append(payload)

    @job("test.flaky", max_attempts=3, base_delay=60.0)
    def flaky(payload):
        CALLS.append(payload)
        raise ConnectionError("the far side is down")

    @job("test.refuse")
    def refuse(payload):
        raise PermanentError("this can never work")

    yield
    for name in ("test.record", "test.flaky", "test.refuse"):
        KINDS.pop(name, None)


def all_jobs(kind: str) -> list[Job]:
    db.session.commit()
    db.session.expire_all()
    return list(db.session.scalars(select(Job).where(Job.kind == kind).order_by(Job.id)))


def make_due(kind: str) -> None:
    """The controlled clock: a retry's backoff has passed."""
    db.session.execute(update(Job).where(Job.kind == kind).values(run_at=utcnow()))
    db.session.commit()


def test_a_rolled_back_change_enqueues_nothing_a_committed_one_runs(app, run_jobs):
    enqueue("test.record", {"n": 1})
    db.session.rollback()
    enqueue("test.record", {"n": 2})
    db.session.commit()
    assert run_jobs() == 1
    assert CALLS == [{"n": 2}]
    [done] = all_jobs("test.record")
    assert done.status == JobStatus.DONE and done.attempts == 1


def test_unknown_kinds_are_refused_when_enqueued(app):
    with pytest.raises(jobs.UnknownJobKind):
        enqueue("test.nobody-handles-this")


def test_a_failing_job_is_retried_with_backoff_then_failed_with_its_error(app, run_jobs):
    enqueue("test.flaky", {"n": 1})
    enqueue("test.record", {"n": 2})
    db.session.commit()
    assert run_jobs() == 2  # the failure blocks nothing: the other job ran too
    [flaky] = all_jobs("test.flaky")
    assert flaky.status == JobStatus.QUEUED and flaky.attempts == 1
    delay = (flaky.run_at - utcnow()).total_seconds()
    assert 40 < delay < 80  # 60 s base delay with jitter
    assert "ConnectionError: the far side is down" in flaky.last_error
    assert run_jobs() == 0  # not due yet
    make_due("test.flaky")
    run_jobs()
    [flaky] = all_jobs("test.flaky")
    assert flaky.attempts == 2 and (flaky.run_at - utcnow()).total_seconds() > 80  # doubled
    make_due("test.flaky")
    run_jobs()
    [flaky] = all_jobs("test.flaky")
    assert flaky.status == JobStatus.FAILED and flaky.attempts == 3
    assert len([c for c in CALLS if c == {"n": 1}]) == 3


def test_a_permanent_error_fails_at_once(app, run_jobs):
    enqueue("test.refuse")
    db.session.commit()
    run_jobs()
    [refused] = all_jobs("test.refuse")
    assert refused.status == JobStatus.FAILED and refused.attempts == 1
    assert "this can never work" in refused.last_error


def test_backoff_grows_and_has_a_ceiling():
    delays = [jobs.retry_delay(n, 10.0, 300.0) for n in range(1, 10)]
    assert 7.5 <= delays[0] <= 12.5 and 15 <= delays[1] <= 25
    assert all(d <= 375 for d in delays) and delays[-1] >= 225


def test_a_job_whose_lease_ran_out_is_claimed_again(app, run_jobs):
    enqueue("test.record", {"n": 1})
    db.session.commit()
    assert len(jobs.claim("worker-that-dies")) == 1
    assert run_jobs() == 0  # leased: nobody else takes it
    db.session.execute(update(Job).values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert run_jobs() == 1
    [again] = all_jobs("test.record")
    assert again.status == JobStatus.DONE and again.attempts == 2 and CALLS == [{"n": 1}]


def test_the_dead_workers_late_finish_does_not_count_twice(app):
    """A worker whose lease ran out cannot mark done a job another worker took over."""
    enqueue("test.record")
    db.session.commit()
    [first] = jobs.claim("slow-worker")
    db.session.execute(update(Job).values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    [second] = jobs.claim("fresh-worker")
    assert second.id == first.id and second.lease_lost
    assert not jobs.mark_done(db.session, first.id, "slow-worker")
    assert jobs.mark_done(db.session, second.id, "fresh-worker")
    db.session.commit()


def test_scheduled_slots_are_claimed_once_however_many_workers_look(app, run_jobs):
    now = datetime(2026, 12, 6, 3, 0, 30)  # the next minute starts no hourly or 10-minute slot
    seen_a: dict = {}
    seen_b: dict = {}
    claimed_a = jobs.enqueue_due_schedules("worker-a", seen_a, now)
    claimed_b = jobs.enqueue_due_schedules("worker-b", seen_b, now)
    assert claimed_a == len(SCHEDULES) and claimed_b == 0
    # The next minute's slot is new for the every-minute schedules only.
    claimed = jobs.enqueue_due_schedules("worker-b", seen_b, now + timedelta(minutes=1))
    minutely = [s for s in SCHEDULES.values() if s.every == timedelta(minutes=1)]
    assert claimed == len(minutely)
    runs = db.session.scalar(select(func.count()).select_from(ScheduledRun))
    assert runs == len(SCHEDULES) + len(minutely)
    run_jobs()
    states = {s.name: s for s in jobs.schedule_states()}
    assert states["tickets.sla"].last_status == JobStatus.DONE


def test_the_worker_stops_when_asked_after_the_job_in_hand(app):
    worker = Worker(app, name="stopper", run_schedules=False)
    for n in range(3):
        enqueue("test.record", {"n": n})
    db.session.commit()
    worker.stopping.set()
    assert worker.run() == 0
    assert worker.run(burst=True, max_jobs=1) == 0  # still stopping
    worker.stopping.clear()
    assert worker.run(burst=True, max_jobs=2) == 2


def test_admin_sees_the_queue_and_retries_or_discards_failures(app, admin_client, run_jobs):
    enqueue("test.refuse")
    enqueue("test.refuse")
    enqueue("test.record")
    db.session.commit()
    run_jobs()
    enqueue("test.record")  # waiting
    db.session.commit()
    page = admin_client.get("/admin/jobs/").get_data(as_text=True)
    assert "test.refuse" in page and "this can never work" in page
    assert "tickets.sla" in page  # scheduled jobs are listed even before their first run
    first, second = all_jobs("test.refuse")
    response = admin_client.post(f"/admin/jobs/{first.id}/retry")
    assert response.status_code == 303
    db.session.refresh(first)
    assert first.status == JobStatus.QUEUED and first.attempts == 0
    admin_client.post(f"/admin/jobs/{second.id}/discard")
    assert [j.id for j in all_jobs("test.refuse")] == [first.id]
    assert admin_client.post("/admin/jobs/999999/retry").status_code == 404
    assert admin_client.post("/admin/jobs/schedules/tickets.sla/run").status_code == 303
    assert admin_client.post("/admin/jobs/schedules/nope/run").status_code == 404


def test_agents_and_customers_cannot_see_the_jobs_page(app, agent_client):
    assert agent_client.get("/admin/jobs/").status_code in (403, 404)


def test_cleanup_purges_old_finished_jobs(app, run_jobs):
    enqueue("test.record")
    db.session.commit()
    run_jobs()
    assert jobs.purge_finished(utcnow() + timedelta(days=8)) == 1
    db.session.commit()
    assert all_jobs("test.record") == []


def test_ping_tells_whether_a_worker_is_running(app):
    runner = app.test_cli_runner()
    alone = runner.invoke(args=["jobs", "ping", "--timeout", "0.3"])
    assert alone.exit_code == 1 and "No worker ran the ping" in alone.output
    worker = Worker(app, name="pinged", run_schedules=False)
    thread = worker.start_thread()
    try:
        answered = runner.invoke(args=["jobs", "ping"])
    finally:
        worker.stopping.set()
        thread.join(10)
    assert answered.exit_code == 0 and "A worker ran the ping." in answered.output
    status = runner.invoke(args=["jobs", "status"])
    assert "No queued, running or failed jobs." in status.output
    assert "schedule tickets.sla" in status.output


def test_a_batch_longer_than_one_lease_is_not_taken_over(app):
    """The heartbeat keeps the whole claimed batch leased, not only the job in hand: a second
    worker must not run the batch's later jobs while the first is still on its way to them."""
    import time

    app.config.update(JOBS_LEASE_SECONDS=1, JOBS_BATCH=5)
    runs: list[int] = []

    @job("test.slow")
    def slow(payload):
        time.sleep(0.4)
        runs.append(payload["n"])

    try:
        for n in range(5):
            enqueue("test.slow", {"n": n})
        db.session.commit()
        first = Worker(app, name="first", poll_interval=0.05, run_schedules=False)
        first_thread = first.start_thread()
        deadline = time.monotonic() + 5
        while not first._held and time.monotonic() < deadline:
            time.sleep(0.02)  # the first worker holds the batch before the second looks
        second = Worker(app, name="second", poll_interval=0.05, run_schedules=False)
        second_thread = second.start_thread()
        while len(set(runs)) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a late second run would show here
        for running, thread in ((first, first_thread), (second, second_thread)):
            running.stopping.set()
            thread.join(10)
        assert sorted(runs) == [0, 1, 2, 3, 4]
        assert {j.locked_by for j in all_jobs("test.slow")} <= {"first", None}
    finally:
        KINDS.pop("test.slow", None)
