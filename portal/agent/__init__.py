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


def warm_up(app: Flask) -> None:
    """Compile what an agent's first requests in a worker would otherwise compile, once in
    gunicorn's master before forking (bench/agent_queue.py does as it does): the report's
    statements, the signed-in user's read, the queue's tab counts and pages, the SLA sweep's
    reads, the filter lists and the surge strip of the page's header. Never raises: a server
    that cannot warm up still serves."""
    import logging

    from portal.agent import jobs, queue, reports, services
    from portal.auth.services import signed_in_user
    from portal.extensions import db
    from portal.surges import services as surges

    reports.warm_up(app)
    try:
        with app.app_context():
            signed_in_user(0, "")  # no one: compiled, remembered for no one
            queue.warm_up()
            jobs.warm_up_sweep()
            services.choice_lists()
            surges.open_count()
            surges.open_surges()
            surges.ended_surges()
            db.session.rollback()
    except Exception:
        logging.getLogger(__name__).exception("agent warm-up failed")


def init_app(app: Flask) -> None:
    from portal.agent.queue import due_in, sla_state

    app.register_blueprint(bp)
    app.add_template_filter(sla_state, "sla_state")
    app.add_template_filter(due_in, "due_in")
    app.cli.add_command(tickets_cli)
