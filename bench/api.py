"""Benchmark the API's ticket list and webhook fan-out (a script, not a test).

    python bench/api.py [--tickets 100000] [--events 1000] [--endpoints 3] [--workers 2]

Builds a fresh instance in a temporary folder (SQLite), bulk-inserts N tickets, creates an
agent with a token, then times 300 `GET /api/v1/tickets` calls through the Flask app at the
default page size and 300 at the largest: first pages, filtered pages (status, priority),
oldest-first, and pages deep in the cursor walk. Then registers E endpoints pointing at a
local HTTP receiver (loopback allowed by the development settings), emits M events in one
transaction (M x E signed deliveries, each a job) and runs W real `flask jobs work --burst`
processes until the receiver has every delivery (worker start-up included). The last line:
RESULT tickets=<n> list_p95_ms=<x> list_p50_ms=<x> list100_p95_ms=<x> deliveries=<n>
       webhooks_s=<x> webhooks_per_s=<x>
list_p95_ms is for the default page size (25); list100_p95_ms for the largest (100).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def seed_tickets(n: int, requester_ids: list[int]) -> None:
    from sqlalchemy import insert

    from portal.db import utcnow
    from portal.extensions import db
    from portal.tickets.models import Ticket

    rng = random.Random(7)
    start = utcnow() - timedelta(days=365)
    statuses = ["new", "open", "pending", "on_hold", "solved", "closed"]
    priorities = ["low", "normal", "high", "urgent"]
    rows = []
    for i in range(n):
        moment = start + timedelta(seconds=i * 300 + rng.randint(0, 299))
        requester = rng.choice(requester_ids)
        rows.append({
            "subject": f"Ticket {i} about printers", "status": rng.choice(statuses),
            "priority": rng.choice(priorities), "type": "question", "channel": "web",
            "requester_id": requester, "requester_name": f"Customer {requester}",
            "requester_email": f"c{requester}@example.com", "created_at": moment,
            "updated_at": moment, "last_activity_at": moment, "reopen_count": 0,
            "public_reply_count": 0, "first_response_breached": False,
            "resolution_breached": False, "csat_comment": "",
        })
    for chunk in range(0, n, 20000):
        db.session.execute(insert(Ticket.__table__), rows[chunk:chunk + 20000])
    db.session.commit()


def time_list(app, token: str, limit: int, n_requests: int = 300) -> list[float]:
    """First pages (plain, filtered, oldest first) and pages deep in the cursor walk."""
    client = app.test_client(use_cookies=False)
    auth = {"Authorization": f"Bearer {token}"}
    urls = [f"/api/v1/tickets?limit={limit}", f"/api/v1/tickets?limit={limit}&status=open",
            f"/api/v1/tickets?limit={limit}&priority=urgent",
            f"/api/v1/tickets?limit={limit}&sort=updated_at"]
    url, deep = f"/api/v1/tickets?limit={limit}", []
    for _ in range(200):
        link = client.get(url, headers=auth).headers.get("Link")
        if not link:
            break
        url = link.split(">")[0][1:]
        deep.append(url)
    urls += deep[::20]
    for u in urls:  # warm-up
        client.get(u, headers=auth)
    timings = []
    for i in range(n_requests):
        started = time.perf_counter()
        response = client.get(urls[i % len(urls)], headers=auth)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return timings


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.count += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from portal import create_app
    from portal.api import tokens
    from portal.auth.models import Role
    from portal.auth.services import create_user
    from portal.extensions import db
    from portal.migrate import upgrade
    from portal.webhooks import emit, services

    instance = Path(tempfile.mkdtemp(prefix="bench-api-"))
    config = {"INSTANCE_PATH": str(instance), "SECRET_KEY": "bench", "SEMANTIC_SEARCH": False,
              "DATABASE_URL": f"sqlite:///{instance / 'portal.sqlite3'}",
              "RATELIMIT_ENABLED": False, "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
              "WEBHOOKS_ALLOW_HTTP": True, "WEBHOOKS_ALLOW_LOOPBACK": True}
    app = create_app(config)
    with app.app_context():
        upgrade(app)
        agent = create_user("agent@example.com", "Agent", "benchmark pw", Role.AGENT,
                            confirmed=True)
        customers = [create_user(f"c{i}@example.com", f"C {i}", "benchmark pw", Role.CUSTOMER,
                                 confirmed=True) for i in range(50)]
        db.session.commit()
        started = time.perf_counter()
        seed_tickets(args.tickets, [c.id for c in customers])
        seed_s = time.perf_counter() - started
        print(f"seeded {args.tickets} tickets in {seed_s:.1f} s")
        _row, token = tokens.create_token(agent, "bench", ["tickets:read"], None)
        db.session.commit()
        timings = time_list(app, token, 25)
        p95 = statistics.quantiles(timings, n=20)[18]
        p50 = statistics.median(timings)
        print(f"ticket list, 25 a page: p50 {p50:.1f} ms, p95 {p95:.1f} ms over "
              f"{len(timings)} requests")
        timings = time_list(app, token, 100)
        p95_100 = statistics.quantiles(timings, n=20)[18]
        print(f"ticket list, 100 a page: p50 {statistics.median(timings):.1f} ms, "
              f"p95 {p95_100:.1f} ms")

        receiver = Receiver()
        for i in range(args.endpoints):
            services.create_endpoint(receiver.url, ["surge.detected"], f"bench {i}")
        db.session.commit()
        for i in range(args.events):
            emit("surge.detected", {"id": i, "summary": f"Surge {i}"})
        db.session.commit()
        expected = args.events * args.endpoints
        env = {**os.environ, "PORTAL_INSTANCE_PATH": str(instance),
               "PORTAL_DATABASE_URL": config["DATABASE_URL"], "PORTAL_SECRET_KEY": "bench",
               "PORTAL_SEMANTIC_SEARCH": "false", "PORTAL_WEBHOOKS_ALLOW_HTTP": "true",
               "PORTAL_WEBHOOKS_ALLOW_LOOPBACK": "true", "PORTAL_JOBS_BATCH": "20"}
        started = time.perf_counter()
        workers = [subprocess.Popen(  # noqa: S603 (our own CLI)
            [sys.executable, "-m", "flask", "--app", "app", "jobs", "work", "--burst"],
            cwd=ROOT, env=env) for _ in range(args.workers)]
        for w in workers:
            w.wait()
        elapsed = time.perf_counter() - started
        print(f"webhooks: {receiver.count}/{expected} delivered in {elapsed:.1f} s "
              f"by {args.workers} workers")
    print(f"RESULT tickets={args.tickets} list_p95_ms={p95:.1f} list_p50_ms={p50:.1f} "
          f"list100_p95_ms={p95_100:.1f} "
          f"deliveries={receiver.count} webhooks_s={elapsed:.1f} "
          f"webhooks_per_s={receiver.count / elapsed:.0f}")


if __name__ == "__main__":
    main()
