"""Shared fixtures: an app on a temporary instance, users, sign-in helpers, a real SMTP server,
and a live server with a real Chromium for browser tests."""

from __future__ import annotations

import email
import os
import re
import shutil
import socket
import threading
import time
from email.message import Message
from pathlib import Path

import pytest
from flask import g, request_started
from werkzeug.serving import make_server

from portal import create_app
from portal.auth.models import Role
from portal.extensions import db

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


def make_app(instance: Path, **overrides):
    config = {
        "TESTING": True,
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"sqlite:///{instance / 'portal.sqlite3'}",
        "SECRET_KEY": "test-secret-key-not-for-production",
        "BASE_URL": "http://localhost",
        "SERVER_NAME": None,
        "SEMANTIC_SEARCH": False,
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": False,
        "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",  # same KDF, a cost fit for a test suite
        "JOBS_POLL_SECONDS": 0.05,
    }
    config.update(overrides)
    app = create_app(config)
    request_started.connect(_start_as_a_fresh_request, app)
    return app


def _start_as_a_fresh_request(sender, **extra):
    """Each request starts as in production: its own transaction, and who is signed in read
    from its own cookies.

    The `app` fixture keeps one app context pushed for the whole test, and a request inside it
    reuses that context's `g` and database session: Flask-Login caches the user of the
    previous request there, Flask-WTF the CSRF token of the previous request's session
    (another client's, maybe), and a GET leaves its deferred read transaction open, so the
    next POST's write would fail with "database is locked" as soon as a worker thread had
    committed in between (in production every request has a session of its own).
    """
    g.pop("_login_user", None)
    g.pop(sender.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    db.session.commit()


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """Run the migrations once; each test gets a copy of the resulting database file."""
    folder = tmp_path_factory.mktemp("template")
    app = make_app(folder)
    from portal.migrate import upgrade

    with app.app_context():
        upgrade(app)
        db.engine.dispose()
    return folder / "portal.sqlite3"


@pytest.fixture
def app_factory(tmp_path, migrated_db):
    """Build an app on a fresh instance folder with a migrated database."""
    apps = []

    def factory(**overrides):
        instance = tmp_path / f"instance{len(apps)}"
        instance.mkdir()
        shutil.copy(migrated_db, instance / "portal.sqlite3")
        app = make_app(instance, **overrides)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        follower = app.extensions.get("portal_changes")
        if follower is not None:
            follower.stop()
        app.extensions["portal_db_engine"].dispose()


@pytest.fixture
def pg_app(app_factory):
    """An app on an empty, freshly migrated PostgreSQL database (CI starts one and sets
    PORTAL_TEST_POSTGRES_URL; elsewhere the test skips loudly)."""
    url = os.environ.get("PORTAL_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("POSTGRES TESTS SKIPPED: set PORTAL_TEST_POSTGRES_URL (CI starts a server)")
    from sqlalchemy import create_engine, text

    from portal.migrate import upgrade

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    app = app_factory(DATABASE_URL=url)
    with app.app_context():
        upgrade(app)
        yield app


@pytest.fixture
def app(app_factory, request):
    overrides = getattr(request, "param", None) or {}
    app = app_factory(**overrides)
    with app.app_context():
        yield app


@pytest.fixture
def make_user(app):
    """Create a user: make_user(role="agent", email=..., name=..., password=...)."""
    from portal.auth.services import create_user

    counter = {"n": 0}

    def factory(role: str = "customer", email: str | None = None, name: str | None = None,
                password: str = PASSWORD, **fields):
        counter["n"] += 1
        email = email or f"{role}{counter['n']}@example.com"
        user = create_user(email, name or f"{role.title()} {counter['n']}", password, Role(role),
                           confirmed=True)
        for key, value in fields.items():
            setattr(user, key, value)
        db.session.commit()
        return user

    return factory


class AuthActions:
    def __init__(self, client):
        self.client = client

    def login(self, email: str, password: str = PASSWORD, follow_redirects=False, **extra):
        return self.client.post(
            "/auth/login", data={"email": email, "password": password, **extra},
            follow_redirects=follow_redirects,
        )

    def logout(self):
        return self.client.post("/auth/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def customer(make_user):
    return make_user("customer", email="casey@example.com", name="Casey Customer")


@pytest.fixture
def agent(make_user):
    return make_user("agent", email="alex@example.com", name="Alex Agent")


@pytest.fixture
def admin(make_user):
    return make_user("admin", email="ada@example.com", name="Ada Admin")


@pytest.fixture
def customer_client(client, auth, customer):
    auth.login(customer.email)
    return client


@pytest.fixture
def agent_client(client, auth, agent):
    auth.login(agent.email)
    return client


@pytest.fixture
def admin_client(client, auth, admin):
    auth.login(admin.email)
    return client


# --- a real SMTP server ------------------------------------------------------------------


class SmtpHandler:
    """The aiosmtpd handler (kept apart from MailBox: aiosmtpd inspects every attribute)."""

    def __init__(self, received: list[Message]) -> None:
        self.received = received

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        msg = email.message_from_bytes(envelope.content)
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.received.append(msg)
        return "250 Message accepted for delivery"


class MailBox:
    """Messages received by the aiosmtpd server, parsed.

    Mail goes out through the outbox and a worker, so reading `messages` first waits until
    the worker has nothing left to do: "no email was sent" is then a real observation.
    """

    def __init__(self) -> None:
        self.received: list[Message] = []
        self.settle = lambda: None  # set by the `mailbox` fixture
        self.handler = SmtpHandler(self.received)

    @property
    def messages(self) -> list[Message]:
        self.settle()
        return self.received

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        commit_pending_work()
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= count, f"expected {count} emails, got {len(self.received)}"
        return self.received

    @staticmethod
    def text(msg: Message) -> str:
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        return ""

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address in m["X-Envelope-To"]]


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    mailbox = MailBox()
    with socket.socket() as probe:  # aiosmtpd cannot bind port 0 itself
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox.handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller, mailbox
    finally:
        controller.stop()


def commit_pending_work() -> None:
    """End the test thread's transaction, so a worker sees its work and is not kept waiting
    for SQLite's write lock."""
    from flask import has_app_context

    if has_app_context():
        db.session.commit()


def wait_for_jobs(timeout: float = 10.0) -> None:
    """Wait until no job is due or running (a worker in another thread does them)."""
    from sqlalchemy import func, or_, select

    from portal.db import utcnow
    from portal.jobs.models import Job, JobStatus

    commit_pending_work()
    deadline = time.monotonic() + timeout
    with db.deferred():
        while True:
            busy = db.session.scalar(select(func.count(Job.id)).where(or_(
                Job.status == JobStatus.RUNNING,
                (Job.status == JobStatus.QUEUED) & (Job.run_at <= utcnow()),
            )))
            db.session.rollback()
            if not busy:
                return
            assert time.monotonic() < deadline, f"{busy} jobs still due after {timeout} s"
            time.sleep(0.02)


@pytest.fixture
def worker(app):
    """A real job worker running in a background thread for the whole test."""
    from portal.jobs.worker import Worker

    running = Worker(app, name="test-worker", run_schedules=False)
    thread = running.start_thread()
    yield running
    running.stopping.set()
    thread.join(10)


@pytest.fixture
def run_jobs(app):
    """Run every due job now, in this thread, with the real worker (`jobs work --burst`)."""
    from portal.jobs.worker import Worker

    def run() -> int:
        commit_pending_work()
        return Worker(app, name="burst-worker").run(burst=True)

    return run


@pytest.fixture
def mailbox(app, smtp_server, worker):
    """Point the app's mail at a real local SMTP server and return what it receives; a
    worker thread sends the outbox."""
    controller, box = smtp_server
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port)
    box.settle = wait_for_jobs
    return box


# --- live server and real browser ----------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"


class LiveServer:
    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        app.config["BASE_URL"] = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_server(app):
    """The app served on 127.0.0.1 by a threaded server.

    While it runs, the test thread's transactions begin deferred, so a test that reads the
    database to check what the browser did does not hold the write lock the server needs.
    """
    server = LiveServer(app).start()
    db.session.commit()
    with db.deferred():
        yield server
    db.session.rollback()
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "BROWSER TESTS SKIPPED: Debian's chromium is not installed "
            "(apt-get install chromium); CI always installs it"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def audit(page, context: str = "") -> None:
    """Run axe-core on the current page and fail on any violation."""
    page.evaluate(AXE_JS.read_text() + "\n;null")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    violations = [
        f"{v['id']}: {v['help']} ({len(v['nodes'])}x, e.g. {v['nodes'][0]['target']})"
        for v in result["violations"]
    ]
    assert not violations, f"axe violations {context} at {page.url}: {violations}"


@pytest.fixture
def axe():
    if not AXE_JS.exists():
        pytest.fail("axe-core is missing: run `npm ci` (make test does)")
    return audit


# --- a small world for the cross-cutting QA tests ----------------------------------------------

SECRET = "ZQXSECRET"  # marks every piece of data no customer may ever see


@pytest.fixture
def world(app, make_user, run_jobs):
    """Customers in a sharing and a non-sharing organisation, a stranger, an agent and an admin;
    a ticket with a public attachment and an internal note with its own attachment; KB articles
    that are public, internal, draft and archived. Built through the real services."""
    import io
    from types import SimpleNamespace

    from werkzeug.datastructures import FileStorage

    from portal.agent import services as agent_services
    from portal.auth.models import Organization
    from portal.kb.models import ArticleStatus, Visibility
    from portal.kb.services import ArticleInput, create_article, create_category, create_section
    from portal.tickets import services
    from portal.tickets.models import Priority, TicketType

    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

    def files(name):
        return [FileStorage(io.BytesIO(pdf), filename=name, content_type="application/pdf")]

    shared = Organization(name="Sharing Co", domain="sharing.example.com", shares_tickets=True)
    private = Organization(name="Private Co", domain="private.example.com", shares_tickets=False)
    db.session.add_all([shared, private])
    db.session.flush()
    w = SimpleNamespace()
    w.owner = make_user("customer", email="owner@sharing.example.com", name="Olive Owner",
                        organization_id=shared.id)
    w.colleague = make_user("customer", email="colleague@sharing.example.com",
                            name="Colin Colleague", organization_id=shared.id)
    w.private_owner = make_user("customer", email="pat@private.example.com", name="Pat Private",
                                organization_id=private.id)
    w.private_peer = make_user("customer", email="peer@private.example.com", name="Peer Private",
                               organization_id=private.id)
    w.stranger = make_user("customer", email="stranger@example.com", name="Stan Stranger")
    w.agent = make_user("agent", email="agent@example.com", name="Agnes Agent")
    w.admin = make_user("admin", email="admin@example.com", name="Adam Admin")

    def ticket_for(user, subject):
        ticket, _ = services.create_ticket(services.NewTicket(
            subject=subject, description="The printer smokes.", type=TicketType.INCIDENT,
            name=user.name, email=user.email, requester=user, ccs=[],
            files=files("public-invoice.pdf"),
        ))
        db.session.commit()
        return ticket

    w.ticket = ticket_for(w.owner, "Printer is on fire")
    w.private_ticket = ticket_for(w.private_owner, "Private printer trouble")
    w.public_attachment = w.ticket.messages[0].attachments[0]
    w.private_attachment = w.private_ticket.messages[0].attachments[0]
    agent_services.reply(w.ticket, w.agent, "Please try turning it off.", internal=False)
    note = agent_services.reply(
        w.ticket, w.agent, f"{SECRET} note: customer is on the naughty list", internal=True,
        files=files(f"{SECRET}-internal.pdf"),
    )
    agent_services.apply_changes(w.ticket, agent_services.Changes(
        priority=Priority.URGENT, tags=[f"{SECRET.lower()}tag"],
    ), w.agent)
    db.session.commit()
    w.internal_attachment = note.attachments[0]
    w.note = note

    section = create_section(create_category("Printers"), "Fires")
    db.session.flush()

    def article(title, visibility=Visibility.PUBLIC, status=ArticleStatus.PUBLISHED):
        made = create_article(ArticleInput(title=title, body=f"{title} body text about printers.",
                                           section_id=section.id, visibility=visibility),
                              w.agent, status=status)
        db.session.commit()
        return made

    w.public_article = article("Printer smokes public answer")
    w.internal_article = article(f"Printer smokes {SECRET} internal runbook",
                                 visibility=Visibility.INTERNAL)
    w.draft_article = article(f"Printer smokes {SECRET} draft", status=ArticleStatus.DRAFT)
    w.archived_article = article(f"Printer smokes {SECRET} archived",
                                 status=ArticleStatus.ARCHIVED)
    w.secret = SECRET
    run_jobs()  # the search index, and the emails the world's tickets caused

    def client_for(user):
        client = app.test_client()
        if user is not None:
            page = client.get("/auth/login").get_data(as_text=True)
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
            response = client.post("/auth/login", data={
                "email": user.email, "password": PASSWORD,
                "csrf_token": token.group(1) if token else "",
            })
            assert response.status_code in (302, 303), response.status_code
        return client

    w.client_for = client_for
    return w
