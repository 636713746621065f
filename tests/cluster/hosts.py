"""Two hosts on one PostgreSQL, for real: two gunicorn app servers (separate instance folders,
one database, one secret key, one shared upload folder) and two job workers, started from
the command line as an operator would.

Needs PORTAL_TEST_POSTGRES_URL (CI sets it); the cluster runs in a database of its own
(`<test database>_cluster`), created afresh for the module.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("PORTAL_TEST_POSTGRES_URL")
SECRET_KEY = "cluster-test-secret-key-shared-by-every-host"
LOGIN_LIMIT = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Client:
    """A browser-like HTTP client: cookies (shared by every host on 127.0.0.1), no redirects
    followed."""

    def __init__(self) -> None:
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, method: str, url: str, data: dict | None = None, headers=None,
                files: dict | None = None) -> Response:
        body = None
        headers = dict(headers or {})
        if files:
            boundary = uuid.uuid4().hex
            parts = []
            for name, value in (data or {}).items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                             f"\r\n\r\n{value}\r\n".encode())
            for name, (filename, content, mime) in files.items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}";'
                             f' filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n'.encode()
                             + content + b"\r\n")
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif data is not None:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with self.opener.open(req, timeout=30) as resp:
                return Response(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, dict(err.headers), err.read())

    def get(self, url: str, **kwargs) -> Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: dict, **kwargs) -> Response:
        return self.request("POST", url, data=data, **kwargs)


@dataclass
class Host:
    name: str
    instance: Path
    env: dict
    port: int
    url: str
    server: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    logs: list = field(default_factory=list)

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.instance / f"{log_name}.log", "ab")  # noqa: SIM115 (open while it runs)
        self.logs.append(log)
        return subprocess.Popen(args, cwd=ROOT, env=self.env,  # noqa: S603 (our own CLIs)
                                stdout=log, stderr=subprocess.STDOUT)

    def migrate(self) -> subprocess.Popen:
        return self._spawn([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"],
                           "migrate")

    def start_server(self) -> None:
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self.server = self._spawn([gunicorn, "-w", "2", "-b", f"127.0.0.1:{self.port}",
                                   "--graceful-timeout", "3", "app:app"], "gunicorn")

    def start_worker(self) -> None:
        self.worker = self._spawn([sys.executable, "-m", "flask", "--app", "app", "jobs",
                                   "work", "--name", f"worker-{self.name}"], "worker")

    def wait_until_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"{self.name} exited: {self.log_text('gunicorn')}"
            try:
                if Client().get(self.url + "/").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"host {self.name} never served: {self.log_text('gunicorn')}")

    def log_text(self, name: str) -> str:
        path = self.instance / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in (self.worker, self.server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.worker, self.server):
            if proc is not None:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for log in self.logs:
            log.close()


@dataclass
class Cluster:
    a: Host
    b: Host
    database_url: str
    migrate_codes: tuple[int, int]
    accounts: dict
    sla_tickets: list[int]
    setup_app: object

    def sql(self, statement: str, **params):
        engine = create_engine(self.database_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(statement), params)
                return result.all() if result.returns_rows else result.rowcount
        finally:
            engine.dispose()


def sign_in(client: Client, host: Host, email: str, password: str) -> None:
    response = client.post(host.url + "/auth/login", {"email": email, "password": password})
    assert response.status == 303, response.text[:500]


def fresh_database(server_url: str) -> str:
    """An empty database `<name>_cluster` on the server of `server_url`; its URL."""
    base = make_url(server_url)
    name = f"{base.database}_cluster"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def seed(database_url: str, instance: Path) -> tuple[object, dict, list[int]]:
    """Demo content (staff, customers, KB, ticket categories) and tickets past their SLA,
    written before the workers start so their first scheduled slot escalates them."""
    from portal import create_app
    from portal.db import utcnow
    from portal.extensions import db
    from portal.tickets import services
    from portal.tickets.models import Ticket, TicketType

    app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance), "SECRET_KEY": SECRET_KEY,
                      "DATABASE_URL": database_url, "SEMANTIC_SEARCH": False,
                      "STARTUP_CHECKS": False, "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"})
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


def make_hosts(root: Path, database_url: str) -> list[Host]:
    """Hosts a and b: own instance folders and ports; one database, key and upload folder."""
    uploads = root / "shared-uploads"
    uploads.mkdir(exist_ok=True)
    hosts = []
    for name in ("a", "b"):
        instance = root / f"host-{name}"
        instance.mkdir(exist_ok=True)
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
            # The per-address limit is what crosses hosts here; the per-account ones (and the
            # search limit, which 50 publishes' checks would reach) are tested on their own.
            "PORTAL_LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT": "1000 per minute",
            "PORTAL_LOGIN_ACCOUNT_RATE_LIMIT": "1000 per minute",
            "PORTAL_SEARCH_RATE_LIMIT": "100000 per minute",
            "PORTAL_SEARCH_ADDRESS_RATE_LIMIT": "100000 per minute",
            "PORTAL_JOBS_LEASE_SECONDS": "3",
            "PORTAL_JOBS_POLL_SECONDS": "0.2",
            "PORTAL_JOBS_BATCH": "50",
            "PORTAL_PASSWORD_HASH_METHOD": "scrypt:1024:8:1",  # the same KDF at a test's cost
            "PORTAL_MAIL_SERVER": "",  # development mail: one .eml file per message sent
        }
        hosts.append(Host(name, instance, env, port, f"http://127.0.0.1:{port}"))
    return hosts
