"""Several hosts on one PostgreSQL: the change feed, shared rate limits, start-up checks."""

from flask import Flask


def init_app(app: Flask) -> None:
    from portal.cluster import tasks  # noqa: F401  (registers the scheduled prune)
