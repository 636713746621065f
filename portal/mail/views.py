"""Admin → Mail: messages that could not be delivered, with "retry now"."""

from flask import abort, flash, redirect, render_template, url_for

from portal.auth.views import admin_required
from portal.extensions import db
from portal.mail import bp, services
from portal.mail.models import MailStatus, OutboxMessage


@bp.route("/")
@admin_required
def index():
    return render_template("mail/index.html", messages=services.undelivered())


@bp.post("/<int:message_id>/retry")
@admin_required
def retry(message_id: int):
    row = db.session.get(OutboxMessage, message_id)
    if row is None or row.status not in (MailStatus.FAILED, MailStatus.RETRYING):
        abort(404)
    services.retry_now(row)
    db.session.commit()
    flash(f"The message to {row.recipient} is queued again.", "success")
    return redirect(url_for("mail.index"), code=303)
