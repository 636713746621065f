from flask import render_template

from portal.admin import bp
from portal.auth.views import admin_required


@bp.route("/")
@admin_required
def index():
    return render_template("admin/index.html")
