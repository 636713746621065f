"""The baseline period's ticket vectors, kept in memory per worker process for the scan.

Reading a week of 384-float vectors every minute costs far more than the detection itself.
Vectors never change once written, so each scan reads only the rows embedded since the last
one (with a margin for transactions that committed late) and drops those older than the
period. A count of the period's rows, one indexed query, checks the copy: when it differs
(a late commit beyond the margin, a deleted ticket), the copy is read again in full.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from flask import current_app
from sqlalchemy import func, select

from portal.extensions import db
from portal.surges.models import TicketVector

log = logging.getLogger(__name__)

MARGIN = timedelta(minutes=10)  # rows embedded this long before the newest seen are re-read
_EPOCH = datetime(2000, 1, 1)


def minutes_of(at: datetime) -> float:
    return (at - _EPOCH).total_seconds() / 60


@dataclass
class Window:
    """Rows of the period, oldest first: what `portal.surges.detection.detect` takes."""

    ticket_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    group_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    minutes: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    embedded: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ticket_ids)

    def select(self, keep) -> Window:
        """The rows `keep` picks (a slice gives views, no copy)."""
        return Window(self.ticket_ids[keep], self.group_ids[keep], self.minutes[keep],
                      self.embedded[keep], None if self.vectors is None else self.vectors[keep])

    def between(self, after: float, upto: float) -> Window:
        """Rows with `after` < minutes <= `upto` (rows are sorted by minutes)."""
        lo, hi = np.searchsorted(self.minutes, [after, upto], side="right")
        return self if (lo, hi) == (0, len(self)) else self.select(slice(lo, hi))


class Recent:
    """One process's copy (forked workers start afresh)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.window = Window()
        self.since: datetime | None = None  # rows created after this are held
        self.newest: datetime | None = None  # the latest embedded_at read
        self.full_reads = 0
        self.lock = threading.Lock()

    def read(self, since: datetime, now: datetime) -> Window:
        """The rows created after `since` and at or before `now` (a view of the copy)."""
        with self.lock:
            return self._read(since, now)

    def _read(self, since: datetime, now: datetime) -> Window:
        if self.since is None or since < self.since:
            self._read_all(since)
        else:
            self._read_new(since)
            if len(self.window.between(minutes_of(since), minutes_of(now))) != \
                    _count(since, now):
                log.info("ticket vectors changed under the scan's copy: reading them again")
                self._read_all(since)
        return self.window.between(minutes_of(since), minutes_of(now))

    def _read_all(self, since: datetime) -> None:
        self.full_reads += 1
        self.window, self.since, self.newest = Window(), since, None
        self._append(_rows(TicketVector.ticket_created_at > since))

    def _read_new(self, since: datetime) -> None:
        if since > self.since:
            self.window = self.window.between(minutes_of(since), np.inf)
            self.since = since
        if self.newest is None:
            rows = _rows(TicketVector.ticket_created_at > since)
        else:
            rows = _rows(TicketVector.ticket_created_at > since,
                         TicketVector.embedded_at >= self.newest - MARGIN)
        held = set(self.window.ticket_ids.tolist())
        self._append([r for r in rows if r.ticket_id not in held])

    def _append(self, rows) -> None:
        if not rows:
            return
        new = Window(
            np.array([r.ticket_id for r in rows], np.int64),
            np.array([r.group_id for r in rows], np.int64),
            np.array([minutes_of(r.ticket_created_at) for r in rows], np.float64),
            np.array([minutes_of(r.embedded_at) for r in rows], np.float64),
            np.stack([np.frombuffer(r.vector, np.float32) for r in rows]))
        newest = max(r.embedded_at for r in rows)
        self.newest = newest if self.newest is None else max(self.newest, newest)
        old = self.window
        vectors = new.vectors if old.vectors is None else np.vstack([old.vectors, new.vectors])
        merged = Window(np.concatenate([old.ticket_ids, new.ticket_ids]),
                        np.concatenate([old.group_ids, new.group_ids]),
                        np.concatenate([old.minutes, new.minutes]),
                        np.concatenate([old.embedded, new.embedded]), vectors)
        in_order = not len(old) or new.minutes[0] >= old.minutes[-1]  # the usual case
        self.window = merged if in_order else \
            merged.select(np.argsort(merged.minutes, kind="stable"))


def _rows(*where):
    return db.session.execute(
        select(TicketVector.ticket_id, TicketVector.group_id, TicketVector.ticket_created_at,
               TicketVector.embedded_at, TicketVector.vector)
        .where(*where).order_by(TicketVector.ticket_created_at, TicketVector.ticket_id)).all()


def _count(since: datetime, now: datetime) -> int:
    return db.session.scalar(select(func.count()).select_from(TicketVector).where(
        TicketVector.ticket_created_at > since, TicketVector.ticket_created_at <= now)) or 0


def recent() -> Recent:
    """This process's copy for the current app."""
    held = current_app.extensions.get("surges_recent")
    if held is None or held.pid != os.getpid():
        held = current_app.extensions["surges_recent"] = Recent()
    return held
