"""Daily cleanup of idempotency records older than their 24-hour window."""

from datetime import timedelta

from portal.api.core import purge_idempotency
from portal.jobs import scheduled


@scheduled("api.purge_idempotency", every=timedelta(days=1))
def purge() -> None:
    purge_idempotency()
