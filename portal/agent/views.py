from flask import render_template

from portal.agent import bp
from portal.auth.views import agent_required


@bp.route("/")
@agent_required
def queue():
    return render_template("agent/queue.html")
