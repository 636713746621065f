"""Meaning-based ranking: article chunk embeddings, the in-memory matrix and nearest articles.

Each published article is split into chunks (by Markdown heading, then by length), each chunk
embedded together with the article title; the title is also embedded alone (chunk number
TITLE_CHUNK) and followed by the body's first sentence (LEAD_CHUNK), to tell how well the
question matches what the article says it answers.
Vectors live in `ArticleEmbedding` with the model id and a hash of the embedded text, so
unchanged chunks are never recomputed and a restart recomputes nothing. They follow the search
index: the same queue processing (and `flask kb reindex`) updates them, and a processing run
also catches up on published articles still missing vectors (e.g. written while the model was
unavailable), as does the job workers' scheduled `search.catch-up` every minute. A search
never does: looking for them inside a search request once a minute per process cost that
request ~100 ms at 20,000 articles.

Every process maps one float32 matrix of all vectors from a file written once per change
of the table's (count, max id) signature (shared by the host's processes), remapped when
that signature changes; which rows an audience may see is recomputed from the
database whenever that signature or the search index generation changes, so visibility is
applied before any ranking.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flask import current_app, has_request_context
from sqlalchemy import delete, func, select

from portal.cluster import changes
from portal.extensions import db
from portal.kb.markdown import plain_text
from portal.kb.models import Article, ArticleEmbedding, ArticleStatus, LearnedQuestion
from portal.search import cells as cells_module
from portal.search import model_service
from portal.search.audience import VISIBLE_TO, Audience
from portal.search.embeddings import (
    DIMENSIONS,
    MODEL_ID,
    Encoder,
    ModelUnavailable,
    QueryEncoder,
    failure,
    load_encoder,
    load_query_encoder,
    single_threaded_blas,
)

log = logging.getLogger(__name__)

# A chunk's cosine is diluted by everything else in it: 100-word pieces ranked the right
# article first more often than 150-word ones on both development sets (bench/data/README.md).
CHUNK_WORDS = 100  # ~140 word pieces with the title: well inside the model's 256-token window
MAX_CHUNKS = 18  # a very long article is represented by its first 1,800 words
TITLE_CHUNK = -1  # the chunk number of an article's title embedded alone
LEAD_CHUNK = -2  # ... and of its title with the body's first sentence ("title. lead")
EMBED_BATCH = 64  # articles embedded per database round trip
MISSING_PER_RUN = 64  # missing articles caught up by one queue-processing run (CLI)
MISSING_PER_RUN_IN_REQUEST = 8  # ... and by one run inside a request (keeps it short)
SIGNATURE_TTL = 1.0  # seconds another process's new vectors may take to be seen here
RECOUNT_SECONDS = 60.0  # ... and rows removed without a new matrix file (see _signature)
QUERY_CACHE = 1024
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(`])")


def enabled() -> bool:
    return bool(current_app.config.get("SEMANTIC_SEARCH", True))


def encoder() -> Encoder | model_service.ArticleEncoder | None:
    """The process's article encoder, or None (feature off, or model missing: keyword-only).

    Loaded on first use (embedding articles): a process that only answers searches never
    loads it. With the query-model service (web workers under gunicorn: an agent publishing
    a known issue), the service's, while it answers."""
    if not enabled():
        return None
    service = _service()
    if service is not None:
        return service.article_encoder()
    return load_encoder(current_app.config.get("SEMANTIC_MODEL_PATH"))


# --- the query encoder's lifecycle ---------------------------------------------------------
_loaders: dict[tuple, threading.Thread] = {}
_loaders_lock = threading.Lock()


def _query_model() -> tuple[str, str, str]:
    return (current_app.config.get("SEMANTIC_MODEL_PATH") or "",
            current_app.config.get("SEMANTIC_QUERY_RUNTIME", "numpy"),
            current_app.config.get("SEMANTIC_MODEL_CACHE") or "")


def _service() -> model_service.ServiceClient | None:
    """This process's client of the host's query-model service, when queries go there
    (SEMANTIC_MODEL_SERVICE, set under gunicorn); None: the model runs in this process."""
    config = current_app.config
    if not config.get("SEMANTIC_MODEL_SERVICE"):
        return None
    return model_service.client(*_query_model(),
                                owner=int(config.get("SEMANTIC_MODEL_SERVICE_OWNER") or 0),
                                timeout=float(config.get("SEMANTIC_MODEL_SERVICE_TIMEOUT", 1.0)))


def start_loading(app) -> None:
    """Load the query encoder in a background thread, so that no request waits for it; or,
    with the query-model service, start that process unless it runs (not waiting either).

    Called at server start (gunicorn's master starts the service before it forks: see
    gunicorn.conf.py). Until it is ready, searches rank by keywords only."""
    if not app.config.get("SEMANTIC_SEARCH", True):
        return
    with app.app_context():
        key = _query_model()
        service = _service()
    if service is not None:
        service.start()
        return
    with _loaders_lock:
        if key not in _loaders:
            _loaders[key] = threading.Thread(target=load_query_encoder, args=key,
                                             name="query-encoder-load", daemon=True)
            _loaders[key].start()


def init_app(app) -> None:
    """Outside tests, the first request starts the background load (for `flask run`, or a
    server that did not call `start_loading` at start); it does not wait for it."""
    if app.testing:
        return

    def start_once() -> None:
        if "portal_query_model_loading" not in app.extensions:
            app.extensions["portal_query_model_loading"] = True
            start_loading(app)

    app.before_request(start_once)


def warm_up(app) -> None:
    """Open the index and load the vector matrix, as a first search would (gunicorn's master
    does it before forking: the first customer then does not pay for it). Never raises."""
    from portal.search.audience import Audience
    from portal.search.service import suggest_articles

    try:
        with app.test_request_context():
            suggest_articles("help with my account", Audience.PUBLIC)
    except Exception:  # a server that cannot warm up still serves
        log.exception("search warm-up failed")


def wait_until_loaded(app, timeout: float | None = None) -> None:
    """Block until a background load started by `start_loading` is done (before a fork),
    or the query-model service answers."""
    with app.app_context():
        loader = _loaders.get(_query_model())
        service = _service() if app.config.get("SEMANTIC_SEARCH", True) else None
    if service is not None:
        service.wait_ready(timeout)
    elif loader is not None:
        loader.join(timeout)


def query_encoder() -> QueryEncoder | Encoder | model_service.ServiceClient | None:
    """The query encoder, or None: feature off, model missing, still loading in the
    background, or the query-model service not answering (then the caller ranks by
    keywords and does not wait)."""
    if not enabled():
        return None
    service = _service()
    if service is not None:
        return service.encoder()
    key = _query_model()
    loader = _loaders.get(key)
    if loader is not None and loader.is_alive():
        return None
    return load_query_encoder(*key)


def ready() -> bool:
    """Whether queries are ranked by meaning now (part of result cache keys)."""
    return query_encoder() is not None


def status() -> dict:
    """For the admin status page: what mode search runs in, and why."""
    if not enabled():
        return {"mode": "keyword-only", "reason": "SEMANTIC_SEARCH is off in the configuration."}
    service = _service()
    if service is not None:
        available, reason = service.state()
        if not available:
            return {"mode": "keyword-only", "reason": reason}
        return {"mode": "hybrid",
                "reason": f"{MODEL_ID} loaded in the query-model service (process "
                          f"{service.service_pid})."}
    path = current_app.config.get("SEMANTIC_MODEL_PATH")
    loader = _loaders.get(_query_model())
    if loader is not None and loader.is_alive():
        return {"mode": "keyword-only", "reason": "The model is still loading."}
    if query_encoder() is None:
        return {"mode": "keyword-only", "reason": failure(path) or "The model did not load."}
    return {"mode": "hybrid", "reason": f"{MODEL_ID} loaded."}


# --- chunks -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    heading: str
    text: str  # what is embedded: title, heading and a piece of the body

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(f"{MODEL_ID}\n{self.text}".encode()).hexdigest()


def chunk_article(title: str, body_markdown: str) -> list[Chunk]:
    """Split an article by heading, then into pieces of at most CHUNK_WORDS words."""
    sections: list[tuple[str, str]] = []
    last_end, heading = 0, ""
    for match in _HEADING.finditer(body_markdown or ""):
        sections.append((heading, body_markdown[last_end : match.start()]))
        heading, last_end = match.group(1).strip(), match.end()
    sections.append((heading, (body_markdown or "")[last_end:]))
    chunks: list[Chunk] = []
    for heading, markdown_text in sections:
        words = plain_text(markdown_text).split()
        if not words and (heading or chunks):
            continue
        prefix = f"{title}. {heading}." if heading else f"{title}."
        for start in range(0, max(len(words), 1), CHUNK_WORDS):
            piece = " ".join(words[start : start + CHUNK_WORDS])
            chunks.append(Chunk(heading[:300], f"{prefix} {piece}".strip()))
    return chunks[:MAX_CHUNKS]


def lead_text(title: str, body_markdown: str) -> str:
    """The title with the body's first sentence: an answer's opening often restates the
    question in other words than the title's ("title. lead", at most CHUNK_WORDS words)."""
    first = next((s for s in _SENTENCE_BREAK.split(plain_text(body_markdown or "")) if s.strip()),
                 "")
    return f"{title}. {' '.join(first.split()[:CHUNK_WORDS])}".strip()


# --- keeping vectors in step with articles -------------------------------------------------
def sync_embeddings(article_ids: list[int],
                    progress: Callable[[int, int], None] | None = None) -> int:
    """Bring the stored vectors of these articles up to date; returns chunks embedded.

    Published articles get vectors for their current chunks (reusing unchanged ones);
    others (draft, archived, deleted) lose theirs. Commits per batch.
    """
    enc = encoder()
    if enc is None:
        return 0
    session = db.session
    embedded = 0
    changed = False
    for start in range(0, len(article_ids), EMBED_BATCH):
        batch = article_ids[start : start + EMBED_BATCH]
        articles = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_(batch)))}
        existing: dict[tuple[int, int], ArticleEmbedding] = {
            (row.article_id, row.chunk): row
            for row in session.scalars(
                select(ArticleEmbedding).where(ArticleEmbedding.article_id.in_(batch)))
        }
        wanted: dict[tuple[int, int], Chunk] = {}
        for article_id in batch:
            article = articles.get(article_id)
            if article is not None and article.status == ArticleStatus.PUBLISHED:
                for number, chunk in enumerate(chunk_article(article.title, article.body)):
                    wanted[(article_id, number)] = chunk
                wanted[(article_id, TITLE_CHUNK)] = Chunk("", article.title)
                wanted[(article_id, LEAD_CHUNK)] = Chunk("", lead_text(article.title,
                                                                       article.body))
        stale = [key for key, row in existing.items()
                 if key not in wanted or row.content_hash != wanted[key].content_hash
                 or row.model != MODEL_ID]
        todo = [key for key in wanted if key not in existing or key in stale]
        vectors = enc.encode([wanted[key].text for key in todo]) if todo else None
        session.commit()  # the model ran outside any transaction; now write briefly
        with _writing():
            for key in stale:
                session.delete(existing[key])
            session.flush()
            for key, vector in zip(todo, vectors if vectors is not None else [], strict=True):
                chunk = wanted[key]
                session.add(ArticleEmbedding(
                    article_id=key[0], chunk=key[1], heading=chunk.heading,
                    content_hash=chunk.content_hash, model=MODEL_ID,
                    vector=np.asarray(vector, dtype=np.float32).tobytes()))
        _vectors_changed()
        embedded += len(todo)
        changed = changed or bool(todo or stale)
        if progress:
            progress(min(start + EMBED_BATCH, len(article_ids)), len(article_ids))
    if changed:  # the processes that search map the new file instead of writing it
        write_matrix_file()
    return embedded


def _writing():
    """A short committed write transaction, inside or outside a request."""
    from portal.search.queue import _write_transaction

    return _write_transaction()


def missing_article_ids(limit: int | None = None) -> list[int]:
    """Published articles whose vectors from the current model are not all there.

    Their lead vector (LEAD_CHUNK) is written with the others, so its absence marks them:
    also those embedded before leads were (the catch-up then computes the lead alone)."""
    has_vector = select(ArticleEmbedding.article_id).where(
        ArticleEmbedding.article_id == Article.id, ArticleEmbedding.model == MODEL_ID,
        ArticleEmbedding.chunk == LEAD_CHUNK).exists()
    q = select(Article.id).where(Article.status == ArticleStatus.PUBLISHED, ~has_vector)
    if limit:
        q = q.limit(limit)
    return list(db.session.scalars(q.order_by(Article.id)))


def after_index(article_ids: list[int]) -> None:
    """Queue-processing hook: re-embed what the index just took, then catch up a little."""
    if encoder() is None:
        return
    try:
        sync_embeddings(article_ids)
        catch_up = MISSING_PER_RUN_IN_REQUEST if has_request_context() else MISSING_PER_RUN
        sync_embeddings(missing_article_ids(catch_up))
    except Exception:
        # The index already took these changes; re-queue them so embeddings catch up later.
        log.exception("updating embeddings failed; the articles are queued again")
        db.session.rollback()
        _requeue(article_ids)


def _requeue(article_ids: list[int]) -> None:
    """Put articles back on the index queue for the scheduled catch-up to process later
    (not at once: that would retry a failure in a loop, or embed inside a search)."""
    from portal.search.queue import enqueue_article

    with _writing():
        for article_id in article_ids:
            enqueue_article(article_id, job=False)


def rebuild_embeddings(progress: Callable[[int, int], None] | None = None) -> int:
    """`flask kb reindex`: every article's vectors checked, missing/changed ones computed."""
    if encoder() is None:
        return 0
    ids = list(db.session.scalars(select(Article.id).order_by(Article.id)))
    with _writing():
        db.session.execute(delete(ArticleEmbedding).where(ArticleEmbedding.model != MODEL_ID))
    _vectors_changed()
    return sync_embeddings(ids, progress)


# --- the in-memory matrix -----------------------------------------------------------------
class _Matrix:
    """All chunk vectors of this process, plus per-audience masks of visible rows."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.signature: tuple | None = None
        self.vectors = np.zeros((0, DIMENSIONS), dtype=np.float32)
        self.article_ids = np.zeros(0, dtype=np.int64)
        self.cells: _Cells | None = None  # the rows' cells (large matrices), else None
        # (article ids ascending, their title vectors, their lead vectors): replaced as one,
        # read without the lock
        self.titles = (np.zeros(0, dtype=np.int64), np.zeros((0, DIMENSIONS), dtype=np.float32),
                       np.zeros((0, DIMENSIONS), dtype=np.float32))
        self.masks: dict[tuple, tuple[np.ndarray | None, np.ndarray]] = {}
        self.stored_signature: tuple | None = None
        self.stored_signature_at = 0.0
        self.change_marker: tuple | None = None  # (max id, folder time) at the last count
        self.counted_at = 0.0


def _matrix() -> _Matrix:
    app = current_app._get_current_object()
    matrix = app.extensions.get("portal_semantic_matrix")
    if matrix is None:
        matrix = app.extensions.setdefault("portal_semantic_matrix", _Matrix())
    return matrix


def _signature() -> tuple:
    """The stored vectors' (count, max id), re-read at most once per SIGNATURE_TTL; this
    process's own writes (`sync_embeddings`, `rebuild_embeddings`) make it re-read at once.

    Counting the rows is a scan of them (11 ms at 40,000 vectors, 60 ms at 318,000: once a
    second, a slow request's worth), so a re-read first asks what is cheap: the highest id
    (an index lookup) and the vector folder's modification time. New vectors raise the
    first; removed ones without new ones (a shortened article) come with a new matrix file,
    which changes the second. Only a change, or RECOUNT_SECONDS since the last count (rows
    removed some other way: those of a deleted article, which no audience sees anyway),
    counts again."""
    matrix = _matrix()
    now = time.monotonic()
    stored = matrix.stored_signature
    if stored is not None and now - matrix.stored_signature_at <= SIGNATURE_TTL:
        return stored
    marker = (db.session.scalar(select(func.max(ArticleEmbedding.id))), _folder_stamp())
    if stored is None or marker != matrix.change_marker \
            or now - matrix.counted_at > RECOUNT_SECONDS:
        count, max_id = db.session.execute(
            select(func.count(ArticleEmbedding.id), func.max(ArticleEmbedding.id))).one()
        stored = matrix.stored_signature = (count, max_id)
        matrix.change_marker, matrix.counted_at = marker, now
    matrix.stored_signature_at = now
    return stored


def _folder_stamp() -> int | None:
    """The vector folder's modification time (a file written or removed changes it)."""
    try:
        return os.stat(Path(current_app.config["INDEX_DIR"]) / VECTORS_FOLDER).st_mtime_ns
    except OSError:
        return None


def _vectors_changed() -> None:
    _matrix().stored_signature = None


def _load(matrix: _Matrix, signature: tuple) -> None:
    path = _matrix_path(signature)
    try:
        mapped = _map_matrix_file(path)
    except FileNotFoundError:  # not written yet, or replaced by a newer one meanwhile
        mapped = _map_matrix_file(write_matrix_file(signature))
    matrix.vectors, matrix.article_ids, matrix.cells = \
        mapped.vectors, mapped.article_ids, mapped.cells
    matrix.titles = (mapped.title_ids, mapped.title_vectors, mapped.lead_vectors)
    matrix.masks = {}
    matrix.signature = signature


# --- the matrix file: written once per change of the vectors, mapped by every process -----
# At 100,000 articles the vectors take ~490 MB: each worker reading them into its own memory
# would hold a copy (and briefly two, while joining the rows). One file per signature, in the
# index folder, is mapped read-only instead: the operating system keeps one copy in its page
# cache for every process of the host. Layout (v4): a header of four int64 (rows, cells, rows
# the centroids were trained on, titles), the float32 vectors, their article ids (int64), their
# ArticleEmbedding ids (int64), then, for a matrix of at least SEMANTIC_ANN_MIN_VECTORS rows,
# the cells' centroids (float32) and each cell's first row (int64, plus the end): rows are
# then stored cell by cell (portal/search/cells.py); smaller ones keep ArticleEmbedding.id
# order and are scanned whole. Last, the title vectors (float32), the lead vectors of the same
# articles in the same order (float32; an article without one repeats its title's), and their
# article ids (int64), in article id order (only the candidates' rows of those are ever read).
# Scores are the same float32 products as from memory. v3 had no lead block: its files are
# never read (the layout is in the file name).
VECTORS_FOLDER = "vectors"
_LAYOUT = "v4"
_HEADER = 4
_FILE_BATCH = 4096  # rows read from the database per round trip while writing the file


@dataclass(frozen=True)
class _Cells:
    centroids: np.ndarray
    offsets: np.ndarray
    trained_rows: int


@dataclass(frozen=True)
class _MappedMatrix:
    vectors: np.ndarray
    article_ids: np.ndarray
    embedding_ids: np.ndarray
    cells: _Cells | None
    title_vectors: np.ndarray
    lead_vectors: np.ndarray
    title_ids: np.ndarray


def _by_cells(matrix: _Matrix) -> bool:
    return matrix.cells is not None and _approximate(len(matrix.vectors))


def _approximate(count: int) -> bool:
    """Whether a matrix of `count` rows is searched by cells (else scanned whole)."""
    return count >= int(current_app.config.get("SEMANTIC_ANN_MIN_VECTORS", 50_000))


def _matrix_path(signature: tuple) -> Path:
    count, max_id = signature
    folder = Path(current_app.config["INDEX_DIR"]) / VECTORS_FOLDER
    layout = "cells" if _approximate(count) else "rows"
    return folder / f"{MODEL_ID}-{count}-{max_id or 0}-{layout}.{_LAYOUT}.f32"


def _map_matrix_file(path: Path) -> _MappedMatrix:
    data = np.memmap(path, dtype=np.uint8, mode="r")
    count, cells, trained_rows, titles = (int(n) for n in data[:_HEADER * 8].view(np.int64))
    at = _HEADER * 8

    def take(dtype, size: int) -> np.ndarray:
        nonlocal at
        end = at + size * np.dtype(dtype).itemsize
        part = data[at:end].view(dtype)
        at = end
        return part

    vectors = take(np.float32, count * DIMENSIONS).reshape(count, DIMENSIONS)
    article_ids = np.array(take(np.int64, count))
    embedding_ids = take(np.int64, count)
    found = None
    if cells:
        found = _Cells(centroids=take(np.float32, cells * DIMENSIONS).reshape(cells, DIMENSIONS),
                       offsets=np.array(take(np.int64, cells + 1)), trained_rows=trained_rows)
    title_vectors = take(np.float32, titles * DIMENSIONS).reshape(titles, DIMENSIONS)
    lead_vectors = take(np.float32, titles * DIMENSIONS).reshape(titles, DIMENSIONS)
    title_ids = np.array(take(np.int64, titles))
    return _MappedMatrix(vectors, article_ids, embedding_ids, found, title_vectors,
                         lead_vectors, title_ids)


def write_matrix_file(signature: tuple | None = None) -> Path:
    """Write the stored vectors to the file of `signature` (default: the current one)
    unless it exists, reading the rows in batches (bounded memory); older files go.

    A large matrix is stored cell by cell: its rows keep the cells they had in the previous
    file (found by ArticleEmbedding id) and new rows go to their nearest centroid; the
    centroids are trained again only when there were none or the rows outgrew them."""
    signature = signature or _signature()
    path = _matrix_path(signature)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = f".{path.name}.{os.getpid()}.{threading.get_ident()}"
    rows_file, partial = path.with_name(f"{stem}.rows.tmp"), path.with_name(f"{stem}.tmp")
    try:
        article_ids, embedding_ids = _write_rows(rows_file)
        count = len(article_ids)
        cells = _cells_for(rows_file, embedding_ids, path) if _approximate(count) else None
        with open(partial, "wb") as out:
            rows = np.memmap(rows_file, dtype=np.float32, mode="r", shape=(count, DIMENSIONS)) \
                if count else np.zeros((0, DIMENSIONS), dtype=np.float32)
            order = np.arange(count)
            header = [count, 0, 0, 0]
            if cells is not None:
                order, offsets = cells_module.layout(cells[1], len(cells[0]))
                header = [count, len(cells[0]), cells[2], 0]
            out.write(np.asarray(header, dtype=np.int64).tobytes())  # titles counted below
            for start in range(0, count, _FILE_BATCH):
                out.write(np.asarray(rows[order[start:start + _FILE_BATCH]]).tobytes())
            del rows
            out.write(article_ids[order].tobytes())
            out.write(embedding_ids[order].tobytes())
            if cells is not None:
                out.write(cells[0].astype(np.float32).tobytes())
                out.write(offsets.tobytes())
            titles = _write_titles(out)
            out.seek(3 * 8)
            out.write(np.int64(titles).tobytes())
        os.replace(partial, path)  # readers see the whole file or none
    finally:
        for leftover in (rows_file, partial):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    _remove_older_files(path)
    return path


def _write_rows(target: Path) -> tuple[np.ndarray, np.ndarray]:
    """The stored vectors, in ArticleEmbedding.id order, to `target` (raw float32 rows);
    returns their article ids and ArticleEmbedding ids."""
    article_ids: list[int] = []
    embedding_ids: list[int] = []
    with open(target, "wb") as out:
        last_id = 0
        while rows := db.session.execute(
                select(ArticleEmbedding.id, ArticleEmbedding.article_id, ArticleEmbedding.vector)
                .where(ArticleEmbedding.model == MODEL_ID, ArticleEmbedding.chunk >= 0,
                       ArticleEmbedding.id > last_id)
                .order_by(ArticleEmbedding.id).limit(_FILE_BATCH)).all():
            out.write(b"".join(row.vector for row in rows))
            article_ids.extend(row.article_id for row in rows)
            embedding_ids.extend(row.id for row in rows)
            last_id = rows[-1].id
    return np.asarray(article_ids, dtype=np.int64), np.asarray(embedding_ids, dtype=np.int64)


def _write_titles(out) -> int:
    """Append the title vectors, then the lead vectors of the same articles, then their
    article ids, in article id order; returns how many (the ids are few: one per article).
    An article whose lead is not stored yet (embedded before leads were) repeats its title;
    one whose vectors went meanwhile (unpublished between the two reads) gets zeros there."""
    missing = bytes(DIMENSIONS * 4)
    article_ids: list[int] = []
    last_id = 0
    while rows := db.session.execute(
            select(ArticleEmbedding.article_id, ArticleEmbedding.vector)
            .where(ArticleEmbedding.model == MODEL_ID, ArticleEmbedding.chunk == TITLE_CHUNK,
                   ArticleEmbedding.article_id > last_id)
            .order_by(ArticleEmbedding.article_id).limit(_FILE_BATCH)).all():
        out.write(b"".join(row.vector for row in rows))
        article_ids.extend(row.article_id for row in rows)
        last_id = rows[-1].article_id
    for start in range(0, len(article_ids), _FILE_BATCH):
        batch = article_ids[start:start + _FILE_BATCH]
        found = {(row.article_id, row.chunk): row.vector for row in db.session.execute(
            select(ArticleEmbedding.article_id, ArticleEmbedding.chunk, ArticleEmbedding.vector)
            .where(ArticleEmbedding.model == MODEL_ID,
                   ArticleEmbedding.chunk.in_((TITLE_CHUNK, LEAD_CHUNK)),
                   ArticleEmbedding.article_id.between(batch[0], batch[-1])))}
        out.write(b"".join(found.get((article_id, LEAD_CHUNK))
                           or found.get((article_id, TITLE_CHUNK), missing)
                           for article_id in batch))
    out.write(np.asarray(article_ids, dtype=np.int64).tobytes())
    return len(article_ids)


def _cells_for(rows_file: Path, embedding_ids: np.ndarray, target: Path
               ) -> tuple[np.ndarray, np.ndarray, int]:
    """(centroids, each row's cell, rows the centroids were trained on) for the rows in
    `rows_file`, reusing the previous cell file's centroids and assignments when it has any
    and the rows did not outgrow them."""
    count = len(embedding_ids)
    vectors = np.memmap(rows_file, dtype=np.float32, mode="r", shape=(count, DIMENSIONS))
    previous = _previous_cells(target)
    if previous is None or cells_module.needs_training(count, previous.cells.trained_rows):
        centroids = cells_module.train(vectors, cells_module.cell_count(count))
        return centroids, cells_module.assign(vectors, centroids), count
    centroids = np.array(previous.cells.centroids)
    sizes = np.diff(previous.cells.offsets)
    old_cells = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    old_order = np.argsort(previous.embedding_ids)
    old_ids = np.asarray(previous.embedding_ids)[old_order]
    at = np.minimum(np.searchsorted(old_ids, embedding_ids), max(len(old_ids) - 1, 0))
    kept = old_ids[at] == embedding_ids if len(old_ids) else np.zeros(count, dtype=bool)
    cells = np.empty(count, dtype=np.int32)
    cells[kept] = old_cells[old_order[at[kept]]]
    new = np.flatnonzero(~kept)
    for start in range(0, len(new), _FILE_BATCH):
        part = new[start:start + _FILE_BATCH]
        cells[part] = cells_module.assign(vectors[part], centroids)
    return centroids, cells, previous.cells.trained_rows


def _previous_cells(target: Path) -> _MappedMatrix | None:
    """The newest other cell file of the folder, mapped; None if there is none."""
    candidates = sorted((p for p in target.parent.glob(f"{MODEL_ID}-*-cells.{_LAYOUT}.f32")
                         if p != target), key=lambda p: p.stat().st_mtime, reverse=True)
    for candidate in candidates:
        with contextlib.suppress(OSError, ValueError):
            mapped = _map_matrix_file(candidate)
            if mapped.cells is not None:
                return mapped
    return None


def _remove_older_files(current: Path) -> None:
    """Files of earlier signatures (a process still mapping one keeps reading it: the
    system frees it when unmapped), and partial files left by a process killed an hour ago."""
    for other in current.parent.iterdir():
        with contextlib.suppress(OSError):
            if other.name.endswith(".tmp"):
                if time.time() - other.stat().st_mtime > 3600:
                    other.unlink()
            elif other != current and other.suffix == ".f32":
                other.unlink()


def _visible_rows(matrix: _Matrix, audience: Audience, generation: int
                  ) -> tuple[np.ndarray | None, np.ndarray]:
    """(the rows the audience may see, for a whole scan, else None; the same as a mask over
    all rows)."""
    key = (audience, generation, matrix.signature)
    entry = matrix.masks.get(key)
    if entry is None:
        visible = np.fromiter(db.session.scalars(
            select(Article.id).where(Article.status == ArticleStatus.PUBLISHED,
                                     Article.visibility.in_(VISIBLE_TO[audience]))),
            dtype=np.int64)
        mask = np.isin(matrix.article_ids, visible)
        entry = (None if _by_cells(matrix) else np.flatnonzero(mask), mask)
        matrix.masks = {k: v for k, v in matrix.masks.items() if k[1:] == key[1:]}
        matrix.masks[key] = entry
    return entry


_query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_query_lock = threading.Lock()


def embed_query(enc: QueryEncoder | Encoder | model_service.ServiceClient, text: str
                ) -> np.ndarray:
    """The question's vector, through this process's cache of recent ones. Raises
    ModelUnavailable when the query-model service fails to answer (killed, stuck)."""
    key = " ".join(text.lower().split())
    with _query_lock:
        cached = _query_cache.get(key)
        if cached is not None:
            _query_cache.move_to_end(key)
            return cached
    vector = enc.encode([text])[0]
    with _query_lock:
        _query_cache[key] = vector
        while len(_query_cache) > QUERY_CACHE:
            _query_cache.popitem(last=False)
    return vector


def nearest_articles(text: str, audience: Audience, generation: int, limit: int
                     ) -> list[tuple[int, float]] | None:
    """(article id, best chunk cosine) of the visible articles nearest to `text`, best first.

    None when semantic ranking is unavailable (feature off, model missing or still loading).
    """
    enc = query_encoder()
    if enc is None:
        return None
    matrix = _matrix()
    signature = _signature()
    with matrix.lock:
        if signature != matrix.signature:
            _load(matrix, signature)
        vectors, article_ids, cells = matrix.vectors, matrix.article_ids, matrix.cells
        by_cells = _by_cells(matrix)
        rows, visible = _visible_rows(matrix, audience, generation)
    if not visible.any():
        return []
    with single_threaded_blas():
        try:
            query = embed_query(enc, text)
        except ModelUnavailable as exc:  # the service went away: keywords, as while it loads
            log.warning("ranking by keywords: %s", exc)
            return None
        if by_cells:
            rows, scores = cells_module.probe(
                vectors, cells.centroids, cells.offsets, query, visible, article_ids,
                rows=int(current_app.config.get("SEMANTIC_ANN_ROWS", 8192)), articles=limit)
        else:  # one pass over the whole matrix beats copying a subset
            rows = np.flatnonzero(visible) if rows is None else rows
            scores = (vectors @ query)[rows]
    if rows.size == 0:
        return []
    ids = article_ids[rows]
    # Best chunk per article: the top rows by score, keeping each article's first occurrence.
    take = min(len(scores), limit * MAX_CHUNKS)
    top = np.argpartition(-scores, take - 1)[:take]
    top = top[np.argsort(-scores[top])]
    best: dict[int, float] = {}
    for i in top:
        best.setdefault(int(ids[i]), float(scores[i]))
        if len(best) >= limit:
            break
    return list(best.items())


def title_cosines(text: str, article_ids: list[int]) -> dict[int, float]:
    """The cosine of the question with each of these articles' titles: the closer of the
    title alone and the title with the body's first sentence (articles whose title vector is
    not stored yet are left out). Reads the matrix that `nearest_articles` just brought up
    to date, and the question vector it just computed."""
    enc = query_encoder()
    title_ids, title_vectors, lead_vectors = _matrix().titles
    if enc is None or not TITLE_WEIGHT or not article_ids or not len(title_ids):
        return {}
    wanted = np.unique(np.asarray(article_ids, dtype=np.int64))
    at = np.minimum(np.searchsorted(title_ids, wanted), len(title_ids) - 1)
    found = title_ids[at] == wanted
    if not found.any():
        return {}
    rows = at[found]
    with single_threaded_blas():
        try:
            query = embed_query(enc, text)
        except ModelUnavailable:  # the service went away since `nearest_articles`
            return {}
        scores = np.maximum(title_vectors[rows] @ query, lead_vectors[rows] @ query)
    return dict(zip(wanted[found].tolist(), scores.tolist(), strict=True))


# --- learned questions --------------------------------------------------------------------
@dataclass(frozen=True)
class _Learned:
    """This process's confirmed questions' vectors and their articles (replaced as one)."""

    version: int
    vectors: np.ndarray
    article_ids: np.ndarray


def learned_signature() -> int:
    """Which learned questions this process ranks with: the change feed's count of their
    changes (a vector written, one forgotten; portal/cluster/changes.py: nothing is read
    while nothing changed), the vectors read again when it moves. Rows of a deleted article
    go without a change noted: their article is never a candidate again."""
    version = changes.version(changes.LEARNED)
    learned = current_app.extensions.get("portal_learned_questions")
    if learned is None or learned.version != version:
        rows = db.session.execute(
            select(LearnedQuestion.article_id, LearnedQuestion.vector)
            .where(LearnedQuestion.forgotten_at.is_(None), LearnedQuestion.model == MODEL_ID,
                   LearnedQuestion.vector.is_not(None),
                   LearnedQuestion.customers >= LEARNED_MIN_CUSTOMERS)).all()
        vectors = np.frombuffer(b"".join(row.vector for row in rows), dtype=np.float32) \
            .reshape(len(rows), DIMENSIONS)
        current_app.extensions["portal_learned_questions"] = _Learned(
            version, vectors, np.asarray([row.article_id for row in rows], dtype=np.int64))
    return version


def learned_cosines(text: str, article_ids: list[int]) -> dict[int, float]:
    """Per candidate article with confirmed questions, the question's cosine with the
    closest of them. Nothing to compute when no question was learned; only candidates are
    read, so an article the asker may not see is never among them."""
    enc = query_encoder()
    if enc is None or not LEARNED_WEIGHT or not article_ids:
        return {}
    learned_signature()
    learned = current_app.extensions["portal_learned_questions"]
    if not len(learned.article_ids):
        return {}
    wanted = np.isin(learned.article_ids, np.asarray(article_ids, dtype=np.int64))
    if not wanted.any():
        return {}
    with single_threaded_blas():
        try:
            query = embed_query(enc, text)
        except ModelUnavailable:
            return {}
        scores = learned.vectors[wanted] @ query
    best: dict[int, float] = {}
    for article_id, score in zip(learned.article_ids[wanted].tolist(), scores.tolist(),
                                 strict=True):
        best[article_id] = max(score, best.get(article_id, -1.0))
    return best


# --- fusing keyword and meaning -----------------------------------------------------------
# Chosen with bench/search_quality.py (bench/data/README.md). An article's score is its best
# chunk's cosine plus KEYWORD_ALPHA times the share of the question's words (idf-weighted) it
# holds, times its keyword score relative to the best keyword match raised to
# KEYWORD_SCORE_POWER: meaning decides, and keywords break near-ties (exact error text, names)
# when the article holds the question's rarer words. The bonus was 0.2 with the plain relative
# score; an outside measurement on unseen questions found that hybrid ranking behind meaning
# alone, and on our sets that bonus left keyword and error-text questions (Debian) and
# paraphrases (Python) behind meaning alone: a question whose only indexed word is common
# ("0.1 + 0.2 == 0.3 is False": "false") handed the whole bonus to any article with that word.
# Halved and flattened, every kind of question ranks at least as well as meaning alone and
# as keywords alone on both sets (tuned on Debian, checked on Python). Rank-based fusion
# (RRF), cosines as z-scores per question, a weight switched by the kind of question, and
# title vectors measured at or below this on one set or the other.
# The title vector: an article whose title is closer to the question than its best chunk
# gains TITLE_WEIGHT times the difference ("what is sid" -> 'What about "sid"?', whose body
# talks of other things). A title says what question an article answers; its body's chunks
# also carry what it merely mentions. With it, KEYWORD_ALPHA 0.12 (was 0.1) ranked best: right
# first rose on both sets and both keyword backends, no kind of question fell under a single
# ranker (bench/fusion_lab.py "title above 0.1 alpha 0.12"). Pseudo-relevance feedback
# (the question vector moved toward its first articles), an article's second-best chunk,
# and the title in place of or mixed evenly with the best chunk measured worse.
# The title's cosine is the closer of the title alone and the title followed by the body's
# first sentence (LEAD_CHUNK): an answer's opening often restates the question in other
# words than the title's ("graphical package manager" -> "synaptic", whose lead is
# "synaptic is a graphical package manager."). Debian right first .812 -> .821, Python
# unchanged, nothing under a single ranker (bench/data/README.md, eighth round).
CANDIDATES = 50
KEYWORD_ALPHA = 0.12
KEYWORD_SCORE_POWER = 0.25
TITLE_WEIGHT = 0.1
# Below this best cosine the question is unrelated to every article (unrelated questions
# measured at most 0.27, answerable ones mostly above 0.30) ...
QUERY_FLOOR = 0.28
# ... or, once misspelt words were replaced, below this one (a replacement can make an
# unrelated question look closer: "parking fine appeal" -> "parsing fine appear", 0.29;
# corrected typos measured 0.39 and up).
CORRECTED_QUERY_FLOOR = 0.35
# ... or when no candidate's title, alone or with its lead, is this close: a question the
# knowledge base answers is close to what some article says it answers, not only to a piece
# of a body. Answerable questions of both development sets measured 0.292 and up; "translate
# hello into japanese", the one unrelated question that cleared the chunk floor on both
# (0.31), 0.164 and 0.248 (bench/data/README.md, eighth round) ...
TITLE_FLOOR = 0.27
# ... unless the best keyword match holds nearly all of what was typed, as typed (an
# uncorrected word that is in no article counts against it): "goto statement".
KEYWORD_COVERAGE = 0.75
# A meaning-only candidate must be at least this close to be shown.
ITEM_FLOOR = 0.25
# A question customers confirmed an article answered (portal/search/learned.py) lifts that
# article, if it is already a candidate, by LEARNED_WEIGHT x max(cosine - LEARNED_FLOOR, 0) /
# (1 - LEARNED_FLOOR), the cosine being the question's with the closest confirmed question.
# Only near repeats: on the development sets, a question's closest other question is about
# its own article less often than the ranking puts that article first, and lower floors
# moved questions in new wording down (Debian right-first .820 -> .811 at 0.6, weight 0.1);
# from 0.85 new wording ranks as before on both sets, while questions asked again reworded
# (politer, wordier, a word shorter, a typo) rank right first .870-.919 against .820
# (Debian) and .903-.956 against .858 (Python); with 10% of confirmations mis-clicks,
# word-for-word repeats still .909 and .908 (bench/learned_lab.py; bench/data/README.md,
# eleventh round). A learned question never adds an article and never moves a floor.
LEARNED_WEIGHT = 0.3
LEARNED_FLOOR = 0.85
# ... and acts once this many customers confirmed it: one account alone cannot put an
# article of its choice first for everyone who asks the same thing (an admin's "Forget"
# remains for what several get wrong).
LEARNED_MIN_CUSTOMERS = 2
_KEYWORD_SYNTAX = re.compile(r'["*]|\w\?\w|\b(?:AND|OR|NOT)\b')


def applies_to(text: str) -> bool:
    """Plain words only: quoted phrases, wildcards and boolean operators stay keyword-only.
    (A question mark ending a word is punctuation, not a wildcard.)"""
    return enabled() and not _KEYWORD_SYNTAX.search(text or "")


def mode() -> str:
    """"hybrid" (default) or "semantic" (meaning only; for measurement)."""
    return current_app.config.get("SEARCH_RANKING", "hybrid")


def signature() -> tuple | None:
    """Changes whenever stored vectors change, or the model becomes ready (result cache keys)."""
    return (_signature(), learned_signature(), ready()) if enabled() else None


def still_ranks_as(cached_as, hybrid: bool) -> bool:
    """Whether a result computed under the cache key part `cached_as` (`hybrid and (mode(),
    signature())`) may be kept under it: not when the model went away meanwhile (the
    query-model service killed mid-request), so that keyword-only ranking is not kept as if
    it were hybrid once the service is back."""
    return not hybrid or cached_as == (mode(), signature())


def ranking_settings() -> dict:
    """The numbers the admin status page explains ranking with."""
    return {"chunk_words": CHUNK_WORDS, "keyword_alpha": KEYWORD_ALPHA,
            "title_weight": TITLE_WEIGHT, "title_floor": TITLE_FLOOR,
            "query_floor": QUERY_FLOOR, "corrected_floor": CORRECTED_QUERY_FLOOR,
            "keyword_coverage": round(KEYWORD_COVERAGE * 100), "item_floor": ITEM_FLOOR,
            "learned_weight": LEARNED_WEIGHT, "learned_floor": LEARNED_FLOOR,
            "learned_customers": LEARNED_MIN_CUSTOMERS}


def clears_floor(nearest: list[tuple[int, float]], corrected: bool = False,
                 titles: dict[int, float] | None = None) -> bool:
    """Whether the closest article is near enough in meaning for the question to be related:
    its best chunk, and the closest of the candidates' titles (`title_cosines`; not judged
    when none is stored)."""
    best = nearest[0][1] if nearest else 0.0
    if best < (CORRECTED_QUERY_FLOOR if corrected else QUERY_FLOOR):
        return False
    return not titles or max(titles.values()) >= TITLE_FLOOR


def fuse(keyword: list[tuple[int, float]], nearest: list[tuple[int, float]],
         keyword_coverage: float, *, shares: dict[int, float], corrected: bool = False,
         titles: dict[int, float] | None = None,
         learned: dict[int, float] | None = None) -> list[int]:
    """Article ids, best first: cosine, raised toward a closer title (see TITLE_WEIGHT),
    plus a keyword bonus (see KEYWORD_ALPHA), plus a lift for a question customers
    confirmed the article answered (`learned`: `learned_cosines`; see LEARNED_WEIGHT).

    `keyword` is (article id, BM25 score) best first, `nearest` (article id, cosine) best
    first; `keyword_coverage` is how much of the query, as typed, the best keyword match
    holds; `shares` how much of the query each keyword candidate holds; `titles` the
    question's cosine with candidates' titles (`title_cosines`).
    An unrelated question gets nothing. A question related only by its keywords (its
    cosines are noise) keeps the keyword order. The floors read the best chunk's cosine and
    the closest title's.
    """
    by_meaning = clears_floor(nearest, corrected, titles)
    if not by_meaning and keyword_coverage < KEYWORD_COVERAGE:  # nothing here answers it
        return []
    if mode() == "semantic":  # meaning alone, measured as the model ranks: chunks only
        keyword, titles, learned = [], None, None
    if nearest and not by_meaning:
        return [article_id for article_id, _score in keyword]
    titles, learned = titles or {}, learned or {}
    cosine = dict(nearest)
    weakest = nearest[-1][1] if nearest else 0.0  # a keyword match outside the nearest list

    def meaning(article_id: int) -> float:
        chunk = cosine.get(article_id, weakest)
        return chunk + TITLE_WEIGHT * max(titles.get(article_id, chunk) - chunk, 0.0) \
            + LEARNED_WEIGHT * max(learned.get(article_id, 0.0) - LEARNED_FLOOR, 0.0) \
            / (1.0 - LEARNED_FLOOR)

    best_keyword = keyword[0][1] if keyword and keyword[0][1] > 0 else 1.0
    scores = {article_id: meaning(article_id)
              + KEYWORD_ALPHA * shares.get(article_id, 0.0)
              * max(bm25 / best_keyword, 0.0) ** KEYWORD_SCORE_POWER
              for article_id, bm25 in keyword}
    for article_id, score in nearest:
        if score < ITEM_FLOOR:
            break
        scores.setdefault(article_id, meaning(article_id))
    return sorted(scores, key=scores.__getitem__, reverse=True)
