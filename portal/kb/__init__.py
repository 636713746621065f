from flask import Blueprint, Flask

# The home page lives at "/" (public_bp); everything else under /kb; agent tools at /agent/kb.
public_bp = Blueprint("home", __name__)
bp = Blueprint("kb", __name__, url_prefix="/kb")
manage_bp = Blueprint("kb_manage", __name__, url_prefix="/agent/kb")


def init_app(app: Flask) -> None:
    # Imported here, not at module level: the views import portal.search, which imports
    # portal.kb.models, so a module-level import made `import portal.search` circular.
    from portal.kb import manage, views  # noqa: F401
    from portal.kb.cli import kb_cli

    app.register_blueprint(public_bp)
    app.register_blueprint(bp)
    app.register_blueprint(manage_bp)
    app.cli.add_command(kb_cli)
