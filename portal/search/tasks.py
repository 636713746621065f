"""Search work done by the job workers: index updates (with embeddings) and the catch-up."""

from datetime import timedelta

from portal.jobs import job, scheduled
from portal.search import learned, semantic
from portal.search.queue import INDEX_JOB, process_all


@job(INDEX_JOB, max_attempts=10, base_delay=2.0, max_delay=300.0)
def update_index(_payload: dict) -> None:
    """Apply queued article changes to the index; embeddings follow (after-index hook)."""
    process_all()


@job(learned.VECTOR_JOB, max_attempts=10, base_delay=5.0, max_delay=300.0)
def embed_learned_question(payload: dict) -> None:
    """The vector of a question a customer just confirmed (the catch-up retries any left)."""
    learned.embed([int(payload["id"])])


@scheduled("search.catch-up", every=timedelta(minutes=1))
def catch_up() -> None:
    """Whatever a failed run left queued, published articles still without vectors, and
    learned questions still without theirs (model missing when they were confirmed)."""
    process_all()
    if semantic.enabled():
        semantic.sync_embeddings(semantic.missing_article_ids(semantic.MISSING_PER_RUN))
        learned.embed()
