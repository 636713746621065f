from flask import Blueprint

bp = Blueprint("agent", __name__, url_prefix="/agent")

from portal.agent import views  # noqa: E402,F401
