"""Admin → Inbound mail: every received message with status and reason, the original as
text (never rendered as HTML), reprocess, and addresses marked as bouncing."""

from flask import abort, flash, redirect, render_template, request, url_for

from portal.auth.views import admin_required
from portal.extensions import db
from portal.inbound import bp, services
from portal.inbound.forms import InboundSettingsForm
from portal.inbound.models import BouncingAddress, InboundMessage, InboundStatus


@bp.route("/")
@admin_required
def index():
    status = request.args.get("status", "")
    return render_template(
        "inbound/index.html", messages=services.recent(status or None), status=status,
        statuses=list(InboundStatus), counts=services.counts(),
        bouncing=services.bouncing_list(),
        settings_form=InboundSettingsForm(formdata=None, add_ccs=services.add_ccs()),
    )


@bp.post("/settings")
@admin_required
def settings():
    form = InboundSettingsForm()
    if form.validate_on_submit():
        services.set_add_ccs(form.add_ccs.data)
        db.session.commit()
        flash("Inbound mail settings saved.", "success")
    return redirect(url_for("inbound.index"), code=303)


@bp.route("/<int:message_id>")
@admin_required
def detail(message_id: int):
    row = db.session.get(InboundMessage, message_id) or abort(404)
    return render_template(
        "inbound/detail.html", message=row, content=services.readable_parts(row),
        original=services.readable_original(row),
    )


@bp.post("/<int:message_id>/reprocess")
@admin_required
def reprocess(message_id: int):
    row = db.session.get(InboundMessage, message_id) or abort(404)
    if row.status == InboundStatus.PROCESSED:
        flash("This message was processed already; reprocessing would add it twice.", "error")
    else:
        services.reprocess(row)
        db.session.commit()
        flash(f"Message {row.id} is queued for processing again.", "success")
    return redirect(url_for("inbound.detail", message_id=row.id), code=303)


@bp.post("/bounces/<int:bounce_id>/clear")
@admin_required
def clear_bounce(bounce_id: int):
    bounce = db.session.get(BouncingAddress, bounce_id) or abort(404)
    email = bounce.email
    db.session.delete(bounce)
    db.session.commit()
    flash(f"Mail to {email} is sent again for this ticket.", "success")
    return redirect(url_for("inbound.index"), code=303)
