from flask import Blueprint, Flask

# The home page lives at "/" (public_bp); everything else under /kb; agent tools at /agent/kb.
public_bp = Blueprint("home", __name__)
bp = Blueprint("kb", __name__, url_prefix="/kb")
manage_bp = Blueprint("kb_manage", __name__, url_prefix="/agent/kb")

from portal.kb import manage, views  # noqa: E402,F401


def init_app(app: Flask) -> None:
    from portal.kb.cli import kb_cli

    app.register_blueprint(public_bp)
    app.register_blueprint(bp)
    app.register_blueprint(manage_bp)
    app.cli.add_command(kb_cli)
