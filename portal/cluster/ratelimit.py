"""Rate-limit counters in PostgreSQL, for several hosts without Redis.

A `limits` storage (the library under Flask-Limiter) registered for URIs of the form
`portal+postgresql://user:password@host/database`. Each hit is one upsert on the unlogged
`rate_limit_counters` table that returns the new count, timed by the database's clock so that
hosts with drifting clocks share one window. It serves Flask-Limiter's default fixed-window
strategy. With Redis, set `PORTAL_RATELIMIT_STORAGE_URI=redis://...` instead.
"""

from __future__ import annotations

from limits.storage import Storage
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from portal.db import postgres_engine

SCHEME = "portal+postgresql"


def storage_uri(database_url: str) -> str:
    """The storage URI for a `postgresql+psycopg://` database URL."""
    return SCHEME + "://" + database_url.split("://", 1)[1]


class PostgresStorage(Storage):
    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        url = "postgresql+psycopg://" + uri.split("://", 1)[1]
        self.engine = postgres_engine(url, pool_size=2, max_overflow=4)

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        with self.engine.begin() as conn:
            return conn.execute(text(
                "WITH clock AS (SELECT extract(epoch FROM clock_timestamp()) AS now)"
                " INSERT INTO rate_limit_counters AS c (key, hits, expires_at)"
                " SELECT :key, :amount, clock.now + :expiry FROM clock"
                " ON CONFLICT (key) DO UPDATE SET"
                " hits = CASE WHEN c.expires_at <= (SELECT now FROM clock) THEN :amount"
                " ELSE c.hits + :amount END,"
                " expires_at = CASE WHEN c.expires_at <= (SELECT now FROM clock)"
                " THEN excluded.expires_at ELSE c.expires_at END"
                " RETURNING hits"), {"key": key, "amount": amount, "expiry": expiry}).scalar()

    def get(self, key: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text(
                "SELECT hits FROM rate_limit_counters WHERE key = :key"
                " AND expires_at > extract(epoch FROM clock_timestamp())"),
                {"key": key}).scalar() or 0

    def get_expiry(self, key: str) -> float:
        with self.engine.connect() as conn:
            expires = conn.execute(text(
                "SELECT expires_at FROM rate_limit_counters WHERE key = :key"),
                {"key": key}).scalar()
        if expires is None:
            import time

            return time.time()
        return float(expires)

    def check(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(text("DELETE FROM rate_limit_counters")).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM rate_limit_counters WHERE key = :key"), {"key": key})
