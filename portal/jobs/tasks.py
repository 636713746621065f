"""The queue's own housekeeping."""

from datetime import timedelta

from portal.jobs.registry import scheduled
from portal.jobs.services import purge_finished


@scheduled("jobs.cleanup", every=timedelta(days=1))
def cleanup() -> None:
    purge_finished()
