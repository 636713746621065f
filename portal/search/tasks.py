"""Search work done by the job workers: index updates (with embeddings) and the catch-up."""

from datetime import timedelta

from portal.jobs import job, scheduled
from portal.search import semantic
from portal.search.queue import INDEX_JOB, process_all


@job(INDEX_JOB, max_attempts=10, base_delay=2.0, max_delay=300.0)
def update_index(_payload: dict) -> None:
    """Apply queued article changes to the index; embeddings follow (after-index hook)."""
    process_all()


@scheduled("search.catch-up", every=timedelta(minutes=1))
def catch_up() -> None:
    """Whatever a failed run left queued, and published articles still without vectors."""
    process_all()
    if semantic.enabled():
        semantic.sync_embeddings(semantic.missing_article_ids(semantic.MISSING_PER_RUN))
