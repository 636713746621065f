"""`flask --app app jobs work|status|run`."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

jobs_cli = AppGroup("jobs", help="Background jobs: run a worker, see the queue.")


@jobs_cli.command("work")
@click.option("--burst", is_flag=True, help="Exit once no job is due (for cron or tests).")
@click.option("--name", default=None, help="Worker name shown on claimed jobs.")
def work(burst: bool, name: str | None) -> None:
    """Run a worker until SIGTERM/SIGINT (the job in hand is finished first)."""
    from portal.jobs.worker import Worker

    worker = Worker(current_app._get_current_object(), name=name)
    worker.install_signal_handlers()
    click.echo(f"Worker {worker.name} started.")
    done = worker.run(burst=burst)
    click.echo(f"Worker {worker.name} stopped after {done} jobs.")


@jobs_cli.command("status")
def status() -> None:
    """Queue depth per kind and the last run of each scheduled job."""
    from portal.jobs.services import queue_stats, schedule_states

    stats = queue_stats()
    if not stats:
        click.echo("No queued, running or failed jobs.")
    for row in stats:
        click.echo(f"{row.kind:<36} queued {row.queued:>6}  running {row.running:>4}  "
                   f"failed {row.failed:>4}  oldest {row.oldest_waiting or '-'}")
    for state in schedule_states():
        click.echo(f"schedule {state.name:<27} every {state.every}  last slot "
                   f"{state.last_slot or 'never'}  {state.last_status or ''}")


@jobs_cli.command("ping")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait.")
def ping(timeout: float) -> None:
    """Check that a worker is running: queue a no-op job and wait until it is done."""
    import time

    from sqlalchemy import select

    from portal.extensions import db
    from portal.jobs.models import Job, JobStatus
    from portal.jobs.services import enqueue
    from portal.jobs.tasks import PING

    job = enqueue(PING)
    db.session.commit()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = db.session.scalar(select(Job.status).where(Job.id == job.id))
        db.session.commit()
        if status == JobStatus.DONE:
            click.echo("A worker ran the ping.")
            return
        time.sleep(0.1)
    raise click.ClickException(f"No worker ran the ping within {timeout:g} s: is one running?")


@jobs_cli.command("run")
@click.argument("name")
def run(name: str) -> None:
    """Queue a scheduled job now, outside its time slots."""
    from portal.extensions import db
    from portal.jobs.registry import SCHEDULES
    from portal.jobs.services import run_schedule_now

    if name not in SCHEDULES:
        raise click.BadParameter(f"choose one of: {', '.join(sorted(SCHEDULES))}")
    run_schedule_now(name)
    db.session.commit()
    click.echo(f"Queued {name}; a worker will run it.")
