"""A change feed for what each process keeps in memory.

`record(topic)` writes a sequence row in the caller's transaction (and, on PostgreSQL, a
NOTIFY that is delivered at commit). Every process follows the feed: on PostgreSQL a thread
LISTENs and also polls about once a second, so a killed notification connection costs at most
a second; on SQLite the reader polls at most once a second when asked. `version(topic)` is a
per-process counter that moves whenever a change to `topic` is seen: caches put it in their
keys.

Sequence numbers are given out at insert, not at commit: a transaction holding seq 7 may commit
after one holding seq 8. The follower therefore keeps a watermark (every seq at or below it is
seen) plus the set of seqs seen above it, and keeps asking for everything above the
watermark; a gap older than GAP_SECONDS is a rolled-back transaction and is skipped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta

from flask import Flask, current_app, has_app_context
from sqlalchemy import delete, event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from portal.cluster.models import ChangeRecord
from portal.db import utcnow
from portal.extensions import db

log = logging.getLogger(__name__)

CHANNEL = "portal_changes"
POLL_SECONDS = 1.0
GAP_SECONDS = 30.0  # a sequence number missing longer than this belongs to a rollback
KEEP = timedelta(hours=1)  # rows older than this are pruned by a scheduled job

KB = "kb"  # articles, sections, categories: search caches and visibility masks
EMBEDDINGS = "embeddings"
LEARNED = "learned"  # questions customers confirmed an article answered (portal/search/learned.py)
SETTINGS = "settings"


def record(topic: str) -> None:
    """Note a change to `topic`, in the caller's transaction (once per transaction)."""
    session = db.session
    transaction = session().get_transaction()
    noted = session.info.setdefault("changes_noted", {})
    if noted.get(topic) is transaction and transaction is not None:
        return
    session.execute(insert(ChangeRecord).values(topic=topic, created_at=utcnow()))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :topic)"),
                        {"channel": CHANNEL, "topic": topic})
    noted[topic] = session().get_transaction()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    """A process sees its own changes at once (read your writes), not a notification later."""
    if session.info.pop("changes_noted", None) and has_app_context():
        follower().refresh()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop("changes_noted", None)


def version(topic: str) -> int:
    """How many changes to `topic` this process has seen (caches key on it)."""
    return follower().version(topic)


def follower(app: Flask | None = None) -> Follower:
    app = app or current_app._get_current_object()
    existing = app.extensions.get("portal_changes")
    if existing is None or existing.pid != os.getpid():  # forked: a new process follows anew
        with _create_lock:
            existing = app.extensions.get("portal_changes")
            if existing is None or existing.pid != os.getpid():
                existing = Follower(app.config["DATABASE_URL"],
                                    f"portal-changes {os.path.basename(app.instance_path)}")
                app.extensions["portal_changes"] = existing
    existing.ensure_started()
    return existing


_create_lock = threading.Lock()


class Follower:
    def __init__(self, database_url: str, name: str = "portal-changes") -> None:
        self.pid = os.getpid()
        self.name = name[:60]  # the LISTEN connection's application_name
        self.url = make_url(database_url)
        self.postgres = self.url.get_backend_name() == "postgresql"
        self.lock = threading.Lock()
        self.versions: dict[str, int] = {}
        self.watermark: int | None = None
        self.seen_above: set[int] = set()
        self.gaps: dict[int, float] = {}  # missing seq -> when first missed
        self.polled_at = 0.0
        self.listening = False  # True while a LISTEN connection is open
        self.caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # --- reading ---------------------------------------------------------------------------
    def version(self, topic: str) -> int:
        if not self.postgres and time.monotonic() - self.polled_at >= POLL_SECONDS:
            self.refresh()
        return self.versions.get(topic, 0)

    def refresh(self) -> None:
        """Catch up now, on a pooled connection (after this process's own commits)."""
        with db.deferred(), db.engine.connect() as conn:
            self.catch_up(conn.exec_driver_sql)
            conn.rollback()

    def catch_up(self, execute) -> None:
        """Read the feed above the watermark; `execute(sql, params)` runs a query."""
        with self.lock:
            self.polled_at = time.monotonic()
            if self.watermark is None:
                self._start_watermark(execute)
                return
            rows = execute(
                "SELECT seq, topic FROM change_feed WHERE seq > %(w)s ORDER BY seq"
                if self.postgres else
                "SELECT seq, topic FROM change_feed WHERE seq > ? ORDER BY seq",
                {"w": self.watermark} if self.postgres else (self.watermark,),
            ).fetchall()
            for seq, topic in rows:
                if seq not in self.seen_above:
                    self.seen_above.add(seq)
                    self.versions[topic] = self.versions.get(topic, 0) + 1
            self._advance()

    def _start_watermark(self, execute) -> None:
        """Start just below the recent rows: a recent seq still uncommitted is then a gap."""
        since = utcnow() - timedelta(seconds=GAP_SECONDS)
        recent = execute(
            "SELECT min(seq), max(seq) FROM change_feed WHERE created_at > %(since)s"
            if self.postgres else
            "SELECT min(seq), max(seq) FROM change_feed WHERE created_at > ?",
            {"since": since} if self.postgres else (since.isoformat(sep=" "),),
        ).fetchone()
        if recent[0] is None:
            top = execute("SELECT max(seq) FROM change_feed", {} if self.postgres else ()
                          ).fetchone()[0]
            self.watermark = top or 0
        else:
            self.watermark = recent[0] - 1
            self.seen_above = set(range(recent[0], recent[1] + 1))
            # Those not really there yet are gaps: re-read them once so only real ones count.
            present = execute(
                "SELECT seq FROM change_feed WHERE seq > %(w)s" if self.postgres
                else "SELECT seq FROM change_feed WHERE seq > ?",
                {"w": self.watermark} if self.postgres else (self.watermark,),
            ).fetchall()
            self.seen_above = {row[0] for row in present}
            self._advance()

    def _advance(self) -> None:
        now = time.monotonic()
        top = max(self.seen_above, default=self.watermark)
        while self.watermark < top:
            following = self.watermark + 1
            if following in self.seen_above:
                self.seen_above.discard(following)
                self.gaps.pop(following, None)
                self.watermark = following
                continue
            first_missed = self.gaps.setdefault(following, now)
            if now - first_missed < GAP_SECONDS:
                break
            self.gaps.pop(following)  # rolled back: it will never appear
            self.watermark = following

    # --- the PostgreSQL listener -------------------------------------------------------------
    def ensure_started(self) -> None:
        if not self.postgres or (self._thread is not None and self._thread.is_alive()):
            return
        with self.lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._listen_forever, daemon=True,
                                            name="portal-changes")
            self._thread.start()
        self.caught_up.wait(5)  # the first read sets the watermark

    def stop(self) -> None:
        self._stop.set()

    def _connect(self):
        import psycopg

        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5,
                               application_name=self.name)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _listen_forever(self) -> None:
        import psycopg

        conn = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                    self.listening = True
                self.catch_up(conn.execute)  # after (re)connecting: nothing was missed
                self.caught_up.set()
                for _note in conn.notifies(timeout=POLL_SECONDS, stop_after=1):
                    pass
            except psycopg.Error as exc:
                log.warning("change feed connection lost (%s); polling until it is back", exc)
                self.listening = False
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(POLL_SECONDS)
        if conn is not None:
            conn.close()


def prune() -> int:
    """Delete rows every process has long since read."""
    result = db.session.execute(
        delete(ChangeRecord).where(ChangeRecord.created_at < utcnow() - KEEP,
                                   ChangeRecord.seq < select(func.max(ChangeRecord.seq))
                                   .scalar_subquery()))
    return result.rowcount
