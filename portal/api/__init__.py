"""The REST API at /api/v1: OpenAPI 3.1 generated from the code (flask-smorest), personal
API tokens with scopes (managed in account settings), and a reference page.

flask-smorest plugs into the existing app factory as a Blueprint subclass (apiflask would
replace the Flask class). Its app-wide JSON error handler is not installed: the HTML error
pages stay as they are, and the API blueprint answers its own errors as RFC 9457 problems.
"""

from flask import Blueprint, Flask
from flask_smorest import Api

API_DEFAULTS = {
    "API_TITLE": "Support portal API",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.1.0",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "API_RATE_LIMIT": "600 per minute",  # per token; a write counts as two requests
}

pages = Blueprint("api_pages", __name__)


class PortalApi(Api):
    def _register_error_handlers(self):
        """The API blueprint handles its own errors (portal.api.core); see the module doc."""


def init_app(app: Flask) -> None:
    from portal.api import core, hooks, kb, people, tasks, tickets, views  # noqa: F401
    from portal.extensions import csrf

    for key, value in API_DEFAULTS.items():
        app.config.setdefault(key, value)
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": "Authenticate with `Authorization: Bearer <token>` (create "
                                "one in Account settings → API tokens). Errors are RFC 9457 "
                                "problem details; lists use cursor pagination."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })
    api = PortalApi(app)
    csrf.exempt(core.blp)  # bearer tokens only, never cookies: see portal.api.core
    api.register_blueprint(core.blp)
    app.extensions["portal_api"] = api
    app.register_blueprint(pages)
