"""Fixtures for the two-host suite: a fresh database, two hosts started together, workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hosts import LOGIN_LIMIT, POSTGRES_URL, SECRET_KEY, Cluster, Host, free_port
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/cluster/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.cluster)


def _fresh_database() -> str:
    base = make_url(POSTGRES_URL)
    name = f"{base.database}_cluster"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _setup(database_url: str, instance: Path) -> tuple[object, dict, list[int]]:
    """Demo content (staff, customers, KB, ticket categories) and tickets past their SLA,
    written before the workers start so their first scheduled slot escalates them."""
    from portal import create_app
    from portal.db import utcnow
    from portal.extensions import db
    from portal.tickets import services
    from portal.tickets.models import Ticket, TicketType

    app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance), "SECRET_KEY": SECRET_KEY,
                      "DATABASE_URL": database_url, "SEMANTIC_SEARCH": False,
                      "STARTUP_CHECKS": False})
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["demo", "seed"])
        assert result.exit_code == 0, result.output
        accounts = json.loads((instance / "demo-accounts.json").read_text())
        ids = []
        for n in range(20):
            ticket, _files = services.create_ticket(services.NewTicket(
                subject=f"Overdue {n}", description="Waiting too long.",
                type=TicketType.PROBLEM, name="Olga Overdue", email=f"olga{n}@example.com"))
            db.session.flush()
            ids.append(ticket.id)
        db.session.commit()
        overdue = utcnow().replace(microsecond=0)
        for ticket in db.session.query(Ticket).filter(Ticket.id.in_(ids)):
            ticket.first_response_due_at = overdue
        db.session.commit()
        db.engine.dispose()
    return app, accounts, ids


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not POSTGRES_URL:
        pytest.skip("CLUSTER TESTS SKIPPED: set PORTAL_TEST_POSTGRES_URL (CI starts a server)")
    database_url = _fresh_database()
    root = tmp_path_factory.mktemp("cluster")
    uploads = root / "shared-uploads"
    uploads.mkdir()
    hosts = []
    for name in ("a", "b"):
        instance = root / f"host-{name}"
        instance.mkdir()
        port = free_port()
        env = {
            **os.environ,
            "PORTAL_INSTANCE_PATH": str(instance),
            "PORTAL_DATABASE_URL": database_url,
            "PORTAL_SECRET_KEY": SECRET_KEY,
            "PORTAL_UPLOAD_DIR": str(uploads),
            "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
            "PORTAL_SEMANTIC_SEARCH": "false",  # two model copies per host would crowd CI
            "PORTAL_WTF_CSRF_ENABLED": "false",  # CSRF has its own tests; here: coherence
            "PORTAL_LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT} per minute",
            "PORTAL_JOBS_LEASE_SECONDS": "3",
            "PORTAL_JOBS_POLL_SECONDS": "0.2",
            "PORTAL_MAIL_SERVER": "",  # development mail: one .eml file per message sent
        }
        hosts.append(Host(name, instance, env, port, f"http://127.0.0.1:{port}"))
    a, b = hosts
    try:
        # Both hosts start on the empty database at the same moment.
        migrations = [a.migrate(), b.migrate()]
        codes = tuple(proc.wait(120) for proc in migrations)
        setup_app, accounts, sla_tickets = _setup(database_url, root / "setup")
        for host in hosts:
            host.start_server()
            host.start_worker()
        for host in hosts:
            host.wait_until_serving()
        yield Cluster(a, b, database_url, codes, accounts, sla_tickets, setup_app)
    finally:
        for host in hosts:
            host.stop()
