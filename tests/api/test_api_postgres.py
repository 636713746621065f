"""The API and webhooks on PostgreSQL (CI sets PORTAL_TEST_POSTGRES_URL; else skipped)."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import create_engine, func, select, text

from portal.extensions import db

POSTGRES_URL = os.environ.get("PORTAL_TEST_POSTGRES_URL")

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="POSTGRES TESTS SKIPPED: set PORTAL_TEST_POSTGRES_URL (CI starts a server)",
)


@pytest.fixture
def pg_app(app_factory):
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    app = app_factory(DATABASE_URL=POSTGRES_URL, WEBHOOKS_ALLOW_HTTP=True,
                      WEBHOOKS_ALLOW_LOOPBACK=True)
    from portal.migrate import upgrade

    with app.app_context():
        upgrade(app)
        yield app


def _token(role: str = "agent") -> str:
    from portal.api import tokens
    from portal.auth.models import Role
    from portal.auth.services import create_user

    user = create_user(f"{role}@example.com", role.title(), "long password", Role(role),
                       confirmed=True)
    _row, text_ = tokens.create_token(user, "pg", tokens.allowed_scopes(user), None)
    db.session.commit()
    return text_


def test_concurrent_requests_with_one_idempotency_key_create_one_ticket(pg_app):
    from portal.tickets.models import Ticket

    auth = {"Authorization": f"Bearer {_token()}", "Idempotency-Key": "same-key"}
    payload = {"subject": "Once", "description": "Only once", "requester_email": "c@example.com"}
    statuses: list[int] = []
    start = threading.Barrier(4)

    def send():
        client = pg_app.test_client(use_cookies=False)
        start.wait()
        with pg_app.app_context():
            statuses.append(client.post("/api/v1/tickets", json=payload, headers=auth)
                            .status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    db.session.rollback()
    assert db.session.scalar(select(func.count(Ticket.id)).where(Ticket.subject == "Once")) == 1


def test_signed_delivery_and_pagination_on_postgres(pg_app):
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from standardwebhooks import Webhook

    from portal.jobs.worker import Worker
    from portal.webhooks import services

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = services.create_endpoint(
            f"http://127.0.0.1:{server.server_port}/hook", ["ticket.created"])
        db.session.commit()
        client = pg_app.test_client(use_cookies=False)
        auth = {"Authorization": f"Bearer {_token()}"}
        for i in range(5):
            assert client.post("/api/v1/tickets", headers=auth, json={
                "subject": f"T{i}", "description": "d",
                "requester_email": f"c{i}@example.com"}).status_code == 201
        seen, url = [], "/api/v1/tickets?limit=2"
        while url:
            response = client.get(url, headers=auth)
            seen += [t["id"] for t in response.get_json()["data"]]
            link = response.headers.get("Link")
            url = link.split(">")[0][1:] if link else None
        assert len(seen) == len(set(seen)) == 5
        db.session.commit()
        Worker(pg_app, name="pg-burst").run(burst=True)
        assert len(received) == 5
        for headers, body in received:
            assert Webhook(endpoint.secret).verify(body, headers)["type"] == "ticket.created"
        assert {json.loads(b)["data"]["subject"] for _h, b in received} == \
            {f"T{i}" for i in range(5)}
    finally:
        server.shutdown()
        server.server_close()
