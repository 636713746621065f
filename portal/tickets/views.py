from flask import render_template
from flask_login import login_required

from portal.tickets import bp


@bp.route("/")
@login_required
def my_requests():
    return render_template("tickets/list.html")
