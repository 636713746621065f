"""Housekeeping for the change feed."""

from datetime import timedelta

from portal.cluster import changes
from portal.jobs import scheduled


@scheduled("changes.prune", every=timedelta(minutes=10))
def prune_change_feed() -> None:
    """Followers only need the feed's last minutes; older rows go."""
    changes.prune()
