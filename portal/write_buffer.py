"""Analytics rows kept in memory per process and written in one short transaction per flush.

Writing each article view or suggestion impression as it happened took the database's write
lock on a page that otherwise only reads (and on SQLite made the other workers' writes wait).
Such a row is now appended to its buffer (`append`), and `flush` writes all the rows a buffer
holds at once, with the time each happened, through the writer registered for it (`@writer`),
so the reports see the same data a few seconds later.

A buffer is flushed after a reading request (GET or HEAD) that finds its oldest row older
than VIEW_FLUSH_SECONDS (config; 0 writes every row at once), by a timer VIEW_FLUSH_SECONDS
after its first row (so an idle worker's rows are written too), before a report reads them
(`flush_all`: this process's rows; another worker's are at most VIEW_FLUSH_SECONDS old), and by
gunicorn's worker_exit hook. A write that fails (a busy database) keeps its rows and is tried
again by a timer. A crashed process loses the rows it had not flushed yet: at most
VIEW_FLUSH_SECONDS' worth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask, current_app, request
from sqlalchemy.orm import Session

from portal.extensions import db

log = logging.getLogger(__name__)

Writer = Callable[[Session, list], None]
_writers: dict[str, Writer] = {}


def init_app(app: Flask) -> None:
    app.after_request(_flush_due_after_reading)


def _flush_due_after_reading(response):
    """Write the buffers that are due once a reading request has answered. Not after other
    methods: the write commits the request's transaction first, and a POST's changes are for
    its view alone to commit."""
    if request.method in ("GET", "HEAD"):
        for name in list(_buffers()):
            flush_if_due(name)
    return response


def writer(name: str) -> Callable[[Writer], Writer]:
    """Register `write(session, rows)` as the writer of the buffer `name`."""
    def register(write: Writer) -> Writer:
        _writers[name] = write
        return write

    return register


class _Buffer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list = []
        self.since = time.monotonic()  # when the oldest row held arrived

    def put(self, rows: list) -> bool:
        """Keep `rows`; True when the buffer was empty."""
        with self.lock:
            first = not self.rows
            if first:
                self.since = time.monotonic()
            self.rows.extend(rows)
        return first

    def take(self) -> list:
        with self.lock:
            rows, self.rows = self.rows, []
        return rows

    def put_back(self, rows: list) -> None:
        with self.lock:
            self.rows[:0] = rows


def _buffers() -> dict[str, _Buffer]:
    extensions = current_app.extensions
    buffers = extensions.get("portal_write_buffers")
    if buffers is None:
        buffers = extensions.setdefault("portal_write_buffers", {})
    return buffers


def _buffer(name: str) -> _Buffer:
    buffers = _buffers()
    buffer = buffers.get(name)
    if buffer is None:
        buffer = buffers.setdefault(name, _Buffer())
    return buffer


def append(name: str, rows: list) -> None:
    """Keep `rows` for the writer `name`: no database work (unless VIEW_FLUSH_SECONDS is 0)."""
    if not rows:
        return
    first = _buffer(name).put(rows)
    if current_app.config["VIEW_FLUSH_SECONDS"] <= 0:
        flush(name)
    elif first and not current_app.testing:
        _flush_later(current_app._get_current_object(), name)


def _flush_later(app, name: str) -> None:
    """Write this buffer in VIEW_FLUSH_SECONDS (so an idle worker's rows are written too);
    after a failure (a busy database), try again as long as rows wait."""
    seconds = app.config["VIEW_FLUSH_SECONDS"]
    if seconds > 0:
        timer = threading.Timer(seconds, _flush_now, [app, name])
        timer.daemon = True
        timer.start()


def _flush_now(app, name: str) -> None:
    with app.app_context():
        _flush_or_retry(name)


def _flush_or_retry(name: str) -> int:
    """`flush(name)`; on a failure (a busy database) the rows stay buffered, the failure is
    logged, and a timer tries again: no caller (a request, a report) answers for it."""
    try:
        return flush(name)
    except Exception:
        log.exception("writing buffered %s failed; trying again", name)
        if not current_app.testing:
            _flush_later(current_app._get_current_object(), name)
        return 0


def flush_if_due(name: str) -> int:
    """Flush `name` when its oldest row is VIEW_FLUSH_SECONDS old; returns how many."""
    buffer = _buffer(name)
    if buffer.rows and time.monotonic() - buffer.since >= current_app.config[
            "VIEW_FLUSH_SECONDS"]:
        return _flush_or_retry(name)
    return 0


def flush(name: str) -> int:
    """Write the rows buffered for `name` in this process; returns how many. Safe to call any
    time (a request, a report, at exit); on a failure the rows stay buffered."""
    buffer = _buffer(name)
    rows = buffer.take()
    if not rows:
        return 0
    try:
        with db.writing() as session:
            _writers[name](session, rows)
    except Exception:
        buffer.put_back(rows)
        raise
    return len(rows)


def flush_all() -> int:
    """Write every buffer of this process (before a report reads, at a worker's exit)."""
    return sum(_flush_or_retry(name) for name in list(_buffers()))
