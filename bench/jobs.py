"""The job queue's cost: what enqueueing adds to a request, and workers' throughput.

    python bench/jobs.py [--jobs 2000] [--workers 2] [--postgres-url URL]

Enqueue: p95 of a POST-request transaction that changes a row and commits, with and without a
job enqueued in it (the difference is what the queue adds). Throughput: `--jobs` no-op jobs
(`jobs.ping`) run by `--workers` real `flask jobs work --burst` processes, timed from the first
claim to the last finish as the database recorded them. PostgreSQL runs when a URL is given
(or PORTAL_TEST_POSTGRES_URL is set); its public schema is dropped and rebuilt.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.jobs import enqueue  # noqa: E402
from portal.jobs.models import Job, JobStatus  # noqa: E402
from portal.jobs.tasks import PING  # noqa: E402
from portal.migrate import upgrade  # noqa: E402
from portal.tickets.models import Setting  # noqa: E402


def make_app(folder: str, url: str):
    return create_app({
        "INSTANCE_PATH": folder, "TESTING": True, "SECRET_KEY": "bench",
        "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False, "SEMANTIC_SEARCH": False,
        "DATABASE_URL": url,
    })


def p95(samples: list[float]) -> float:
    samples = sorted(samples)
    return samples[int(len(samples) * 0.95) - 1]


def enqueue_cost(app, rounds: int = 500) -> tuple[float, float]:
    """p95 (ms) of a request transaction without and with one enqueued job."""
    plain, with_job = [], []
    with app.test_request_context("/", method="POST"):
        db.session.add(Setting(key="bench", value="0"))
        db.session.commit()
        for n in range(rounds):
            for samples, queue in ((plain, False), (with_job, True)):
                start = time.perf_counter()
                db.session.get(Setting, "bench").value = str(n)
                if queue:
                    enqueue(PING)
                db.session.commit()
                samples.append((time.perf_counter() - start) * 1000)
    return p95(plain), p95(with_job)


def throughput(app, url: str, folder: str, jobs: int, workers: int) -> float:
    with app.app_context():
        for _ in range(jobs):
            enqueue(PING)
        db.session.commit()
    env = {**os.environ, "PORTAL_INSTANCE_PATH": folder, "PORTAL_DATABASE_URL": url,
           "PORTAL_SECRET_KEY": "bench", "PORTAL_SEMANTIC_SEARCH": "false"}
    procs = [subprocess.Popen(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "flask", "--app", "app", "jobs", "work", "--burst"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)]
    for proc in procs:
        proc.wait(600)
    with app.app_context():
        first, last, done = db.session.execute(
            select(func.min(Job.started_at), func.max(Job.finished_at), func.count(Job.id))
            .where(Job.kind == PING, Job.status == JobStatus.DONE)).one()
    assert done >= jobs, f"only {done} of {jobs} jobs done"
    return jobs / max((last - first).total_seconds(), 1e-6)


def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres-url", default=os.environ.get("PORTAL_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.sqlite3"
        app = make_app(folder, url)
        with app.app_context():
            upgrade(app)
        plain, with_job = enqueue_cost(app)
        print(f"request transaction p95: {plain:.2f} ms plain, {with_job:.2f} ms with a job")
        results["enqueue_p95_ms"] = max(0.0, with_job - plain)
        rate = throughput(app, url, folder, args.jobs, args.workers)
        print(f"sqlite: {args.jobs} jobs, {args.workers} workers: {rate:.0f} jobs/s")
        results["sqlite_jobs_per_s"] = rate
    if args.postgres_url:
        reset_postgres(args.postgres_url)
        with tempfile.TemporaryDirectory() as folder:
            app = make_app(folder, args.postgres_url)
            with app.app_context():
                upgrade(app)
            rate = throughput(app, args.postgres_url, folder, args.jobs, args.workers)
            print(f"postgres: {args.jobs} jobs, {args.workers} workers: {rate:.0f} jobs/s")
            results["postgres_jobs_per_s"] = rate
    else:
        print("postgres: skipped (give --postgres-url or set PORTAL_TEST_POSTGRES_URL)")
    print("RESULT " + " ".join(f"{key}={value:.2f}" for key, value in results.items()))


if __name__ == "__main__":
    main()
