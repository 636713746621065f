from flask import Blueprint, Flask

bp = Blueprint("tickets", __name__, url_prefix="/tickets")

from portal.tickets import views  # noqa: E402,F401


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
