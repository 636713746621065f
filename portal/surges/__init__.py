"""Surges and problems: similar tickets grouped as they arrive, spikes raised to agents,
problems that link incidents and answer them together, and known issues for customers."""

from flask import Blueprint, Flask

bp = Blueprint("surges", __name__, url_prefix="/agent/surges")
known_bp = Blueprint("known_issues", __name__, url_prefix="/known-issues")


def _enqueue_embedding(ticket, **_extra) -> None:
    from portal.jobs import enqueue
    from portal.surges.tasks import EMBED_JOB

    enqueue(EMBED_JOB, {"ticket_id": ticket.id})


def init_app(app: Flask) -> None:
    from portal import signals
    from portal.surges import public, tasks  # noqa: F401
    from portal.surges.views import admin_bp, problems_bp

    app.register_blueprint(bp)
    app.register_blueprint(problems_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(known_bp)
    signals.ticket_created.connect(_enqueue_embedding)
    app.context_processor(_agent_surge_count)


def _agent_surge_count() -> dict:
    """`surge_count()` for the agent navigation and `known_issues()` for the home page's
    banner: functions, so only the pages that show them pay for the query."""
    from portal.surges.known_issues import banner
    from portal.surges.problems import hint_for
    from portal.surges.services import ended_surges, open_count, open_surges

    return {"surge_count": open_count, "open_surges": open_surges,
            "ended_surges": ended_surges, "known_issues": banner, "problem_hint": hint_for}
