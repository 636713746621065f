"""Several hosts on one PostgreSQL: the change feed, shared rate limits, start-up checks."""

import logging
from pathlib import Path

from flask import Flask

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    from portal.cluster import ratelimit, tasks  # noqa: F401  (storage scheme; scheduled prune)

    if app.config["STARTUP_CHECKS"] and not app.config.get("TESTING"):
        for problem in startup_problems(app):
            log.error("\n%s\n!!! %s\n%s", "!" * 78, problem, "!" * 78)


def startup_problems(app: Flask) -> list[str]:
    """What a fresh install may lack; each silently disables a feature otherwise."""
    problems = []
    htmx = Path(app.static_folder) / "vendor" / "htmx.min.js"
    if not htmx.exists():
        problems.append(f"htmx is missing ({htmx}): live search, suggestions and every other "
                        "htmx feature are off. Run `make install-prod` (npm ci).")
    if app.config["SEMANTIC_SEARCH"]:
        from portal.search.embeddings import installed_model_zip

        path = app.config.get("SEMANTIC_MODEL_PATH")
        model_zip = Path(path) if path else installed_model_zip()
        found = model_zip is not None and model_zip.exists()
        if not found:
            problems.append("The search model is missing: search runs keyword-only. Run "
                            "`make install-prod`, or set PORTAL_SEMANTIC_SEARCH=false.")
    return problems
