"""What agents see of the email channel on a ticket: the full email behind a message
(quoted history included, as text) and the addresses whose mail bounced, with "clear"."""

from flask import Blueprint, abort, flash, redirect, render_template, url_for

from portal.auth.views import agent_required
from portal.extensions import db
from portal.inbound import services
from portal.inbound.models import BouncingAddress, InboundMessage

agent_bp = Blueprint("inbound_agent", __name__, url_prefix="/agent/tickets")


@agent_bp.route("/<int:ticket_id>/emails/<int:inbound_id>")
@agent_required
def full_email(ticket_id: int, inbound_id: int):
    row = db.session.get(InboundMessage, inbound_id)
    if row is None or row.ticket_id != ticket_id:
        abort(404)
    return render_template("inbound/full_email.html", message=row,
                           content=services.readable_parts(row), ticket_id=ticket_id)


@agent_bp.post("/<int:ticket_id>/bounces/<int:bounce_id>/clear")
@agent_required
def clear_bounce(ticket_id: int, bounce_id: int):
    bounce = db.session.get(BouncingAddress, bounce_id)
    if bounce is None or bounce.ticket_id != ticket_id:
        abort(404)
    email = bounce.email
    db.session.delete(bounce)
    db.session.commit()
    flash(f"Mail to {email} is sent again for this ticket.", "success")
    return redirect(url_for("agent.ticket", ticket_id=ticket_id), code=303)
