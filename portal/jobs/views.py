"""Admin → Background jobs: queue depth, failures with retry/discard, scheduled runs."""

from flask import abort, flash, redirect, render_template, url_for

from portal.auth.views import admin_required
from portal.extensions import db
from portal.jobs import bp, services
from portal.jobs.models import Job, JobStatus
from portal.jobs.registry import SCHEDULES


@bp.route("/")
@admin_required
def index():
    return render_template(
        "jobs/index.html",
        stats=services.queue_stats(),
        failed=services.failed_jobs(),
        schedules=services.schedule_states(),
    )


def _failed_job(job_id: int) -> Job:
    job = db.session.get(Job, job_id)
    if job is None or job.status != JobStatus.FAILED:
        abort(404)
    return job


def _act_on_failed(job_id: int, action, done: str):
    action(_failed_job(job_id))
    db.session.commit()
    flash(f"Job {job_id} {done}.", "success")
    return redirect(url_for("jobs.index"), code=303)


@bp.post("/<int:job_id>/retry")
@admin_required
def retry(job_id: int):
    return _act_on_failed(job_id, services.retry_job, "is queued again")


@bp.post("/<int:job_id>/discard")
@admin_required
def discard(job_id: int):
    return _act_on_failed(job_id, services.discard_job, "was discarded")


@bp.post("/schedules/<name>/run")
@admin_required
def run_schedule(name: str):
    if name not in SCHEDULES:
        abort(404)
    services.run_schedule_now(name)
    db.session.commit()
    flash(f"{name} is queued; a worker will run it shortly.", "success")
    return redirect(url_for("jobs.index"), code=303)
