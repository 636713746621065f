"""Agent workspace benchmark: seed N tickets with replies, then time the queue views, the agent
ticket page and the reports page through the Flask app (test client, real SQLite file).

    python bench/agent_queue.py --tickets 100000
    python bench/agent_queue.py --tickets 5000          # under a minute
    python bench/agent_queue.py --tickets 1000000 --instance /tmp/aq1m   # issue 18's target size
    python bench/agent_queue.py --tickets 1000000 --instance /tmp/aq1m   # again: reuses the data

The 100,000-ticket seed takes ~30 s (on a two-core machine under load); a million takes ~5
minutes (rows ~2 min, indexes and full-text index ~3 min), ~3.1 GB of disk and ~770 MB of
memory, so keep it with --instance and reuse it (a later run applies new migrations to it). The
latency lines are wall-clock; on a shared machine read the CPU figures beside them.

Seeding uses executemany on the raw DB-API connection (no ORM objects) as a bulk load: no
journal, triggers and secondary indexes set aside and rebuilt, the full-text index rebuilt once.
"search" is the free-text queue searches (a word, two words, part of an address); peak RSS is
the bench process's (seed included on a first run). Ends with one line:
RESULT tickets=<n> queue_p95_ms=<x> ticket_p95_ms=<x> reports_p95_ms=<x>
       reports_first_max_ms=<x> first_max_ms=<x> search_p95_ms=<x> peak_rss_mb=<x>
(first_max_ms: the slowest first request of any queue view, report or the ticket page, each
the first of its kind in the process, after the warm-up gunicorn's master does.)
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug.security import generate_password_hash  # noqa: E402

from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402

PASSWORD = "bench password 123"
FMT = "%Y-%m-%d %H:%M:%S.%f"
STATUSES_CLOSED = ["closed"] * 60 + ["solved"] * 25
STATUSES_OPEN = ["new"] * 3 + ["open"] * 6 + ["pending"] * 4 + ["on_hold"] * 2
PRIORITIES = ["low"] * 2 + ["normal"] * 5 + ["high"] * 2 + ["urgent"]
TYPES = ["question", "incident", "problem", "request"]
TARGETS = {"urgent": (60, 240), "high": (240, 1440), "normal": (480, 4320), "low": (1440, 7200)}
WORDS = [
    "printer", "invoice", "password", "export", "webhook", "refund", "login", "crash", "upload",
    "report", "api", "limit", "billing", "sync", "error", "timeout", "mobile", "dashboard",
    "account", "email",
]


def ts(value: datetime | None) -> str | None:
    return value.strftime(FMT) if value else None


BULK_TABLES = ("tickets", "messages", "ticket_events", "ticket_tags", "search_log")
CHUNK = 50_000  # tickets generated and inserted at a time, so memory stays flat at any size


def _set_aside_for_bulk_load(cur) -> list[str]:
    """Drop the triggers (the full-text ones re-index a ticket's whole document on each
    message) and the secondary indexes of the tables about to be filled; returns the SQL that
    recreates them. Building an index once over sorted data is far cheaper than growing it
    row by row."""
    names = ", ".join(f"'{t}'" for t in BULK_TABLES)
    rows = cur.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND ("  # noqa: S608
        f"(type = 'trigger') OR (type = 'index' AND tbl_name IN ({names})))"  # fixed names
    ).fetchall()
    for kind, name, _sql in rows:
        cur.execute(f'DROP {kind.upper()} "{name}"')
    # Indexes first: the triggers' statements are then planned with them in place.
    return [sql for kind, _name, sql in rows if kind == "index"] + [
        sql for kind, _name, sql in rows if kind == "trigger"]


def _fill_report_days(cur) -> None:
    """The counts the triggers keep (migrations scale4_0002, scale5_0001..0003), for
    rows loaded without them."""
    cur.execute("DELETE FROM report_days")
    cur.execute("DELETE FROM report_agent_days")
    cur.execute(
        "INSERT INTO report_days (day, created, escalated, solved, reopened) "
        "SELECT day, sum(c), sum(e), sum(s), sum(r) FROM ("
        "SELECT date(created_at) AS day, 1 AS c, id IN (SELECT ticket_id FROM ticket_events"
        " WHERE kind = 'escalation') AS e, 0 AS s, 0 AS r FROM tickets UNION ALL "
        "SELECT date(created_at), 0, 0, new_value = 'solved', old_value = 'solved'"
        " AND new_value = 'open' FROM ticket_events WHERE kind = 'status' AND"
        " (new_value = 'solved' OR (new_value = 'open' AND old_value = 'solved'))"
        ") GROUP BY day")
    cur.execute(
        "INSERT INTO report_agent_days (day, actor_id, replies) "
        "SELECT date(created_at), actor_id, count(*) FROM ticket_events"
        " WHERE kind = 'reply' AND actor_id IS NOT NULL GROUP BY date(created_at), actor_id")
    cur.execute("DELETE FROM report_search_days")  # migration scale5_0001
    cur.execute(
        "INSERT INTO report_search_days (day, normalized, searches, no_results) "
        "SELECT date(created_at), normalized, count(*), sum(result_count = 0) FROM search_log"
        " GROUP BY date(created_at), normalized")
    cur.execute("DELETE FROM queue_counts")  # migration scale5_0002
    cur.execute(
        "INSERT INTO queue_counts (status, assignee_id, stale, tickets) "
        "SELECT status, coalesce(assignee_id, 0), stale_at IS NOT NULL, count(*)"
        " FROM tickets WHERE status IN ('new', 'open', 'pending', 'on_hold') GROUP BY 1, 2, 3")
    due = ("CASE WHEN first_response_at IS NULL AND first_response_due_at IS NOT NULL AND"
           " (resolution_due_at IS NULL OR first_response_due_at < resolution_due_at)"
           " THEN first_response_due_at ELSE resolution_due_at END")
    cur.execute("DELETE FROM queue_due_days")  # migration scale5_0003
    cur.execute(
        f"INSERT INTO queue_due_days (day, tickets) SELECT date({due}), count(*)"  # noqa: S608
        f" FROM tickets WHERE status IN ('new', 'open', 'on_hold') AND ({due}) IS NOT NULL"
        " GROUP BY 1")


def seed(app, n_tickets: int, rng: random.Random) -> dict:
    """Bulk load: one transaction with no journal and no fsync (a failed seed is simply
    re-run), triggers and secondary indexes set aside and rebuilt at the end, the ticket
    full-text index filled by FTS5's 'rebuild'. The rows and their distributions are the same
    as when each row went through the triggers."""
    now = datetime.now(UTC).replace(tzinfo=None)
    started = time.perf_counter()
    db.engine.dispose()  # the only connection, so the journal mode can be switched
    raw = db.engine.raw_connection()
    cur = raw.cursor()
    cur.execute("PRAGMA journal_mode=OFF")
    cur.execute("PRAGMA synchronous=OFF")
    cur.execute("PRAGMA cache_size=-262144")  # 256 MB
    cur.execute("PRAGMA foreign_keys=OFF")  # ids are generated consistent; checked below
    cur.execute("BEGIN")
    restore = _set_aside_for_bulk_load(cur)
    pw = generate_password_hash(PASSWORD, method="scrypt")
    users = [("agent0@example.com", "Bench Agent 0", "agent")]
    users += [(f"agent{i}@example.com", f"Agent {i}", "agent") for i in range(1, 25)]
    n_customers = max(50, n_tickets // 20)
    users += [(f"c{i}@example.com", f"Customer {i}", "customer") for i in range(n_customers)]
    cur.executemany(
        "INSERT INTO users (email, name, password_hash, role, active, session_token, created_at,"
        " email_confirmed_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
        [(e, n, pw, r, f"tok{i}", ts(now), ts(now)) for i, (e, n, r) in enumerate(users)],
    )
    agent_ids = list(range(1, 26))
    customer_ids = list(range(26, 26 + n_customers))
    cur.executemany("INSERT INTO groups (name, auto_assign) VALUES (?, 0)",
                    [(f"Group {i}",) for i in range(5)])
    cur.executemany("INSERT INTO group_members (group_id, user_id) VALUES (?, ?)",
                    [(1 + a % 5, a) for a in agent_ids])
    cur.executemany("INSERT INTO ticket_categories (name, position, active, group_id)"
                    " VALUES (?, ?, 1, ?)", [(f"Category {i}", i, 1 + i % 5) for i in range(8)])
    cur.executemany("INSERT INTO tags (name) VALUES (?)", [(w,) for w in WORDS[:10]])

    tickets, messages, events, tag_rows = [], [], [], []
    message_id = event_id = n_messages = n_events = n_open = 0

    def flush() -> None:
        cur.executemany(
            "INSERT INTO tickets (id, subject, status, priority, type, channel, category_id,"
            " group_id, requester_id, requester_name, requester_email, assignee_id, created_at,"
            " updated_at, last_activity_at, first_response_at, solved_at, closed_at,"
            " reopen_count, public_reply_count, first_response_due_at, resolution_due_at,"
            " sla_paused_at, first_response_breached, resolution_breached, escalated_at,"
            " csat_rating, csat_comment, csat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tickets)
        cur.executemany(
            "INSERT INTO messages (id, ticket_id, author_id, author_name, from_agent, internal,"
            " body, channel, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", messages)
        cur.executemany(
            "INSERT INTO ticket_events (id, ticket_id, actor_id, kind, old_value, new_value,"
            " public, created_at, ticket_priority, ticket_group_id, ticket_category_id,"
            " ticket_assignee_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", events)
        cur.executemany("INSERT INTO ticket_tags (ticket_id, tag_id) VALUES (?, ?)", tag_rows)
        for rows in (tickets, messages, events, tag_rows):
            rows.clear()

    for tid in range(1, n_tickets + 1):
        created = now - timedelta(minutes=rng.randint(5, 365 * 24 * 60))
        is_open = rng.random() < 0.12 or created > now - timedelta(days=3)
        status = rng.choice(STATUSES_OPEN if is_open else STATUSES_CLOSED)
        priority = rng.choice(PRIORITIES)
        first_target, res_target = TARGETS[priority]
        first_due = created + timedelta(minutes=first_target)
        res_due = created + timedelta(minutes=res_target)
        requester = rng.choice(customer_ids)
        answered = status != "new"
        assignee = rng.choice(agent_ids) if (answered or rng.random() < 0.3) else None
        first_response = created + timedelta(minutes=rng.randint(5, first_target * 2)) \
            if answered else None
        if first_response and first_response > now:
            first_response = now
        solved = None
        if status in ("solved", "closed"):
            solved = (first_response or created) + timedelta(minutes=rng.randint(10, 6000))
            solved = min(solved, now)
        closed = solved + timedelta(days=4) if status == "closed" else None
        if closed and closed > now:
            status, closed = "solved", None
        last = solved or first_response or created
        fr_breach = bool(first_response and first_response > first_due) or (
            not first_response and first_due < now)
        res_breach = bool(solved and solved > res_due) or (
            not solved and status != "pending" and res_due < now)
        escalated = ts(min(first_due, res_due)) if is_open and (fr_breach or res_breach) else None
        rating = rng.choice([None, None, "good", "good", "bad"]) if solved else None
        subject = f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} problem {tid}"
        category, group = 1 + tid % 8, 1 + tid % 5

        def event(*row, filters=(priority, group, category, assignee)) -> None:
            events.append((*row, *filters))  # the ticket's report filters (migration scale3_0002)

        tickets.append((
            tid, subject, status, priority, rng.choice(TYPES), "web", category, group,
            requester, f"Customer {requester - 26}", f"c{requester - 26}@example.com", assignee,
            ts(created), ts(last), ts(last), ts(first_response), ts(solved), ts(closed),
            0, 1 if answered else 0, ts(first_due), ts(res_due),
            ts(last) if status == "pending" else None, fr_breach, res_breach, escalated,
            rating, "Thanks!" if rating == "good" else "", ts(solved + timedelta(hours=1))
            if rating else None,
        ))
        message_id += 1
        messages.append((message_id, tid, requester, f"Customer {requester - 26}", 0, 0,
                         f"Hello, my {rng.choice(WORDS)} has a {rng.choice(WORDS)} issue. "
                         "Steps to reproduce follow in detail. " * 3, "web", ts(created)))
        event_id += 1
        event(event_id, tid, requester, "created", None, None, 1, ts(created))
        if first_response:
            message_id += 1
            messages.append((message_id, tid, assignee, f"Agent {assignee}", 1, 0,
                             "Thanks for reporting this; here is what to do next. " * 3, "web",
                             ts(first_response)))
            event_id += 1
            event(event_id, tid, assignee, "reply", None, None, 1, ts(first_response))
            event_id += 1
            event(event_id, tid, assignee, "status", "new", "open", 1,
                           ts(first_response))
        if rng.random() < 0.3:
            message_id += 1
            messages.append((message_id, tid, assignee, f"Agent {assignee}", 1, 1,
                             "Internal: checked the logs.", "web", ts(last)))
            event_id += 1
            event(event_id, tid, assignee, "note", None, None, 0, ts(last))
        if solved:
            event_id += 1
            event(event_id, tid, assignee, "status", "open", "solved", 1, ts(solved))
        if closed:
            event_id += 1
            event(event_id, tid, None, "status", "solved", "closed", 1, ts(closed))
        if escalated:
            event_id += 1
            event(event_id, tid, None, "escalation", None, "breached", 0, escalated)
        if rng.random() < 0.2:
            tag_rows.append((tid, 1 + tid % 10))
        n_open += status not in ("solved", "closed")
        if tid % CHUNK == 0 or tid == n_tickets:
            n_messages, n_events = message_id, event_id
            flush()
    searches = [(w, w, rng.choice([0, 0, 3, 8]), "search",
                 ts(now - timedelta(minutes=rng.randint(1, 60 * 24 * 60))))
                for w in (rng.choice(WORDS) for _ in range(n_tickets // 2))]
    cur.executemany("INSERT INTO search_log (query, normalized, result_count, source, created_at)"
                    " VALUES (?, ?, ?, ?, ?)", searches)
    loaded = time.perf_counter()
    for sql in restore:
        cur.execute(sql)
    cur.execute("INSERT INTO fts_tickets(fts_tickets) VALUES ('rebuild')")
    _fill_report_days(cur)
    problems = cur.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise SystemExit(f"seeded rows break foreign keys: {problems[:5]}")
    raw.commit()
    cur.execute("ANALYZE")
    cur.execute("PRAGMA journal_mode=WAL")
    raw.close()
    print(f"rows inserted in {loaded - started:.1f} s, indexes and full-text index rebuilt in "
          f"{time.perf_counter() - loaded:.1f} s")
    return {"seconds": time.perf_counter() - started, "messages": n_messages,
            "events": n_events, "open": n_open}


CPU_MS: dict[str, list[float]] = {}


def timed(client, url: str, kind: str = "warmup") -> float:
    """Wall-clock ms of one request; its CPU ms are kept too, since on a busy machine the
    wall clock mostly measures waiting for a core."""
    cpu_started = time.process_time()
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    CPU_MS.setdefault(kind, []).append((time.process_time() - cpu_started) * 1000)
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    return elapsed


def p(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20, help="requests per URL")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--instance", help="keep the seeded database in this folder and reuse it")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    total_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agent-bench-") as scratch:
        folder = args.instance or scratch
        reuse = args.instance and (Path(folder) / "portal.sqlite3").exists()
        app = create_app({
            "INSTANCE_PATH": folder, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False, "SEMANTIC_SEARCH": False, "TESTING": False,
        })
        with app.app_context():
            from portal.migrate import upgrade

            upgrade(app)
            info = None if reuse else seed(app, args.tickets, rng)
        if info:
            print(f"seeded {args.tickets} tickets, {info['messages']} messages, {info['events']} "
                  f"events ({info['open']} unsolved) in {info['seconds']:.1f} s")

        # As gunicorn.conf.py does before forking the workers: a served request never
        # compiles a template or a report statement, so neither do the measured ones
        # ("first" is the first request with the portal's own caches cold).
        compiling = time.perf_counter()
        for name in app.jinja_env.list_templates(extensions=["html"]):
            app.jinja_env.get_template(name)
        from portal import agent

        agent.warm_up(app)  # so does it with the reports', the queue's and the sweep's statements
        # ...and freezes what is loaded (gunicorn.conf.py _freeze_loaded_objects): without
        # it a full collection walks every object of the process, ~90 ms landing in
        # whichever request sets it off (often the first report, making its figure depend
        # on what ran before it).
        gc.collect()
        gc.freeze()
        print(f"templates and agent statements compiled in "
              f"{(time.perf_counter() - compiling) * 1000:.0f} ms")
        client = app.test_client()
        response = client.post("/auth/login", data={"email": "agent0@example.com",
                                                    "password": PASSWORD})
        assert response.status_code in (302, 303), response.status_code
        queue_urls = [
            "/agent/?view=open", "/agent/?view=unassigned", "/agent/?view=mine",
            "/agent/?view=pending", "/agent/?view=due", "/agent/?view=stale",
            "/agent/?view=solved",
            "/agent/?view=open&sort=priority", "/agent/?view=open&sort=updated",
            "/agent/?view=open&priority=urgent&group=2", "/agent/?view=all&tag=printer",
            "/agent/?view=open&page=20", "/agent/?view=all&q=TKT-" + str(1000 + args.tickets // 2),
            # Free text: a common word, two words anywhere in one ticket, part of an address.
            "/agent/?view=open&q=printer", "/agent/?view=all&q=invoice+timeout",
            "/agent/?view=all&q=c4242%40example",
        ]
        ticket_ids = [rng.randint(1, args.tickets) for _ in range(args.rounds * 3)]
        report_urls = ["/agent/reports", "/agent/reports?priority=urgent",
                       f"/agent/reports?assignee={rng.randint(1, 25)}"]
        first: dict[str, float] = {}
        for url in queue_urls + report_urls + [f"/agent/tickets/{ticket_ids[0]}"]:
            first[url] = timed(client, url)  # warm caches and the once-a-minute sweep
        results: dict[str, list[float]] = {"queue": [], "ticket": [], "reports": []}
        per_url: dict[str, list[float]] = {}
        per_url_cpu: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for url in queue_urls:
                ms = timed(client, url, "queue")
                results["queue"].append(ms)
                per_url.setdefault(url, []).append(ms)
                per_url_cpu.setdefault(url, []).append(CPU_MS["queue"][-1])
        for ticket_id in ticket_ids:
            results["ticket"].append(timed(client, f"/agent/tickets/{ticket_id}", "ticket"))
        for _ in range(args.rounds):
            for url in report_urls:
                ms = timed(client, url, "reports")
                results["reports"].append(ms)
                per_url.setdefault(url, []).append(ms)
                per_url_cpu.setdefault(url, []).append(CPU_MS["reports"][-1])
        for url, values in per_url.items():
            print(f"  {url:<48} p50 {statistics.median(values):7.1f} ms  "
                  f"p95 {p(values, 95):7.1f} ms   first {first[url]:7.1f} ms   "
                  f"(CPU p50 {statistics.median(per_url_cpu[url]):5.1f} ms)")
        # The reports page is cached while no new data arrives: its first request is the
        # full computation.
        cold = [first[url] for url in report_urls]
        cold_cpu = CPU_MS["warmup"][len(queue_urls):len(queue_urls) + len(report_urls)]
        print(f"reports first (uncached) requests: {', '.join(f'{v:.1f}' for v in cold)} ms "
              f"(CPU {', '.join(f'{v:.1f}' for v in cold_cpu)} ms)")
        ticket_url = f"/agent/tickets/{ticket_ids[0]}"
        print(f"ticket page first request: {first[ticket_url]:.1f} ms; slowest first request: "
              f"{max(first.values()):.1f} ms ({max(first, key=first.get)})")
        searches = [url for url in queue_urls if "q=" in url and "q=TKT-" not in url]
        results["search"] = [ms for url in searches for ms in per_url[url]]
        CPU_MS["search"] = [cpu for i, cpu in enumerate(CPU_MS["queue"])
                            if queue_urls[i % len(queue_urls)] in searches]
        for name, values in results.items():
            cpu = CPU_MS[name]
            print(f"{name:<8} n={len(values):<4} p50 {statistics.median(values):7.1f} ms  "
                  f"p95 {p(values, 95):7.1f} ms   (CPU p50 {statistics.median(cpu):.1f} ms, "
                  f"p95 {p(cpu, 95):.1f} ms)")
        app.extensions["portal_db_engine"].dispose()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"total {time.perf_counter() - total_started:.1f} s, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}, peak RSS {peak_rss_mb:.0f} MB")
    print(f"RESULT tickets={args.tickets} queue_p95_ms={p(results['queue'], 95):.1f} "
          f"ticket_p95_ms={p(results['ticket'], 95):.1f} "
          f"reports_p95_ms={p(results['reports'], 95):.1f} "
          f"reports_first_max_ms={max(cold):.1f} first_max_ms={max(first.values()):.1f} "
          f"search_p95_ms={p(results['search'], 95):.1f} peak_rss_mb={peak_rss_mb:.0f}")


if __name__ == "__main__":
    main()
