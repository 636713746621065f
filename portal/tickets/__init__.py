"""Customer tickets: filing (with article suggestions), following, replying, rating."""

from flask import Blueprint, Flask

bp = Blueprint("tickets", __name__, url_prefix="/tickets")

from portal.tickets import tasks, views  # noqa: E402,F401


def _claim_on_confirm(user, **_extra) -> None:
    """A visitor who registers and confirms the same email gets their earlier tickets."""
    from portal.tickets.services import claim_visitor_tickets

    claim_visitor_tickets(user)


def init_app(app: Flask) -> None:
    from portal.signals import email_confirmed

    app.register_blueprint(bp)
    email_confirmed.connect(_claim_on_confirm)
