"""Ticket work the job workers run on a schedule."""

from datetime import timedelta

from portal.jobs import scheduled
from portal.tickets.attachments import sweep_orphan_uploads


@scheduled("tickets.sweep-uploads", every=timedelta(days=1))
def sweep_uploads() -> None:
    """Remove upload files a crash left without a row (and finish moves whose row committed)."""
    sweep_orphan_uploads()
