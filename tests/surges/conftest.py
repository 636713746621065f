"""Surge fixtures: tickets from a small hand-written set of support messages (tickets.csv:
15 topics, 40 messages about a broken checkout), filed the way the portal files them and
embedded by the real MiniLM encoder."""

from __future__ import annotations

import csv
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from portal.db import utcnow
from portal.extensions import db
from portal.surges import services
from portal.tickets import services as ticket_services
from portal.tickets.models import TicketType

FIXTURE = Path(__file__).with_name("tickets.csv")
SEMANTIC = pytest.mark.parametrize("app", [{"SEMANTIC_SEARCH": True}], indirect=True)
BOTH_DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
POSTGRES_URL = os.environ.get("PORTAL_TEST_POSTGRES_URL")


@pytest.fixture
def database(request):
    return getattr(request, "param", "sqlite")


@pytest.fixture
def app(app_factory, request, database):
    """The app on SQLite, or on PostgreSQL for tests marked BOTH_DATABASES (emptied first;
    without PORTAL_TEST_POSTGRES_URL those skip loudly)."""
    overrides = getattr(request, "param", None) or {}
    if database == "postgres":
        if not POSTGRES_URL:
            pytest.skip("POSTGRES TESTS SKIPPED: set PORTAL_TEST_POSTGRES_URL (CI starts a server)")
        _empty_postgres(request.getfixturevalue("tmp_path") / "pg-migrate")
        overrides = {**overrides, "DATABASE_URL": POSTGRES_URL}
    app = app_factory(**overrides)
    with app.app_context():
        yield app


def _empty_postgres(instance: Path) -> None:
    """Every table emptied; migrated afresh when the schema is missing or behind (the first
    test, or after a test that dropped it)."""
    from portal import create_app
    from portal.migrate import upgrade

    engine = create_engine(POSTGRES_URL)
    try:
        tables = inspect(engine).get_table_names()
        with engine.begin() as conn:
            if "alembic_version" in tables:
                emptied = [t for t in tables if t != "alembic_version"]
                conn.execute(text(f"TRUNCATE {', '.join(emptied)} RESTART IDENTITY CASCADE"))
            else:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance), "SECRET_KEY": "x",
                      "DATABASE_URL": POSTGRES_URL})
    with app.app_context():
        upgrade(app)  # a no-op when the schema is at the head
        db.engine.dispose()


def fixture_rows() -> list[dict]:
    with FIXTURE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def file_ticket(app):
    """file_ticket(subject, text, created_at, email=..., name=..., organization=None)."""
    counter = {"n": 0}

    def factory(subject: str, text: str, created_at: datetime, email: str | None = None,
                organization=None, name: str | None = None, **fields):
        counter["n"] += 1
        ticket, _ = ticket_services.create_ticket(ticket_services.NewTicket(
            subject=subject, description=text, type=TicketType.QUESTION,
            name=name or f"Requester {counter['n']}",
            email=email or f"r{counter['n']}@example.com"))
        ticket.created_at = ticket.updated_at = ticket.last_activity_at = created_at
        ticket.messages[0].created_at = created_at
        if organization is not None:
            ticket.organization_id = organization.id
        for key, value in fields.items():
            setattr(ticket, key, value)
        db.session.flush()
        return ticket

    return factory


@pytest.fixture
def stream(file_ticket):
    """A quiet week of mixed topics, then a spike: returns (now, spike tickets).

    Six tickets of each other topic spread over the last six and a half days (a young
    installation: the cold-start rule applies), then `spike` checkout tickets in 40 minutes.
    """

    def build(spike: int = 14, now: datetime | None = None, groups=None):
        now = now or utcnow().replace(microsecond=0)
        rows = fixture_rows()
        background = [r for r in rows if r["category"] != "checkout_502"]
        by_topic: dict[str, list[dict]] = {}
        for row in background:
            by_topic.setdefault(row["category"], []).append(row)
        quiet = [row for rows_ in by_topic.values() for row in rows_[:6]]
        span = timedelta(days=6, hours=12)
        for i, row in enumerate(quiet):
            at = now - span + span * (i / len(quiet))
            file_ticket(row["subject"], row["text"], at - timedelta(hours=1))
        checkout = [r for r in rows if r["category"] == "checkout_502"][:spike]
        tickets = []
        for i, row in enumerate(checkout):
            at = now - timedelta(minutes=40) + timedelta(minutes=40 * i / max(len(checkout), 1))
            tickets.append(file_ticket(row["subject"], row["text"], at, **(groups or {})))
        db.session.commit()
        while services.embed_pending(limit=200):
            pass
        db.session.commit()
        return now, tickets

    return build
