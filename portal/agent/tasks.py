"""The ticket jobs the workers run on a schedule (the `flask tickets …` commands remain as
manual triggers)."""

from datetime import timedelta

from portal.agent import counts
from portal.agent.jobs import autoclose, check_sla
from portal.agent.stale import check_stale
from portal.jobs import scheduled


@scheduled("tickets.sla", every=timedelta(minutes=1))
def sla_escalation() -> None:
    """Flag SLA breaches and escalate tickets near or past breach."""
    check_sla()


@scheduled("tickets.stale", every=timedelta(minutes=1))
def stale_alerts() -> None:
    """Flag tickets idle past their status's threshold and tell their people."""
    check_stale()


@scheduled("tickets.autoclose", every=timedelta(hours=1))
def autoclose_solved() -> None:
    autoclose()


@scheduled("tickets.queue_counts", every=timedelta(minutes=1))
def fold_queue_counts() -> None:
    """Fold the rows the database added for the queue's tab counts (portal.agent.counts)."""
    counts.compact()
