"""Keeping the index true to the database.

`enqueue_article` writes an IndexQueue row and an index job in the caller's transaction, so the
article change and the "index me" note commit (or roll back) together, and no request waits
for the index or the embeddings. A worker runs the job: `process_index_queue` applies the
queued rows to the index, then the after-index hooks update the embeddings; `process_all` and
`reindex_all` end by writing the new segments' posting files (arrays.py). The queue takes
the index write lock first and only then reads the articles, so two processes can never
write an older version over a newer one. Rows are deleted only if unchanged since they were
read (a change queued meanwhile stays queued). Any index failure leaves the rows for the next
try: the job's retry, the scheduled catch-up every minute, or `flask kb reindex`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from flask import has_request_context
from sqlalchemy import bindparam, delete, insert, literal, select, update
from sqlalchemy.orm import selectinload

from portal.db import dialect_insert, utcnow
from portal.extensions import db
from portal.jobs import enqueue
from portal.kb.models import Article, IndexQueue, KbSection
from portal.search import pg
from portal.search.arrays import write_posting_files
from portal.search.documents import article_document
from portal.search.index import INDEX_ERRORS, store
from portal.search.spelling import write_vocabulary_files

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# What a full rebuild's writer may hold of sorted postings before spilling a run to disk
# (Whoosh's estimate: measured ~1.15x in Python objects). At 100,000 articles the index holds
# ~18 million postings: 256 MB made the rebuild hold ~660 MB; runs are merged at commit.
REINDEX_MEMORY_MB = 64
# How long a request waits for another process's index writer before leaving work queued.
REQUEST_LOCK_TIMEOUT = 2.0
CLI_LOCK_TIMEOUT = 60.0
INDEX_JOB = "search.index"

# Called with the article ids the queue just wrote to the index (e.g. to refresh embeddings);
# `reindex_all` does not call them: `flask kb reindex` rebuilds embeddings with its own bar.
after_index_hooks: list[Callable[[list[int]], None]] = []


def enqueue_article(article_id: int, *, job: bool = True) -> None:
    """Note that an article must be (re)indexed; call in the same transaction as the change.

    `job=False` leaves the row to the scheduled catch-up (a retry after a failure must not
    run again at once, in a loop)."""
    session = db.session
    session.flush()
    if pg.active():  # the search row commits with the change; the job does the embeddings
        pg.write_document(article_id)
    # One upsert, not read-then-write: a worker may delete the row between the two.
    upsert = dialect_insert(session)(IndexQueue.__table__).values(
        article_id=article_id, queued_at=utcnow(), attempts=0)
    session.execute(upsert.on_conflict_do_update(
        index_elements=[IndexQueue.article_id],
        set_={"queued_at": upsert.excluded.queued_at}))
    # One index job per transaction, however many articles it changes.
    transaction = session().get_transaction()
    if job and session.info.get("index_job_for") is not transaction:
        session.info["index_job_for"] = transaction
        enqueue(INDEX_JOB)


def _load_articles(ids: list[int]) -> dict[int, Article]:
    rows = db.session.scalars(
        select(Article).where(Article.id.in_(ids))
        .options(selectinload(Article.section).selectinload(KbSection.category))
        # Sessions keep objects after commit: re-read them, the index must see the database.
        .execution_options(populate_existing=True)
    )
    return {a.id: a for a in rows}


def _lock_timeout() -> float:
    return REQUEST_LOCK_TIMEOUT if has_request_context() else CLI_LOCK_TIMEOUT


def process_index_queue(limit: int | None = None) -> int:
    """Apply queued changes to the index (after commit). Returns how many were applied."""
    limit = limit or BATCH_SIZE
    if pg.active():
        return pg.process_queue(limit, after_index_hooks)
    session = db.session
    index_store = store()
    index_store.index()  # creates an empty index if it is missing
    if index_store.created_empty:
        _requeue_everything()
    session.commit()  # start a fresh transaction below: see what other processes committed
    pending = session.scalar(select(IndexQueue.article_id).limit(1)) is not None
    # Never wait for the index lock inside a database transaction: the lock holder may be
    # waiting for the database (outside requests every transaction is BEGIN IMMEDIATE).
    session.commit()
    if not pending:
        return 0
    try:
        with index_store.writer(timeout=_lock_timeout()) as writer:
            session.commit()
            rows = session.execute(
                select(IndexQueue.article_id, IndexQueue.queued_at)
                .order_by(IndexQueue.queued_at).limit(limit)
            ).all()
            ids = [row.article_id for row in rows]
            articles = _load_articles(ids)
            session.commit()  # hold no database lock while the index is written
            for article_id in ids:
                article = articles.get(article_id)
                if article is None:
                    writer.delete_by_term("id", str(article_id))
                else:
                    writer.update_document(**article_document(article))
    except INDEX_ERRORS as exc:
        log.warning("search index write failed (%s); %s", exc, "changes stay queued")
        session.rollback()
        _count_attempt()
        return 0
    if not rows:  # another process emptied the queue while this one waited for the writer
        return 0
    with _write_transaction():
        session.connection().execute(
            delete(IndexQueue.__table__).where(IndexQueue.article_id == bindparam("aid"),
                                     IndexQueue.queued_at == bindparam("queued")),
            [{"aid": row.article_id, "queued": row.queued_at} for row in rows],
        )
    for hook in after_index_hooks:
        hook(ids)
    return len(ids)


@contextlib.contextmanager
def _write_transaction() -> Iterator[None]:
    """A short write transaction, committed (`db.writing()` inside requests; outside them
    every transaction already begins IMMEDIATE)."""
    if has_request_context():
        with db.writing():
            yield
        return
    db.session.commit()
    try:
        yield
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def _count_attempt() -> None:
    try:
        with _write_transaction():
            db.session.execute(update(IndexQueue).values(attempts=IndexQueue.attempts + 1))
    except Exception:  # bookkeeping only: never fail the caller over a retry counter
        log.exception("could not count index attempts")


def _requeue_everything() -> None:
    """A fresh, empty index: queue every article so the index catches up by itself."""
    index_store = store()
    with _write_transaction():
        db.session.execute(
            insert(IndexQueue).from_select(
                ["article_id", "queued_at", "attempts"],
                select(Article.id, literal(utcnow()), literal(0)).where(
                    Article.id.not_in(select(IndexQueue.article_id))
                ),
            )
        )
    index_store.created_empty = False


def process_all() -> int:
    """Apply everything queued, batch by batch (the index job and the catch-up)."""
    total = 0
    while done := process_index_queue():
        total += done
    if total and not pg.active():
        write_posting_files(store())
        write_vocabulary_files(store())
    return total


def reindex_all(progress: Callable[[int, int], None] | None = None) -> int:
    """Rebuild the whole index from the database; returns the number of articles indexed."""
    session = db.session
    if pg.active():
        return pg.rebuild(list(session.scalars(select(Article.id).order_by(Article.id))))
    index_store = store()
    index_store.index()
    ids = list(session.scalars(select(Article.id).order_by(Article.id)))
    session.commit()
    started = utcnow()
    done = 0
    with index_store.writer(timeout=CLI_LOCK_TIMEOUT, clear=True,
                            memory_mb=REINDEX_MEMORY_MB) as writer:
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = ids[start:start + BATCH_SIZE]
            articles = _load_articles(chunk)
            for article_id in chunk:
                if article_id in articles:
                    writer.add_document(**article_document(articles[article_id]))
            done += len(chunk)
            session.commit()  # short read transactions: other writers are not held up
            session.expunge_all()
            if progress:
                progress(done, len(ids))
    index_store.created_empty = False
    write_posting_files(index_store)
    write_vocabulary_files(index_store)
    with _write_transaction():
        session.execute(delete(IndexQueue).where(IndexQueue.queued_at <= started))
    return done
