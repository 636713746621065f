"""Outgoing webhooks: signed (Standard Webhooks) or Slack, delivered by the job queue.

Other domains send an event with `emit(type, data)` inside their transaction (surges:
`emit("surge.detected", {...})`); ticket changes and published articles arrive through
portal.signals without any call.
"""

from flask import Blueprint, Flask

from portal.webhooks.events import emit

__all__ = ["emit", "init_app"]

bp = Blueprint("webhooks", __name__, url_prefix="/admin/webhooks")

WEBHOOK_DEFAULTS = {
    "WEBHOOKS_ALLOW_HTTP": False,  # development only: plain http:// endpoints
    "WEBHOOKS_ALLOW_LOOPBACK": False,  # development and tests: a receiver on 127.0.0.1
}


def init_app(app: Flask) -> None:
    from portal.webhooks import events, tasks, views  # noqa: F401

    for key, value in WEBHOOK_DEFAULTS.items():
        app.config.setdefault(key, value)
    events.connect()
    app.register_blueprint(bp)
