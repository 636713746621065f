"""The email channel: mail to the support address becomes tickets and replies.

Three ways in (`flask mail receive` for an MTA pipe, `flask mail serve` as an SMTP listener,
IMAP polling as a scheduled job) store the raw message first; a job then processes it
(`services.process`). Admin → Inbound mail shows every message with its status and reason.
"""

from __future__ import annotations

from flask import Blueprint, Flask
from sqlalchemy import select

from portal.extensions import db

bp = Blueprint("inbound", __name__, url_prefix="/admin/inbound")


def threading_headers(ticket, address: str) -> dict:
    """Headers that make an email about `ticket` to `address` thread in every client and
    bring the reply back to the ticket: a signed Message-ID and Reply-To, In-Reply-To and
    References to the ticket's thread (its signed root, then the customer's own messages)."""
    from portal.inbound import tokens
    from portal.inbound.models import InboundMessage, InboundStatus

    received = list(db.session.scalars(
        select(InboundMessage.message_id)
        .where(InboundMessage.ticket_id == ticket.id,
               InboundMessage.status.in_([InboundStatus.PROCESSED, InboundStatus.PENDING]),
               InboundMessage.message_id != "")
        .order_by(InboundMessage.id)
    ))
    references = [tokens.thread_root(ticket.id), *received[:1], *received[1:][-18:]]
    return {
        "message_id": tokens.message_id(ticket.id),
        "reply_to": tokens.reply_address(ticket.id, address),
        "in_reply_to": references[-1],
        "references": references,
    }


def init_app(app: Flask) -> None:
    from portal.inbound import services, tasks, views  # noqa: F401
    from portal.inbound.agent_views import agent_bp
    from portal.inbound.cli import mail_cli

    app.register_blueprint(bp)
    app.register_blueprint(agent_bp)
    app.cli.add_command(mail_cli)
    # The agent's ticket page shows bouncing addresses and links messages to their emails.
    app.add_template_global(services.bounces_for, "inbound_bounces")
