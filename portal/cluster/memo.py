"""Per-process caches of what changes rarely, kept coherent across processes and hosts.

`watch(topic, *models)` makes every ORM insert, change or delete of those models record
`topic` in the change feed (portal.cluster.changes), in the writing transaction.
`remember(topic, key, build)` returns `build()`'s value, computed once per process and reused
until the feed shows a change to `topic`: at once in the process that wrote it, within about a
second in every other process and host. A cached value is shared by concurrent requests: keep
it to plain, read-only data (tuples, strings, detached objects whose shown attributes are
loaded), never an object that a request changes.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict

from flask import current_app
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from portal.cluster import changes
from portal.extensions import db

ENTRIES = 4096  # per process; the least recently used go first (e.g. one per article)
# model -> the topics it feeds, each with the attributes whose change alone is none for it
_topics: dict[type, dict[str, frozenset[str]]] = {}
_lock = threading.Lock()


class _Store(OrderedDict):
    def __init__(self) -> None:
        super().__init__()
        self.pid = os.getpid()


def watch(topic: str, *models: type, ignore: tuple[str, ...] = ()) -> None:
    """`ignore`: attributes whose change alone is no change for `topic` (e.g. a user's last
    sign-in time, written at every sign-in). A model may feed several topics."""
    for model in models:
        _topics.setdefault(model, {})[topic] = frozenset(ignore)


def _changed(obj, ignored: frozenset[str]) -> bool:
    return any(attr.history.has_changes() for attr in inspect(obj).attrs
               if attr.key not in ignored)


@event.listens_for(Session, "after_flush")
def _record_watched(session: Session, _context) -> None:
    """Inside the flush, so the feed row commits (or rolls back) with the change itself."""
    if not _topics or not db.session.registry.has() or session is not db.session.registry():
        return
    touched = {topic for obj in (*session.new, *session.deleted)
               for topic in _topics.get(type(obj), ())}
    touched |= {topic for obj in session.dirty
                for topic, ignored in _topics.get(type(obj), {}).items()
                if _changed(obj, ignored)}
    for topic in touched:
        changes.record(topic)


def remember(topic: str, key, build, *, max_age: float | None = None):
    """`build()`, computed again only after a change to `topic` (see the module's doc), or
    once it is `max_age` seconds old (for what also moves without the ORM, e.g. counters)."""
    version = changes.version(topic)
    store = current_app.extensions.get("portal_memo")
    if store is None or store.pid != os.getpid():  # a forked worker starts afresh: its
        store = current_app.extensions["portal_memo"] = _Store()  # feed versions do too
    now = time.monotonic()
    with _lock:
        hit = store.get((topic, key))
        if hit is not None and hit[0] == version and (max_age is None or now - hit[1] < max_age):
            store.move_to_end((topic, key))
            return hit[2]
    value = build()
    with _lock:
        store[(topic, key)] = (version, now, value)
        store.move_to_end((topic, key))
        while len(store) > ENTRIES:
            store.popitem(last=False)
    return value
