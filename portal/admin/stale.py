"""Admin → Support settings → Stale tickets: idle thresholds per status."""

from flask import flash, redirect, render_template, request, url_for
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from portal.admin import bp
from portal.agent.stale import DEFAULT_HOURS, MAX_HOURS, STALE_STATUSES, save_threshold_hours
from portal.agent.stale import threshold_hours as current_hours
from portal.auth.views import admin_required
from portal.extensions import db
from portal.forms import PortalForm

STATUS_LABELS = {"new": "New", "open": "Open", "pending": "Awaiting customer",
                 "on_hold": "On hold"}


class StaleForm(PortalForm):
    pass


for _status in STALE_STATUSES:
    setattr(StaleForm, _status.value, IntegerField(
        f"{STATUS_LABELS[_status.value]} (hours)",
        validators=[InputRequired("Give a number of hours (0 turns the alert off)."),
                    NumberRange(min=0, max=MAX_HOURS,
                                message=f"Use 0 to {MAX_HOURS} hours (0 turns it off).")],
        description=f"Default {DEFAULT_HOURS[_status]}.",
    ))


@bp.route("/support/stale", methods=["GET", "POST"])
@admin_required
def stale_settings():
    form = StaleForm()
    if request.method == "GET":
        for status, hours in current_hours().items():
            form[status.value].data = hours
    if form.validate_on_submit():
        save_threshold_hours({status: form[status.value].data for status in STALE_STATUSES})
        db.session.commit()
        flash("Stale-ticket thresholds saved.", "success")
        return redirect(url_for("admin.stale_settings"), code=303)
    return render_template("admin/support/stale.html", form=form,
                           statuses=[s.value for s in STALE_STATUSES]), (
        422 if form.errors else 200)
