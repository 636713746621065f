"""The queue's own jobs: housekeeping, and a ping that proves a worker is running."""

from datetime import timedelta

from portal.db import refresh_planner_statistics
from portal.extensions import db
from portal.jobs.registry import job, scheduled
from portal.jobs.services import purge_finished

PING = "jobs.ping"


@job(PING, max_attempts=1)
def ping(_payload: dict) -> None:
    """Does nothing: `flask jobs ping` (and the benchmark) watch it get done."""


@scheduled("jobs.cleanup", every=timedelta(days=1))
def cleanup() -> None:
    purge_finished()


@scheduled("database.statistics", every=timedelta(hours=6))
def planner_statistics() -> None:
    refresh_planner_statistics(db.session)
