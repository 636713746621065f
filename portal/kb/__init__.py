from flask import Blueprint

# The home page lives at "/" (public_bp); everything else under /kb.
public_bp = Blueprint("home", __name__)
bp = Blueprint("kb", __name__, url_prefix="/kb")

from portal.kb import views  # noqa: E402,F401
