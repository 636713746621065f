from flask import Blueprint, Flask

# The home page lives at "/" (public_bp); everything else under /kb.
public_bp = Blueprint("home", __name__)
bp = Blueprint("kb", __name__, url_prefix="/kb")

from portal.kb import views  # noqa: E402,F401


def init_app(app: Flask) -> None:
    app.register_blueprint(public_bp)
    app.register_blueprint(bp)
