"""The production database: migrations and the basic flows on PostgreSQL.

CI starts a PostgreSQL server and sets PORTAL_TEST_POSTGRES_URL; elsewhere these skip loudly.
"""

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal.db import Base
from portal.extensions import db
from portal.migrate import include_object

POSTGRES_URL = os.environ.get("PORTAL_TEST_POSTGRES_URL")

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="POSTGRES TESTS SKIPPED: set PORTAL_TEST_POSTGRES_URL (CI starts a server)",
)


def test_migrations_build_the_models_on_postgres(pg_app):
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"include_object": include_object}),
            Base.metadata,
        )
    assert diff == []


def test_register_and_sign_in_on_postgres(pg_app):
    client = pg_app.test_client()
    response = client.post(
        "/auth/register",
        data={"name": "Pat", "email": "pat@example.com", "password": "ferry lantern",
              "confirm": "ferry lantern"},
    )
    assert response.status_code == 303
    client.post("/auth/logout")
    assert client.get("/account").status_code == 302
    assert client.post(
        "/auth/login", data={"email": "pat@example.com", "password": "ferry lantern"}
    ).status_code == 303
    assert client.get("/account").status_code == 200


def test_simultaneous_sign_ups_with_one_email_on_postgres(pg_app):
    """Both requests may pass the "is this email free?" check; the unique index decides, and
    the loser gets the friendly duplicate message, never a 500."""
    import threading

    from sqlalchemy import func, select

    from portal.auth.models import User

    statuses: list[int] = []
    start = threading.Barrier(4)

    def sign_up():
        client = pg_app.test_client()
        start.wait()
        response = client.post("/auth/register", data={
            "name": "Twin", "email": "twin@example.com", "password": "ferry lantern",
            "confirm": "ferry lantern"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=sign_up) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 200, 200, 303]
    count = db.session.scalar(select(func.count(User.id)).where(User.email == "twin@example.com"))
    assert count == 1


def test_demo_content_and_main_pages_on_postgres(pg_app):
    """Seed the demo (KB, tickets, support setup) and walk the main pages as each role."""
    result = pg_app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    import json
    from pathlib import Path

    accounts = json.loads((Path(pg_app.instance_path) / "demo-accounts.json").read_text())
    client = pg_app.test_client()
    assert b"How can we help?" in client.get("/").data
    assert client.get("/kb/search?q=password").status_code == 200

    email, password = accounts["customer"]
    signed_in = client.post("/auth/login", data={"email": email, "password": password})
    assert signed_in.status_code == 303
    mine = client.get("/tickets/")
    assert mine.status_code == 200 and b"TKT-" in mine.data
    from sqlalchemy import select

    from portal.tickets.models import TicketCategory

    form = {
        "subject": "Export on Postgres", "description": "The CSV export stops.",
        "type": "problem", "form_key": "pg-form-1",
        "category": str(db.session.scalar(select(TicketCategory.id).limit(1))),
    }
    filed = client.post("/tickets/new", data=form)
    assert filed.status_code == 303
    again = client.post("/tickets/new", data=form)
    assert again.headers["Location"] == filed.headers["Location"]  # one ticket for two posts
    client.post("/auth/logout")

    email, password = accounts["agent"]
    client.post("/auth/login", data={"email": email, "password": password})
    queue = client.get("/agent/")
    assert queue.status_code == 200 and b"Export on Postgres" in queue.data
    # Full-text search through the GIN indexes: subject words, message words, the last word
    # as a beginning. A term joined by punctuation is a phrase.
    for found in ("postgres expo", "csv stops", "Export on Postgres", "on-postgr"):
        assert b"Export on Postgres" in client.get("/agent/", query_string={
            "view": "all", "q": found}).data, found
    for missing in ("csv printer", "postgres-on", "expo postgres", "on-postgr@example"):
        assert b"Export on Postgres" not in client.get("/agent/", query_string={
            "view": "all", "q": missing}).data, missing
    assert client.get("/agent/reports?priority=urgent").status_code == 200
    assert client.get("/agent/reports").status_code == 200


def test_a_connection_the_server_closed_is_replaced_without_an_error(pg_app):
    """No pre-ping round trip: the pool finds the server's goodbye on the socket at checkout
    (after a restart or pg_terminate_backend) and opens a fresh connection."""
    import time

    from sqlalchemy import create_engine, text

    client = pg_app.test_client()
    assert client.get("/kb/").status_code == 200
    db.session.remove()
    pooled = db.engine.pool.checkedin()
    assert pooled >= 1
    admin = create_engine(POSTGRES_URL)
    with admin.connect() as conn:
        killed = conn.execute(text(
            "SELECT array_agg(pid) FROM (SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' OFFSET 0) others"
            " WHERE pg_terminate_backend(pid)")).scalar()
        assert killed
        deadline = time.monotonic() + 10
        while conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)"),
                           {"p": killed}).scalar() and time.monotonic() < deadline:
            time.sleep(0.05)
    admin.dispose()
    for _ in range(pooled + 1):
        assert client.get("/kb/").status_code == 200


def test_report_durations_are_plain_floats_on_postgres(pg_app):
    """The reports read their duration rows straight from the DB-API cursor (no type
    conversion): PostgreSQL's numeric epoch must arrive as a float, not a Decimal."""
    from datetime import datetime

    from sqlalchemy import literal, select

    from portal.agent.reports import _minutes, _rows

    start, end = literal(datetime(2026, 1, 1, 10, 0)), literal(datetime(2026, 1, 1, 11, 30, 30))
    [(minutes,)] = _rows(select(_minutes(start, end)))
    assert type(minutes) is float and minutes == 90.5


def test_events_carry_their_tickets_report_filters_on_postgres(pg_app):
    """The triggers of migration scale3_0002 on PostgreSQL: a new event takes its ticket's
    report filters, and a change of the ticket's reaches its events; a filtered report and the
    SLA-due queue order (partial indexes, literal statuses) run on them."""
    from sqlalchemy import select

    from portal.agent.queue import QueueQuery, fetch_page
    from portal.agent.reports import ReportFilters, build_report
    from portal.auth.models import Role
    from portal.auth.services import create_user
    from portal.tickets.models import Group, Priority, Ticket, TicketEvent

    agent = create_user("pat@example.com", "Pat Agent", "a long password 1", Role.AGENT,
                        confirmed=True)
    group = Group(name="Tier 2")
    ticket = Ticket(subject="Slow export", requester_name="Val", requester_email="v@example.com",
                    priority=Priority.HIGH, assignee=agent)
    db.session.add_all([group, ticket])
    db.session.flush()
    db.session.add(TicketEvent(ticket_id=ticket.id, kind="status", old_value="open",
                               new_value="solved", actor_id=agent.id))
    db.session.commit()

    def copies():
        return db.session.execute(select(
            TicketEvent.ticket_priority, TicketEvent.ticket_group_id,
            TicketEvent.ticket_assignee_id)).one()

    assert copies() == (Priority.HIGH, None, agent.id)
    ticket.priority, ticket.group_id = Priority.URGENT, group.id
    db.session.commit()
    assert copies() == (Priority.URGENT, group.id, agent.id)
    today = ReportFilters.from_args({})[0]
    urgent = ReportFilters(start=today.start, end=today.end, priority=Priority.URGENT)
    assert build_report(urgent).solved == 1
    assert build_report(ReportFilters(start=today.start, end=today.end,
                                      priority=Priority.HIGH)).solved == 0
    db.session.delete(group)
    db.session.commit()
    assert copies() == (Priority.URGENT, None, agent.id)
    page = fetch_page(QueueQuery.from_args({"view": "mine"}), agent)
    assert [t.id for t in page.tickets] == [ticket.id]


def _transaction_states(engine):
    """Record, after every statement, whether its connection is inside a transaction:
    IDLE means no BEGIN was sent (autocommit), INTRANS that one is open."""
    from psycopg.pq import TransactionStatus
    from sqlalchemy import event

    states: list[str] = []

    def after(conn, _cursor, _statement, _params, _context, _many):
        status = conn.connection.dbapi_connection.info.transaction_status
        states.append(TransactionStatus(status).name)

    event.listen(engine, "after_cursor_execute", after)
    return states, lambda: event.remove(engine, "after_cursor_execute", after)


def _get_recording(client, url: str, **kwargs):
    """GET `url`: (the response, its statements with whitespace folded, and after each one
    whether its connection was inside a transaction, as `_transaction_states`)."""
    from sqlalchemy import event

    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(" ".join(statement.split()))

    states, stop = _transaction_states(db.engine)
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = client.get(url, **kwargs)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
        stop()
    return response, statements, states


def test_a_read_only_request_sends_no_begin_on_postgres(pg_app):
    """A GET runs in autocommit (no BEGIN/ROLLBACK round trips); a POST in one transaction."""
    from portal.auth.models import Role
    from portal.auth.services import create_user

    create_user("reader@example.com", "Reader", "ferry lantern", Role.CUSTOMER, confirmed=True)
    db.session.commit()
    client = pg_app.test_client()
    states, stop = _transaction_states(db.engine)
    try:
        signed_in = client.post("/auth/login", data={
            "email": "reader@example.com", "password": "ferry lantern"})
        assert signed_in.status_code == 303
        assert "INTRANS" in states  # the sign-in's writes ran in a transaction
        states.clear()
        page = client.get("/tickets/")  # the user, the count and the page of tickets
        assert page.status_code == 200
        assert states and set(states) == {"IDLE"}, states
    finally:
        stop()


def test_a_write_inside_a_read_only_request_commits_atomically_on_postgres(pg_app):
    """`db.writing()` in a GET gets a real transaction: a failure undoes all of its rows."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError

    from portal.tickets.models import Tag

    states, stop = _transaction_states(db.engine)
    try:
        with pg_app.test_request_context("/", method="GET"):
            pg_app.preprocess_request()
            assert db.session.scalar(select(func.count(Tag.id))) == 0
            with pytest.raises(IntegrityError), db.writing() as session:
                session.add(Tag(name="first"))
                session.flush()
                session.add(Tag(name="first"))  # the unique name fails the second insert
                session.flush()
            assert states[0] == "IDLE" and "INTRANS" in states[1:], states
            with db.writing() as session:
                session.add(Tag(name="kept"))
            pg_app.do_teardown_request()
    finally:
        stop()
    db.session.remove()
    assert db.session.scalars(select(Tag.name)).all() == ["kept"]


def test_a_write_outside_db_writing_in_a_read_only_request_warns_on_postgres(pg_app):
    from portal.db import WriteInReadOnlyRequest
    from portal.tickets.models import Tag

    with pg_app.test_request_context("/", method="GET"):
        pg_app.preprocess_request()
        db.session.add(Tag(name="stray"))
        with pytest.warns(WriteInReadOnlyRequest):
            db.session.flush()
        db.session.rollback()
        pg_app.do_teardown_request()


def test_agent_ticket_page_and_suggestions_on_postgres(pg_app):
    """The ticket page's statements of rows (conversation, the requester's other tickets, the
    EXISTS probe of its optional blocks) and the suggestions' multi-row impression insert."""
    import json
    from pathlib import Path

    from sqlalchemy import func, select

    from portal import write_buffer
    from portal.tickets import suggestions
    from portal.tickets.models import SuggestionEvent, Ticket

    result = pg_app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    accounts = json.loads((Path(pg_app.instance_path) / "demo-accounts.json").read_text())
    client = pg_app.test_client()
    email, password = accounts["customer"]
    client.post("/auth/login", data={"email": email, "password": password})
    with pg_app.app_context():
        ticket = db.session.scalars(select(Ticket).order_by(Ticket.id)).first()
        first_words = ticket.messages[0].body[:30]
        events = db.session.scalar(select(func.count(SuggestionEvent.id)))
    shown = client.get("/tickets/new/suggestions", headers={"HX-Request": "true"},
                       query_string={"subject": "reset my password", "form_key": "pg-key",
                                     "description": "the sign-in page says it is wrong"})
    assert shown.status_code == 200 and "suggestion-card" in shown.text
    with pg_app.app_context():
        assert write_buffer.flush(suggestions.BUFFER) >= 2
        assert db.session.scalar(select(func.count(SuggestionEvent.id))) > events
    client.post("/auth/logout")
    email, password = accounts["agent"]
    client.post("/auth/login", data={"email": email, "password": password})
    page = client.get(f"/agent/tickets/{ticket.id}")
    assert page.status_code == 200
    assert first_words in page.text and "Other tickets" in page.text


def test_a_search_is_logged_in_one_statement_that_commits_itself_on_postgres(pg_app):
    """The search log row of a GET is one round trip: the INSERT runs in the request's
    autocommit (no BEGIN, no SET LOCAL, no COMMIT) and is committed when the page answers."""
    from sqlalchemy import create_engine, text

    page, statements, states = _get_recording(pg_app.test_client(), "/kb/search?q=refund")
    assert page.status_code == 200
    logged = [n for n, s in enumerate(statements) if "search_log" in s]
    assert len(logged) == 1 and "set_config(" in statements[logged[0]]
    assert states[logged[0]] == "IDLE" and not [s for s in statements if "SET LOCAL" in s]
    other = create_engine(os.environ["PORTAL_TEST_POSTGRES_URL"])
    try:
        with other.connect() as conn:
            assert conn.execute(text("SELECT query, source FROM search_log")).all() == [
                ("refund", "search")]
    finally:
        other.dispose()


def test_the_agent_pages_read_in_few_statements_on_postgres(pg_app):
    """Each statement is a round trip to a server sharing the CPU. The ticket page is one
    statement: the ticket with the probes of the optional blocks (undelivered mail, bounces,
    "full email" links, the problem hint), whose own queries run only when there is
    something, and its tags, CCs, timeline, thread and the requester's other tickets as JSON
    lists. The queue: its rows carry their tags."""
    import io

    from sqlalchemy import event, select
    from werkzeug.datastructures import FileStorage

    from portal.agent import services as agent_services
    from portal.auth.models import Role
    from portal.auth.services import create_user
    from portal.tickets import services
    from portal.tickets.models import Message, Status, TicketEvent, TicketType

    agent = create_user("desk@example.com", "Desk Agent", "ferry lantern", Role.AGENT,
                        confirmed=True)
    customer = create_user("cara@example.com", "Cara Customer", "ferry lantern",
                           Role.CUSTOMER, confirmed=True)
    db.session.commit()
    ticket, _ = services.create_ticket(services.NewTicket(
        subject="Printer jams", description="It jams on page two.", type=TicketType.INCIDENT,
        name=customer.name, email=customer.email, requester=customer,
        ccs=["boss@example.com"]))
    agent_services.apply_changes(ticket, agent_services.Changes(tags=["paperjam", "tray"]),
                                 agent)
    agent_services.reply(ticket, agent, "Which tray?", internal=True, files=[FileStorage(
        io.BytesIO(b"%PDF-1.4 tray map"), filename="tray map.pdf",
        content_type="application/pdf")])
    older, _ = services.create_ticket(services.NewTicket(
        subject="Toner smudges", description="Grey lines.", type=TicketType.QUESTION,
        name=customer.name, email=customer.email, requester=customer))
    db.session.commit()
    # The JSON lists, each in its own order, with PostgreSQL's types read back.
    found, rows = agent_services.ticket_page(ticket.id)
    assert found is ticket
    assert rows.tags == ["paperjam", "tray"] and rows.ccs == ["boss@example.com"]
    assert [o.id for o in rows.other_tickets] == [older.id]
    assert rows.other_tickets[0].status == Status.NEW
    note = rows.thread[-1]
    assert note.internal is True and note.from_agent is True and note.body == "Which tray?"
    assert note.attachments[0].filename == "tray map.pdf"
    assert note.created_at == db.session.get(Message, note.id).created_at
    events = db.session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                .order_by(TicketEvent.created_at.desc(),
                                          TicketEvent.id.desc())).all()
    assert [(e.kind, e.public, e.created_at) for e in rows.timeline] == [
        (e.kind, e.public, e.created_at) for e in events]
    client = pg_app.test_client()
    assert client.post("/auth/login", data={
        "email": "desk@example.com", "password": "ferry lantern"}).status_code == 303

    def statements(url):
        client.get(url)  # the view counts and the choice lists are kept after the first
        seen: list[str] = []

        def record(_conn, _cursor, statement, *_args):
            if "change_feed" not in statement:
                seen.append(" ".join(statement.split()))

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            page = client.get(url)
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        assert page.status_code == 200
        return page, seen

    page, seen = statements(f"/agent/tickets/{ticket.id}")
    assert all(text in page.text for text in ("boss@example.com", "paperjam", "tray"))
    assert not [s for s in seen if s.startswith(("SELECT ticket_tags", "SELECT tags.",
                                                 "SELECT EXISTS"))], seen
    assert not [s for s in seen if s.startswith(("SELECT inbound_messages",
                                                 "SELECT problem_incidents"))], seen
    assert "Toner smudges" in page.text and "tray map.pdf" in page.text
    assert len(seen) == 1, seen
    page, seen = statements("/agent/")
    assert "paperjam" in page.text and "tray" in page.text
    assert not [s for s in seen if "FROM ticket_tags" in s and not s.startswith(
        "SELECT tickets.id")], seen


def test_suggestion_impressions_are_written_by_the_flush_in_one_statement_on_postgres(pg_app):
    """A suggestions request (a GET) writes nothing; the flush writes its impressions in one
    INSERT of one row's parameters, whose commit does not wait for the disk (analytics, as
    the search log)."""
    from sqlalchemy import event, select

    from portal import write_buffer
    from portal.auth.models import Role
    from portal.auth.services import create_user
    from portal.kb.models import ArticleStatus
    from portal.kb.services import ArticleInput, create_article, create_category, create_section
    from portal.tickets import suggestions
    from portal.tickets.models import SuggestionEvent

    author = create_user("writer@example.com", "Writer", "ferry lantern", Role.AGENT,
                         confirmed=True)
    section = create_section(create_category("Printing"), "Printers")
    db.session.flush()
    for title in ("Printer paper jams", "Clear a printer jam", "Printer tray jams"):
        create_article(ArticleInput(title=title, body="Open the printer tray; remove the jam.",
                                    section_id=section.id), author,
                       status=ArticleStatus.PUBLISHED)
    db.session.commit()
    page, statements, _states = _get_recording(
        pg_app.test_client(), "/tickets/new/suggestions", query_string={
            "subject": "printer jams", "description": "the printer tray jams",
            "form_key": "form-1"}, headers={"HX-Request": "true", "HX-Target": "suggestions"})
    assert page.status_code == 200
    assert not [s for s in statements if s.startswith("INSERT")], statements
    inserts: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if statement.startswith("INSERT INTO suggestion"):
            inserts.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert write_buffer.flush(suggestions.BUFFER) >= 2
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(inserts) == 1 and "set_config(" in inserts[0]
    db.session.remove()
    shown = db.session.execute(select(SuggestionEvent.kind, SuggestionEvent.article_id,
                                      SuggestionEvent.form_key, SuggestionEvent.query)).all()
    assert len(shown) >= 2 and {row[0] for row in shown} == {"impression"}
    assert len({row.article_id for row in shown}) == len(shown)
    assert {(row.form_key, row.query) for row in shown} == {
        ("form-1", "printer jams the printer tray jams")}


def test_the_customer_ticket_page_reads_in_one_statement_on_postgres(pg_app):
    """The ticket and what the customer may read of its conversation (a JSON column of the
    ticket's statement): never the internal note or its file, the public file shown."""
    import io

    from sqlalchemy import event
    from werkzeug.datastructures import FileStorage

    from portal.agent import services as agent_services
    from portal.auth.models import Role
    from portal.auth.services import create_user
    from portal.tickets import services
    from portal.tickets.access import get_ticket_and_thread_or_404
    from portal.tickets.models import TicketType

    agent = create_user("desk@example.com", "Desk Agent", "ferry lantern", Role.AGENT,
                        confirmed=True)
    customer = create_user("cara@example.com", "Cara Customer", "ferry lantern",
                           Role.CUSTOMER, confirmed=True)
    db.session.commit()
    ticket, _ = services.create_ticket(services.NewTicket(
        subject="Printer jams", description="It jams on page two.", type=TicketType.INCIDENT,
        name=customer.name, email=customer.email, requester=customer))
    with pg_app.test_request_context():  # the public reply's email links to the ticket
        for internal, body, name in ((True, "Secret tray theory", "theory.pdf"),
                                     (False, "Try tray two.", "tray map.pdf")):
            agent_services.reply(ticket, agent, body, internal=internal, files=[FileStorage(
                io.BytesIO(b"%PDF-1.4 " + name.encode()), filename=name,
                content_type="application/pdf")])
        db.session.commit()
    client = pg_app.test_client()
    assert client.post("/auth/login", data={
        "email": "cara@example.com", "password": "ferry lantern"}).status_code == 303
    url = f"/tickets/{ticket.reference}"
    client.get(url)
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if "change_feed" not in statement:
            seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        page = client.get(url)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert page.status_code == 200
    assert "Try tray two." in page.text and "tray map.pdf" in page.text
    assert "Secret tray theory" not in page.text and "theory.pdf" not in page.text
    assert len(seen) == 1, seen
    with pg_app.test_request_context():
        _ticket, _viewer, messages = get_ticket_and_thread_or_404(ticket.reference)
    assert [(m.body, [a.filename for a in m.attachments]) for m in messages] == [
        ("It jams on page two.", []), ("Try tray two.", ["tray map.pdf"])]


def test_an_article_requeued_while_a_worker_empties_the_queue_is_not_lost_on_postgres(pg_app):
    """A request reads the article's queue row, a worker deletes that row (it indexed the
    previous change) and commits, then the request queues the article again: the new change
    must stay queued (a read-then-update matched no row and failed with StaleDataError)."""
    from sqlalchemy import create_engine, delete, select, text

    from portal.kb.models import Article, IndexQueue
    from portal.search.queue import enqueue_article

    assert pg_app.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
    article_id = db.session.scalar(select(Article.id).limit(1))
    enqueue_article(article_id, job=False)
    db.session.commit()
    read_by_the_request = db.session.get(IndexQueue, article_id)
    assert read_by_the_request is not None

    worker = create_engine(os.environ["PORTAL_TEST_POSTGRES_URL"])
    with worker.begin() as conn:
        conn.execute(delete(IndexQueue.__table__).where(IndexQueue.article_id == article_id))
    worker.dispose()
    enqueue_article(article_id, job=False)
    db.session.commit()
    queued = db.session.execute(text("SELECT count(*) FROM index_queue WHERE article_id = :a"),
                                {"a": article_id}).scalar()
    assert queued == 1
