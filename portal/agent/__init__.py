from flask import Blueprint, Flask

bp = Blueprint("agent", __name__, url_prefix="/agent")

from portal.agent import views  # noqa: E402,F401


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
