from flask import Blueprint, Flask

bp = Blueprint("auth", __name__, url_prefix="/auth")

from portal.auth import views  # noqa: E402,F401


def init_app(app: Flask) -> None:
    from portal.auth.account import bp as account_bp
    from portal.auth.passwords import HINT

    app.register_blueprint(bp)
    app.register_blueprint(account_bp)
    app.jinja_env.globals["password_hint"] = HINT
