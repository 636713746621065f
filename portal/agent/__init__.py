"""The agent workspace: queue, ticket page, reports, and the scheduled ticket jobs."""

import click
from flask import Blueprint, Flask
from flask.cli import AppGroup

bp = Blueprint("agent", __name__, url_prefix="/agent")
tickets_cli = AppGroup("tickets", help="Scheduled ticket jobs (safe to run from cron).")

from portal.agent import tasks, views  # noqa: E402,F401


@tickets_cli.command("autoclose")
def autoclose_command() -> None:
    """Close tickets solved more than the set number of days ago."""
    from portal.agent.jobs import autoclose, autoclose_days
    from portal.extensions import db

    closed = autoclose()
    db.session.commit()
    click.echo(f"Closed {closed} ticket{'s' if closed != 1 else ''} solved over "
               f"{autoclose_days()} days ago.")


@tickets_cli.command("escalate")
def escalate_command() -> None:
    """Flag SLA breaches and escalate tickets near or past breach (emails assignee + group)."""
    from portal.agent.jobs import check_sla
    from portal.extensions import db

    breaches, escalations = check_sla()
    db.session.commit()
    click.echo(f"Flagged {breaches} breach{'es' if breaches != 1 else ''}, "
               f"escalated {escalations} ticket{'s' if escalations != 1 else ''}.")


@tickets_cli.command("sweep-uploads")
@click.option("--older-than-hours", default=24, show_default=True,
              help="Leave younger files alone: their request may still be running.")
def sweep_uploads_command(older_than_hours: int) -> None:
    """Remove attachment files no ticket refers to (left by a crash); run daily."""
    from datetime import timedelta

    from portal.tickets.attachments import sweep_orphan_uploads

    result = sweep_orphan_uploads(timedelta(hours=older_than_hours))
    click.echo(f"Removed {result.removed} orphan upload{'s' if result.removed != 1 else ''}, "
               f"moved {result.restored} into place.")


def init_app(app: Flask) -> None:
    from portal.agent.queue import due_in, sla_state

    app.register_blueprint(bp)
    app.add_template_filter(sla_state, "sla_state")
    app.add_template_filter(due_in, "due_in")
    app.cli.add_command(tickets_cli)
