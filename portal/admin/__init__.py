from flask import Blueprint, Flask

bp = Blueprint("admin", __name__, url_prefix="/admin")

from portal.admin import search_status, stale, support, views  # noqa: E402,F401


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
