"""The on-disk index, one shared searcher per thread, and guarded writers.

Opening a searcher per query costs more than the query itself, so each thread keeps one and
swaps it only when the index generation on disk changed (a directory listing). A request
looks at the disk once: its first use of the searcher checks, later uses within the same
request (a suggestion used it ~18 times) reuse the answer, unless this process wrote to the
index meanwhile. Writers
take Whoosh's file lock with a timeout: another process holding it -> `LockError`, and the
caller leaves its queue rows for a later try. A failed commit cancels the writer (releasing
the lock) and forgets the open index, so the next write starts clean.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

from flask import current_app, has_request_context, request
from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage
from whoosh.index import FileIndex, LockError
from whoosh.index import IndexError as UnreadableIndexError
from whoosh.searching import Searcher
from whoosh.util.filelock import try_for
from whoosh.writing import CLEAR, SegmentWriter

from portal.search.schema import INDEX_NAME, build_schema

log = logging.getLogger(__name__)

# Errors that mean "the index could not be read or written now"; the database stays right.
# (Whoosh's IndexError covers a missing index, EmptyIndexError, and a damaged table of
# contents.)
INDEX_ERRORS = (LockError, OSError, UnreadableIndexError)


class IndexStore:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._ix: FileIndex | None = None
        self._open_lock = threading.Lock()
        self._local = threading.local()
        # True when this process had to create an empty index: the database must be re-queued.
        self.created_empty = False
        # A background rebuild of the whole index is running in this process (recovery.py).
        self.rebuilding = False
        self.rebuild_thread: threading.Thread | None = None
        # Bumped by every commit of this process's writers: a request that checked the
        # disk before its own write checks again.
        self._commits = 0

    # --- opening ---------------------------------------------------------------------------
    def index(self) -> FileIndex:
        ix = self._ix
        if ix is None:
            with self._open_lock:
                if self._ix is None:
                    self._ix = self._open_or_create()
                ix = self._ix
        return ix

    def _open_or_create(self) -> FileIndex:
        self.path.mkdir(parents=True, exist_ok=True)
        storage = FileStorage(str(self.path))
        opened = self._open(storage)
        if opened is not None:
            return opened
        # Creating overwrites: take a file lock so two processes do not both create.
        create_lock = storage.lock(f"{INDEX_NAME}_create")
        if not create_lock.acquire(blocking=True):
            raise LockError("could not lock the index for creation")
        try:
            opened = self._open(storage)
            if opened is not None:
                return opened
            log.info("search index missing or unreadable at %s: creating it empty", self.path)
            ix = storage.create_index(build_schema(), indexname=INDEX_NAME)
            self.created_empty = True
            return ix
        finally:
            create_lock.release()

    def _open(self, storage: FileStorage) -> FileIndex | None:
        """The index on disk, or None when it is missing or damaged (then it is created
        afresh, which deletes the damaged table of contents, and rebuilt)."""
        try:
            if not whoosh_index.exists(storage, indexname=INDEX_NAME):
                return None
            ix = storage.open_index(indexname=INDEX_NAME)
            ix.latest_generation()
            return ix
        except UnreadableIndexError:
            log.exception("search index at %s is unreadable", self.path)
            return None

    def reset(self) -> None:
        """Forget the open index and searchers (after a failure or a deleted folder)."""
        with self._open_lock:
            self._ix = None
        self._local.__dict__.clear()

    # --- reading ---------------------------------------------------------------------------
    def searcher(self) -> Searcher:
        """This thread's searcher, refreshed when the index changed on disk (looked at once
        per request, and at every call outside requests)."""
        searcher = getattr(self._local, "searcher", None)
        checked = self._checked_marker()
        if searcher is not None and checked is not None \
                and getattr(self._local, "checked", None) == checked:
            return searcher
        try:
            if searcher is None:
                searcher = self._open_searcher()
            elif not searcher.up_to_date():
                # Not searcher.refresh(): its reader reuse keeps stale deletion sets, so an
                # updated article would be found in both its old and new versions.
                searcher.close()
                searcher = self._open_searcher()
        except (OSError, UnreadableIndexError):
            # The folder was deleted or damaged: start again from an empty index.
            log.exception("search index unreadable; recreating it")
            self.reset()
            searcher = self._open_searcher()
        if searcher is not getattr(self._local, "searcher", None):
            self._local.searcher = searcher
            self._local.memo = {}
        self._local.checked = checked
        return searcher

    def _checked_marker(self) -> tuple | None:
        """What identifies "this request, since this process's last index commit": the
        request object (by a weak reference, so a later request at the same address is not
        taken for it) and the commit count. None outside a request: check every time."""
        if not has_request_context():
            return None
        return (weakref.ref(request._get_current_object()), self._commits)

    def _open_searcher(self) -> Searcher:
        """A new searcher whose segment files are closed when it is dropped (its thread
        ended, or the store was reset or replaced), not left open for the collector."""
        searcher = self.index().searcher()
        weakref.finalize(searcher, _close_quietly, searcher.reader())
        return searcher

    def memo(self, key, compute):
        """A value derived from this thread's current searcher (e.g. a filter's doc set),
        computed once per index generation."""
        searcher = self.searcher()
        memo = self._local.memo
        if key not in memo:
            memo[key] = compute(searcher)
        return memo[key]

    def generation(self) -> int:
        return self.searcher().reader().generation()

    # --- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def writer(self, timeout: float, *, clear: bool = False, memory_mb: int = 64
               ) -> Iterator[SegmentWriter]:
        """Yield a writer holding the index lock and commit it; on failure cancel and re-raise.

        Segments are written as separate files, not Whoosh's default compound file: a reader
        of a compound segment copies each file it opens from it into memory (BytesIO over
        the mapped file), ~300 MB per worker and per new searcher at 100,000 articles;
        separate files are read in place, through the page cache every process shares.

        The lock is taken here rather than by SegmentWriter: if creating the writer fails
        (disk full), SegmentWriter would keep its lock and this process could never write
        again. Whoosh's lock is an OS file lock, so a killed process releases it.
        """
        ix = self.index()
        lock = ix.lock("WRITELOCK")
        if not try_for(lock.acquire, timeout=timeout, delay=0.05):
            raise LockError("the search index is locked by another writer")
        writer = None
        try:
            writer = SegmentWriter(ix, _lk=False, limitmb=memory_mb, compound=False)
            yield writer
            writer.commit(mergetype=CLEAR) if clear else writer.commit()
            self._commits += 1
        except BaseException:
            if writer is not None and not writer.is_closed:
                with contextlib.suppress(Exception):
                    writer.cancel()
            self.reset()
            raise
        finally:
            with contextlib.suppress(Exception):
                lock.release()


def _close_quietly(reader) -> None:
    if not getattr(reader, "is_closed", False):
        with contextlib.suppress(Exception):
            reader.close()


def store() -> IndexStore:
    """The IndexStore of the current app (one per index folder)."""
    app = current_app._get_current_object()
    existing = app.extensions.get("portal_search_store")
    if existing is None or existing.path != Path(app.config["INDEX_DIR"]):
        existing = IndexStore(app.config["INDEX_DIR"])
        app.extensions["portal_search_store"] = existing
    return existing


