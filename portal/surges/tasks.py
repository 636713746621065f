"""Surge jobs: embed each new ticket as it arrives, and scan for surges once a minute."""

from datetime import timedelta

from portal.jobs import job, scheduled
from portal.surges import services

EMBED_JOB = "surges.embed"


@job(EMBED_JOB, max_attempts=5, base_delay=10.0, max_delay=600.0)
def embed(payload: dict) -> None:
    """Embed and group waiting tickets (this one among them); idempotent."""
    services.embed_pending()


@scheduled("surges.scan", every=timedelta(minutes=1))
def scan() -> None:
    """Catch up on tickets not grouped yet, then look for surges."""
    while services.embed_pending():
        pass
    services.scan()
