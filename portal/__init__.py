"""The support portal: a knowledge base and support tickets, served by Flask."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from portal.config import ROOT, default_config, finish_config, secure_instance

__all__ = ["create_app"]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=(config or {}).get("INSTANCE_PATH")
        or os.environ.get("PORTAL_INSTANCE_PATH")
        or str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.from_mapping(default_config(app.instance_path))
    app.config.from_prefixed_env("PORTAL")
    if config:
        app.config.from_mapping(config)
    finish_config(app)
    _configure_logging(app)
    secure_instance(app)
    _init_extensions(app)
    from portal import converters

    converters.init_app(app)
    _register_blueprints(app)
    _register_template_helpers(app)

    from portal import cli, security
    from portal.search import semantic

    semantic.init_app(app)

    security.init_app(app)
    cli.init_app(app)
    return app


def _configure_logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def _init_extensions(app: Flask) -> None:
    from portal import write_buffer
    from portal.auth.views import init_login
    from portal.extensions import csrf, db, htmx, limiter, login_manager
    from portal.htmx import add_vary

    db.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    init_login(login_manager)
    app.config.setdefault("RATELIMIT_ENABLED", True)
    limiter.init_app(app)
    app.after_request(add_vary)
    write_buffer.init_app(app)


def _register_blueprints(app: Flask) -> None:
    """Each domain package registers its own blueprints, CLI commands and signal handlers."""
    from portal import (
        admin,
        agent,
        api,
        auth,
        cluster,
        inbound,
        jobs,
        kb,
        mail,
        surges,
        tickets,
        webhooks,
    )

    for domain in (jobs, cluster, mail, auth, kb, tickets, agent, surges, admin, inbound, api,
                   webhooks):
        domain.init_app(app)


def _register_template_helpers(app: Flask) -> None:
    from portal.templating import init_app

    init_app(app)
