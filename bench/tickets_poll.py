"""How much the ticket page's live-update poll costs: "nothing new" (204) vs new messages,
and the "My requests" list with many tickets.

    python bench/tickets_poll.py [--tickets 2000] [--polls 500]

Runs against a throwaway instance in a temp folder with the real stack (SQLite, Flask test
client); prints mean and p95 per request in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal import create_app  # noqa: E402
from portal.auth.services import create_user  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.migrate import upgrade  # noqa: E402
from portal.tickets import services  # noqa: E402
from portal.tickets.lifecycle import touch  # noqa: E402
from portal.tickets.models import Message, TicketType  # noqa: E402

PASSWORD = "bench password 123"


def timed(call, count: int) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.mean(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--polls", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({
            "INSTANCE_PATH": folder, "TESTING": True, "SECRET_KEY": "bench",
            "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False, "SEMANTIC_SEARCH": False,
            "DATABASE_URL": f"sqlite:///{folder}/bench.sqlite3",
        })
        with app.app_context():
            upgrade(app)
            user = create_user("bench@example.com", "Bench", PASSWORD, confirmed=True)
            agent = create_user("agent@example.com", "Agent", PASSWORD, confirmed=True)
            for i in range(args.tickets):
                ticket, _ = services.create_ticket(services.NewTicket(
                    subject=f"Bench ticket {i}", description="Body " * 40,
                    type=TicketType.QUESTION, name="Bench", email=user.email, requester=user,
                ))
            db.session.commit()
            client = app.test_client()
            client.post("/auth/login", data={"email": user.email, "password": PASSWORD})
            page = client.get(f"/tickets/{ticket.reference}").get_data(as_text=True)
            poll = page.split('id="poller" hx-get="')[1].split('"')[0].replace("&amp;", "&")

            def nothing_new():
                assert client.get(poll).status_code == 204

            mean, p95 = timed(nothing_new, args.polls)
            print(f"poll, nothing new (204):     mean {mean:6.2f} ms  p95 {p95:6.2f} ms")
            db.session.add(Message(ticket=ticket, author=agent, author_name="Agent",
                                   from_agent=True, body="New reply"))
            touch(ticket)
            db.session.commit()

            def something_new():
                assert client.get(poll).status_code == 200

            mean, p95 = timed(something_new, args.polls)
            print(f"poll, one new message (200): mean {mean:6.2f} ms  p95 {p95:6.2f} ms")

            def my_requests():
                assert client.get("/tickets/?q=ticket").status_code == 200

            mean, p95 = timed(my_requests, max(20, args.polls // 10))
            print(f"my requests, {args.tickets} tickets, search: mean {mean:6.2f} ms  "
                  f"p95 {p95:6.2f} ms")
            db.engine.dispose()


if __name__ == "__main__":
    main()
