"""Background work: a job queue in the portal's own database, workers, scheduled jobs.

Other domains use only what is exported here: `enqueue` in the transaction of a change,
`@job` for a handler, `@scheduled` for work that runs once per time slot across all workers.
"""

from flask import Blueprint, Flask

from portal.jobs.registry import job, scheduled
from portal.jobs.services import PermanentError, enqueue

__all__ = ["PermanentError", "enqueue", "init_app", "job", "scheduled"]

bp = Blueprint("jobs", __name__, url_prefix="/admin/jobs")


def init_app(app: Flask) -> None:
    from portal.jobs import tasks, views  # noqa: F401
    from portal.jobs.cli import jobs_cli

    app.register_blueprint(bp)
    app.cli.add_command(jobs_cli)
