"""SQLAlchemy 2 engine and session per app, plus the declarative base.

SQLite runs in WAL mode with foreign keys on and a busy timeout. Write transactions take the
write lock up front with `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes
fails at once with "database is locked" when another writer got there first, and the busy
timeout cannot help it. Requests that change state (every method but GET/HEAD/OPTIONS) and CLI
commands begin immediately; a GET that must write uses `db.writing()`, and a POST that does slow
reading first (checking a password) can do it in `db.reading()` without holding the lock.

On PostgreSQL a read-only request (GET/HEAD/OPTIONS, outside `db.writing()`) runs its statements
in autocommit: no BEGIN before them and no ROLLBACK after, two round trips fewer per page on a
server that shares the CPU with the app. It sees exactly what it saw in a transaction: at READ
COMMITTED, PostgreSQL's default and ours, every statement takes its own snapshot anyway, so a
BEGIN/ROLLBACK pair around a page never gave its statements one common view. Writes keep their
transactions (POST, `db.writing()`, CLI, workers); a flush in an autocommit read is a bug that
warns (an error under the tests).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import select as io_select
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from flask import Flask, g
from sqlalchemy import (
    JSON,
    MetaData,
    Select,
    create_engine,
    event,
    exc,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_immediate = contextvars.ContextVar("portal_db_immediate", default=True)
_read_only = contextvars.ContextVar("portal_db_read_only", default=False)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Naive UTC now: every timestamp in the database is naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so it can choose IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _immediate.get() else "BEGIN")


# A PostgreSQL engine -> its autocommit view (same pool), for read-only requests.
_autocommit_views: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


class WriteInReadOnlyRequest(RuntimeWarning):
    """A read-only request flushed a change outside `db.writing()`."""


class _PortalSession(Session):
    """Binds a read-only request's transactions to the autocommit engine on PostgreSQL.

    The choice is made when a transaction begins (`get_bind`), so `db.writing()`, which ends
    the read before it writes, gets a real transaction on the next statement.
    """

    def get_bind(self, mapper=None, **kw):
        bind = super().get_bind(mapper, **kw)
        if _read_only.get():
            return _autocommit_views.get(bind, bind)
        return bind


@event.listens_for(_PortalSession, "before_flush")
def _warn_write_in_read_only(session: Session, _context, _instances) -> None:
    if _read_only.get() and session.get_bind() in _autocommit_views.values() and (
            session.new or session.dirty or session.deleted):
        warnings.warn("a read-only request writes outside db.writing(): on PostgreSQL each "
                      "statement commits on its own", WriteInReadOnlyRequest, stacklevel=2)


def make_engine(url: str, compiled_cache_size: int = 500) -> Engine:
    """`compiled_cache_size`: statements kept compiled (SQLAlchemy's default is 500)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15, "check_same_thread": False},
                               query_cache_size=compiled_cache_size)
        _configure_sqlite(engine)
        return engine
    return postgres_engine(url, query_cache_size=compiled_cache_size)


# A pooled connection older than this is replaced (silent network drops; server-side timeouts).
POOL_RECYCLE_SECONDS = 1800


def postgres_engine(url: str, **options) -> Engine:
    """A PostgreSQL engine whose pool drops dead connections without a round trip.

    `pool_pre_ping` would send `SELECT 1` at every checkout: one extra round trip per request
    (and per rate-limit hit), paid under load as a wait for the database's CPU. A connection
    the server closed (a restart, `pg_terminate_backend`, an idle timeout) has its goodbye or
    EOF waiting on the socket, so a zero-timeout poll finds it; the pool then opens a fresh
    one. Connections that die silently are replaced by age (`pool_recycle`); a connection that
    dies between checkout and its first statement fails that one request, and SQLAlchemy then
    renews the whole pool.
    """
    connect_args = options.pop("connect_args", {})
    # JIT compiles plans whose estimated cost is high (big tables, no usable estimate): ms of
    # LLVM work for queries that run in a fraction of that. Our queries are short; the setting
    # goes in the start-up packet, no round trip.
    connect_args.setdefault("options", "-c jit=off")
    engine = create_engine(url, pool_recycle=POOL_RECYCLE_SECONDS, connect_args=connect_args,
                           **options)
    # Read-only requests use this view of the same pool (see the module's doc).
    _autocommit_views[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")

    @event.listens_for(engine, "checkout")
    def drop_closed(dbapi_connection, _record, _proxy):
        if dbapi_connection.closed or _has_unread_data(dbapi_connection.fileno()):
            raise exc.DisconnectionError("the server closed this connection")

    return engine


def _has_unread_data(fileno: int) -> bool:
    """An idle connection with something to read was closed by the server (or sent a
    notice we have no use for between requests): either way, it is not worth keeping."""
    poller = io_select.poll()  # not select(): it refuses descriptors above 1023
    try:
        poller.register(fileno, io_select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class Database:
    """A small Flask extension: one engine per app, one session per app context."""

    def __init__(self) -> None:
        self.session: scoped_session[Session] = scoped_session(
            self._new_session, scopefunc=lambda: g._get_current_object()
        )

    def _new_session(self) -> Session:
        return _PortalSession(bind=self.engine, expire_on_commit=False)

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"], app.config["SQL_COMPILED_CACHE_SIZE"])
        app.extensions["portal_db_engine"] = engine
        app.teardown_appcontext(self._remove_session)
        app.before_request(self._choose_transaction_mode)
        app.teardown_request(self._restore_transaction_mode)

    @property
    def engine(self) -> Engine:
        from flask import current_app

        return current_app.extensions["portal_db_engine"]

    def get_session(self) -> Session:
        return self.session()

    def _remove_session(self, _exc=None) -> None:
        self.session.remove()

    @staticmethod
    def _choose_transaction_mode() -> None:
        from flask import request

        read_only = request.method in ("GET", "HEAD", "OPTIONS")
        g._portal_db_mode = _immediate.set(not read_only)
        g._portal_db_read_only = _read_only.set(read_only)

    @staticmethod
    def _restore_transaction_mode(_exc=None) -> None:
        """A thread that serves several requests (or a test) must not inherit the last mode."""
        token = g.pop("_portal_db_mode", None)
        if token is not None:
            _immediate.reset(token)
        token = g.pop("_portal_db_read_only", None)
        if token is not None:
            _read_only.reset(token)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Transactions begun inside this block take no lock until their first write."""
        token = _immediate.set(False)
        try:
            yield
        finally:
            _immediate.reset(token)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """Slow read-only work inside a POST (a password check) without holding the write lock.

        Nothing may be written inside; the view's writes afterwards begin a new transaction.
        """
        session = self.session()
        session.commit()
        try:
            with self.deferred():
                yield session
        finally:
            session.rollback()  # end the read transaction; there is nothing to keep

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """Run a write inside a read-only request: end the read, write in an IMMEDIATE one."""
        session = self.session()
        session.commit()
        token = _immediate.set(True)
        read_only = _read_only.set(False)
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise
        finally:
            _read_only.reset(read_only)
            _immediate.reset(token)

    @contextlib.contextmanager
    def writing_one_statement(self) -> Iterator[Session]:
        """One write statement inside a read-only request (a search log row). On PostgreSQL
        the request is in autocommit and the statement commits itself: one round trip, where
        `writing()` costs BEGIN, the statement and COMMIT. Elsewhere it is `writing()`.
        Only for a single statement: two would commit one by one."""
        session = self.session()
        if _read_only.get() and session.get_bind() in _autocommit_views.values():
            yield session
        else:
            with self.writing():
                yield session

    def without_waiting_for_disk(self, rows: Select) -> Select:
        """An INSERT's rows (`insert(...).from_select(names, rows)`) whose commit does not
        wait for the disk on PostgreSQL. Only for analytics (search log, suggestion events):
        a server crash may lose their last fraction of a second, as SQLite's WAL at
        synchronous=NORMAL may; everything else keeps synchronous commits. A synchronous
        commit waits for the WAL flush, measured here at a median of 12 ms on a busy disk,
        while a search request's own work is a few ms. Set inside the statement itself (no
        SET LOCAL round trip), so it also holds when the statement commits on its own
        (`writing_one_statement`)."""
        if self.session.get_bind().dialect.name != "postgresql":
            return rows
        return rows.where(func.set_config("synchronous_commit", "off", True) == "off")


def json_rows(stmt: Select, order: tuple, dialect: str):
    """`stmt`'s rows as one JSON array of arrays, a column of another statement (read it with
    `rows_from_json`): several lists of a page in one statement, where a statement each costs
    a round trip each to a PostgreSQL server that may share the CPU, and on SQLite the
    statement overhead of SQLAlchemy and the driver each. Each row leads with its place in
    `order` (its own ORDER BY): SQLite before 3.44 cannot order inside an aggregate.
    JSON gives times back as ISO text, enums as their values, and booleans as 0/1 on SQLite."""
    rows = stmt.add_columns(func.row_number().over(order_by=order).label("row_number")
                            ).subquery()
    values = [rows.c.row_number, *(column for column in rows.c if column.key != "row_number")]
    if dialect == "postgresql":
        return select(func.coalesce(func.json_agg(func.json_build_array(*values)),
                                    literal_column("'[]'::json"), type_=JSON)).scalar_subquery()
    return select(func.json_group_array(func.json_array(*values), type_=JSON)).scalar_subquery()


def rows_from_json(rows: list[list]) -> list[list]:
    """The rows of a `json_rows` column, in their statement's order, without their places."""
    return [row[1:] for row in sorted(rows, key=itemgetter(0))]


def dialect_insert(session: Session):
    """The INSERT construct of the session's database kind, which has ON CONFLICT (an upsert,
    or an insert that ignores duplicates) on both PostgreSQL and SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def refresh_planner_statistics(session: Session) -> None:
    """Sample the tables for SQLite's query planner (a sampled ANALYZE: milliseconds at any
    size). Without statistics it guesses, and at a million tickets it prefers the status index
    to the open tickets' due-date index and sorts every open ticket for each queue page.
    PostgreSQL's autovacuum keeps its statistics itself."""
    if session.get_bind().dialect.name != "sqlite":
        return
    session.execute(text("PRAGMA analysis_limit = 1000"))
    session.execute(text("ANALYZE"))


@dataclass(frozen=True)
class Page:
    """One page of a list: `items` plus what a pagination control needs."""

    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paginate(stmt: Select, page: int, per_page: int = 25) -> Page:
    """Run `stmt` for one page (two queries: the count and the page). Out-of-range pages clamp."""
    from portal.extensions import db

    session = db.session
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    page = min(max(1, page), max(1, math.ceil(total / per_page)))
    items = session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).unique().all()
    return Page(list(items), page, per_page, total)
