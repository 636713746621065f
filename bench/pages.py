"""Pages under real traffic: the portal served by gunicorn, measured against the stack's floor.

    python bench/pages.py                       # demo data, 10 s per page (~4 minutes)
    python bench/pages.py --seconds 20 --pages home,article,instant
    python bench/pages.py --database postgres   # the portal on PostgreSQL (see below)

Seeds the demo content into a fresh instance, then serves it with gunicorn (2 sync workers,
the default configuration: the meaning-based search layer is on) next to a *floor*: a bare
Flask page of 30 rows read through SQLAlchemy from SQLite and rendered by Jinja, also under
gunicorn with 2 sync workers. 8 client processes drive one page at a time for --seconds.
Search requests use a different query on every request (words of the demo articles, combined
at random), so result caches do not flatter them. The floor is measured first and last; the
ratio of a page is its req/s over the mean of the two floor runs.

Per page: req/s, p50/p95 latency, server CPU per request (user+system time of the workers,
read from /proc, over the requests served) and the ratio to the floor; with `--database
postgres` also the database server's CPU per request (its backends for the bench database).
Then the workers' resident memory after warm-up (RSS; PSS, which splits pages shared between
workers; and private, the pages no other process holds: what one more worker costs), and the
query-model service's (the model's one process per host; its CPU counts in the pages' CPU).
The first requests after start (cold: the model may still be loading) are timed too.
The last line:
RESULT min_page_ratio=… instant_ratio=… search_ratio=… suggest_ratio=… rss_mb_per_worker=…
(min_page_ratio: the lowest ratio of the pages that do not search; rss: the largest worker).
On a machine shared with other work the req/s ratios mostly measure the neighbours; the
`cpu_*` keys give the same ratios from server CPU per request (floor CPU / page CPU), which
is what bounds req/s when the server has the cores to itself.

`--database postgres` seeds the same demo into the PostgreSQL database of `--database-url`
(default: $PORTAL_TEST_POSTGRES_URL), whose public schema it DROPS and rebuilds, and serves the
portal from it (the floor stays on SQLite, so ratios compare across the two runs); the RESULT
line names the database.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import http.client
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLIENTS = 8
WORKERS = 2
SEARCH_PAGES = ("instant", "search", "suggest")
COMMON = ["how", "do", "I", "my", "the", "can", "not", "why", "is", "after", "when", "a"]


# --- the floor: what the stack itself costs ---------------------------------------------
def floor_app():
    """gunicorn 'pages:floor_app()': 30 rows from SQLite through SQLAlchemy, Jinja page."""
    from flask import Flask, render_template_string
    from sqlalchemy import Column, Integer, String, create_engine, select
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import DeclarativeBase, Session

    class Base(DeclarativeBase):
        pass

    class Row(Base):
        __tablename__ = "rows"
        id = Column(Integer, primary_key=True)
        title = Column(String(200))
        status = Column(String(20))

    engine = create_engine(f"sqlite:///{os.environ['BENCH_FLOOR_DB']}")
    with contextlib.suppress(OperationalError):  # the other worker created it meanwhile
        Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        if session.scalar(select(Row.id).limit(1)) is None:
            session.add_all(Row(title=f"Row number {i} with a title", status="open")
                            for i in range(30))
    page = """<!doctype html><html lang="en"><head><title>Floor</title></head><body>
<main><h1>Rows</h1><table>{% for row in rows %}<tr><td>{{ row.id }}</td>
<td><a href="/rows/{{ row.id }}">{{ row.title }}</a></td><td>{{ row.status }}</td></tr>
{% endfor %}</table></main></body></html>"""
    app = Flask(__name__)

    @app.route("/")
    def index():
        with Session(engine) as session:
            rows = session.scalars(select(Row).order_by(Row.id).limit(30)).all()
            return render_template_string(page, rows=rows)

    return app


# --- servers ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(target: str, port: int, env: dict, chdir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(  # noqa: S603 (our own venv's gunicorn, fixed arguments)
        [str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", target],
        env=env, cwd=chdir, start_new_session=True)  # gunicorn.conf.py is read from cwd
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"gunicorn {target} did not start")


MODEL_SERVICE = "portal.search.model_service"


def _command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _is_model_service(pid: int, owner: int | None = None) -> bool:
    line = _command_line(pid)
    return any(MODEL_SERVICE in part for part in line) and "--owner" in line and (
        owner is None or line[line.index("--owner") + 1] == str(owner))


def worker_pids(master: subprocess.Popen) -> list[int]:
    """The web workers: the master's children but its query-model service."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master.pid and not _is_model_service(int(entry.name)):
                found.append(int(entry.name))
    return sorted(found)


def model_service_pids(master: subprocess.Popen) -> list[int]:
    """The query-model service serving this master (whoever started it), if it has one."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_model_service(int(entry.name), master.pid):
            found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class DatabaseCpu:
    """CPU of the PostgreSQL server's backends for the bench database (on this machine),
    read from /proc: what each page costs the server, which the workers' CPU leaves out."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url)
        self.ticks: dict[int, int] = {}

    def _backends(self) -> dict[int, int]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            pids = conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()")).scalars().all()
        ticks = {}
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone, or the server runs elsewhere
                continue
            ticks[pid] = int(fields[11]) + int(fields[12])
        return ticks

    def start(self) -> None:
        self.ticks = self._backends()

    def seconds(self) -> float:
        """Since start(): backends opened meanwhile count whole; closed ones are lost."""
        now = self._backends()
        return sum(t - self.ticks.get(pid, 0) for pid, t in now.items()) / os.sysconf(
            "SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float, float]:
    """(RSS, PSS, private) in MB. Private (USS) is what one more worker costs the host: RSS
    also counts the pages it shares with the master and the other workers (code, the model's
    mapped weights, the index and vector files), PSS a share of them."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        values[key] = int(value.split()[0]) / 1024
    return values["Rss"], values["Pss"], values["Private_Clean"] + values["Private_Dirty"]


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def empty_schema(url: str) -> None:
    """DROP and recreate the public schema of the PostgreSQL database at `url`."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def database_name(url: str) -> str:
    """'sqlite', or the PostgreSQL database's name (never its credentials)."""
    if url == "sqlite":
        return url
    from sqlalchemy.engine import make_url

    return f"postgresql/{make_url(url).database}"


# --- HTTP ---------------------------------------------------------------------------------
def request(port: int, path: str, headers: dict | None = None, method: str = "GET",
            body: str | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, response.headers, data
    finally:
        conn.close()


def sign_in(port: int, email: str, password: str) -> str:
    status, headers, body = request(port, "/auth/login")
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', body)
    token = token or re.search(rb'name="csrf_token" value="([^"]+)"', body)
    form = urlencode({"csrf_token": html.unescape(token.group(1).decode()), "email": email,
                      "password": password, "next": ""})
    status, headers, _ = request(port, "/auth/login", {
        "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}, "POST", form)
    if status not in (302, 303):
        raise SystemExit(f"sign-in as {email} answered {status}")
    return "; ".join(c.split(";", 1)[0] for c in headers.get_all("Set-Cookie"))


class Pages:
    """What each page name requests; search pages vary their text on every call."""

    def __init__(self, urls: dict, cookies: dict, words: list[str]) -> None:
        self.urls, self.cookies, self.words = urls, cookies, words

    def make(self, name: str, rng: random.Random) -> tuple[str, dict]:
        w = self.words
        if name == "instant":
            first, second = rng.choice(w), rng.choice(w)
            prefix = second[: rng.randint(2, len(second))]
            q = urlencode({"q": f"{first} {prefix}"})
            return f"/kb/search/instant?{q}", {"HX-Request": "true",
                                               "HX-Target": "instant-results"}
        if name == "search":
            q = urlencode({"q": " ".join(rng.sample(w, rng.randint(1, 3)))})
            return f"/kb/search?{q}", {}
        if name == "suggest":
            subject = " ".join(rng.sample(w, 3))
            description = " ".join(rng.choice(w + COMMON) for _ in range(rng.randint(6, 14)))
            q = urlencode({"subject": subject, "description": description, "form_key": ""})
            return f"/tickets/new/suggestions?{q}", {
                "HX-Request": "true", "HX-Target": "suggestions",
                "Cookie": self.cookies["customer"]}
        role, url = self.urls[name]
        return url, {"Cookie": self.cookies[role]} if role else {}


def drive(args) -> tuple[list[float], int]:
    port, pages, name, seconds, seed = args
    rng = random.Random(seed)
    latencies, errors = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        path, headers = pages.make(name, rng)
        started = time.perf_counter()
        status, _h, _b = request(port, path, headers)
        latencies.append((time.perf_counter() - started) * 1000)
        errors += status != 200
    return latencies, errors


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def measure(pool, port: int, pids: list[int], pages: Pages, name: str, seconds: float,
            seed: int, database: DatabaseCpu | None = None) -> dict:
    if database is not None:
        database.start()
    cpu_before = cpu_seconds(pids)
    started = time.perf_counter()
    results = pool.map(drive, [(port, pages, name, seconds, seed * 100 + i)
                               for i in range(CLIENTS)])
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu_before
    latencies = [ms for values, _e in results for ms in values]
    errors = sum(e for _v, e in results)
    db_ms = database.seconds() * 1000 / len(latencies) if database is not None else None
    return {"rps": len(latencies) / elapsed, "p50": statistics.median(latencies),
            "p95": pct(latencies, 95), "cpu_ms": cpu * 1000 / len(latencies),
            "db_cpu_ms": db_ms, "n": len(latencies), "errors": errors}


# --- the run ------------------------------------------------------------------------------
def prepare(instance: Path, env: dict) -> tuple[dict, dict, list[str]]:
    """Seed the demo; return (accounts, {page: (role, url)}, vocabulary)."""
    flask = [str(BIN / "flask"), "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], env=env, cwd=ROOT, check=True,  # noqa: S603
                   capture_output=True)
    subprocess.run([*flask, "demo", "seed"], env=env, cwd=ROOT, check=True,  # noqa: S603
                   capture_output=True)
    accounts = json.loads((instance / "demo-accounts.json").read_text())
    from sqlalchemy import create_engine, text

    engine = create_engine(env.get("PORTAL_DATABASE_URL")
                           or f"sqlite:///{instance / 'portal.sqlite3'}")
    with engine.connect() as db:
        def row(sql, **params):
            return db.execute(text(sql), params).first()

        category = row("SELECT id, slug FROM kb_categories ORDER BY position, id")
        section = row("SELECT id, slug FROM kb_sections ORDER BY position, id")
        article = row("SELECT id, slug FROM articles WHERE status='published' AND "
                      "visibility='public' ORDER BY view_count DESC, id")
        customer = row("SELECT id FROM users WHERE email=:email",
                       email=accounts["customer"][0])[0]
        ticket = row("SELECT id FROM tickets WHERE requester_id=:customer ORDER BY id",
                     customer=customer)
        titles = [r[0] for r in db.execute(
            text("SELECT title FROM articles WHERE status='published'"))]
    engine.dispose()
    words = sorted({w.lower() for t in titles for w in re.findall(r"[A-Za-z]{4,}", t)})
    urls = {
        "home": (None, "/"),
        "kb_index": (None, "/kb/"),
        "category": (None, f"/kb/categories/{category[0]}-{category[1]}"),
        "section": (None, f"/kb/sections/{section[0]}-{section[1]}"),
        "article": (None, f"/kb/articles/{article[0]}-{article[1]}"),
        "my_requests": ("customer", "/tickets/"),
        "ticket": ("customer", f"/tickets/TKT-{ticket[0] + 1000}"),
        "agent_queue": ("agent", "/agent/"),
        "agent_ticket": ("agent", f"/agent/tickets/{ticket[0]}"),
        "reports": ("agent", "/agent/reports"),
    }
    return accounts, urls, words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per page")
    parser.add_argument("--pages", help="comma-separated subset (default: all)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default=os.environ.get("PORTAL_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    database = {}
    if args.database == "postgres":
        if not args.database_url:
            parser.error("--database postgres needs --database-url (or PORTAL_TEST_POSTGRES_URL)")
        empty_schema(args.database_url)
        database = {"PORTAL_DATABASE_URL": args.database_url}
    with tempfile.TemporaryDirectory(prefix="pages-bench-") as scratch:
        scratch = Path(scratch)
        instance = scratch / "instance"
        env = {**os.environ, "PORTAL_INSTANCE_PATH": str(instance),
               "PORTAL_SECRET_KEY": "bench", "PORTAL_RATELIMIT_ENABLED": "false",
               "PORTAL_LOGIN_RATE_LIMIT": "1000 per minute",
               "BENCH_FLOOR_DB": str(scratch / "floor.sqlite3"), "PYTHONDONTWRITEBYTECODE": "1",
               **database}
        env.pop("PORTAL_SEMANTIC_SEARCH", None)
        accounts, urls, words = prepare(instance, env)
        names = list(urls) + list(SEARCH_PAGES)
        if args.pages:
            names = [n for n in args.pages.split(",") if n in names]

        floor_port, port = free_port(), free_port()
        floor = start_gunicorn("pages:floor_app()", floor_port, env, ROOT / "bench")
        started = time.perf_counter()
        portal = start_gunicorn("app:app", port, env, ROOT)
        cold = {}
        try:
            for name in ("article", "search"):  # the first requests after start
                t0 = time.perf_counter()
                path = urls["article"][1] if name == "article" else "/kb/search?q=printer"
                status, _h, _b = request(port, path)
                cold[name] = (time.perf_counter() - t0) * 1000
            print(f"cold start: served {time.perf_counter() - started:.2f} s after launch; "
                  f"first article {cold['article']:.0f} ms, first search {cold['search']:.0f} ms")
            cookies = {role: sign_in(port, *accounts[role]) for role in ("customer", "agent")}
            pages = Pages({**urls, "floor": (None, "/")}, cookies, words)
            pids = worker_pids(portal)
            service_pids = model_service_pids(portal)  # its CPU is the searches' too
            floor_pids = worker_pids(floor)
            rng = random.Random(args.seed)
            for name in names:  # warm-up: every worker sees every page (model loaded, caches)
                for _ in range(6):
                    path, headers = pages.make(name, rng)
                    status, _h, _b = request(port, path, headers)
                    if status != 200:
                        raise SystemExit(f"{name} {path} answered {status}")
            time.sleep(3.0)  # background model loads finish before memory is read
            memory = [memory_mb(pid) for pid in pids]
            service_memory = [memory_mb(pid) for pid in service_pids]
            results = {}
            with multiprocessing.Pool(CLIENTS) as pool:
                request(floor_port, "/")
                floor_runs = [measure(pool, floor_port, floor_pids, pages, "floor",
                                      args.seconds, args.seed)]
                server = DatabaseCpu(args.database_url) if database else None
                for name in names:
                    results[name] = measure(pool, port, pids + service_pids, pages, name,
                                            args.seconds, args.seed, server)
                floor_runs.append(measure(pool, floor_port, floor_pids, pages, "floor",
                                          args.seconds, args.seed))
            memory_after = [memory_mb(pid) for pid in pids]
            service_memory_after = [memory_mb(pid) for pid in service_pids]
        finally:
            stop(portal)
            stop(floor)
    floor_rps = statistics.mean(r["rps"] for r in floor_runs)
    floor_cpu = statistics.mean(r["cpu_ms"] for r in floor_runs)
    print(f"load: {CLIENTS} client processes, gunicorn {WORKERS} sync workers per server, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'page':<14}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms':>8}{'ratio':>7}"
          f"{'CPU ratio':>10}  errors" + ("  DB CPU ms" if database else ""))
    for label, r in [("floor (first)", floor_runs[0]), ("floor (last)", floor_runs[1]),
                     *results.items()]:
        db_cpu = f"{r['db_cpu_ms']:11.2f}" if r.get("db_cpu_ms") is not None else ""
        print(f"{label:<14}{r['rps']:8.0f}{r['p50']:9.1f}{r['p95']:9.1f}{r['cpu_ms']:8.1f}"
              f"{r['rps'] / floor_rps:7.2f}{floor_cpu / r['cpu_ms']:10.2f}  "
              f"{r['errors']}/{r['n']}{db_cpu}")
    for when, values in (("after warm-up", memory), ("at the end", memory_after)):
        print(f"workers' memory {when}: " + ", ".join(
            f"RSS {rss:.0f} MB / PSS {pss:.0f} MB / private {uss:.0f} MB"
            for rss, pss, uss in values))
    for when, values in (("after warm-up", service_memory), ("at the end", service_memory_after)):
        print(f"query-model service's memory {when}: " + (", ".join(
            f"RSS {rss:.0f} MB / PSS {pss:.0f} MB / private {uss:.0f} MB"
            for rss, pss, uss in values) or "no service (the model is in the workers)"))
    plain = [r["rps"] / floor_rps for n, r in results.items() if n not in SEARCH_PAGES]

    plain_cpu = [floor_cpu / r["cpu_ms"] for n, r in results.items() if n not in SEARCH_PAGES]

    def ratio(name: str) -> str:
        return f"{results[name]['rps'] / floor_rps:.2f}" if name in results else "n/a"

    def cpu_ratio(name: str) -> str:
        return f"{floor_cpu / results[name]['cpu_ms']:.2f}" if name in results else "n/a"

    service_rss = (f"{sum(m[0] for m in service_memory_after):.0f}" if service_memory_after
                   else "n/a")
    print(f"RESULT database={args.database} ", end="")
    print(f"min_page_ratio={min(plain):.2f} " if plain else "min_page_ratio=n/a ", end="")
    print(f"instant_ratio={ratio('instant')} search_ratio={ratio('search')} "
          f"suggest_ratio={ratio('suggest')} "
          f"rss_mb_per_worker={max(m[0] for m in memory_after):.0f} "
          f"pss_mb_per_worker={max(m[1] for m in memory_after):.0f} "
          f"private_mb_per_worker={max(m[2] for m in memory_after):.0f} "
          f"model_service_rss_mb={service_rss} "
          f"cold_article_ms={cold['article']:.0f} cold_search_ms={cold['search']:.0f} ", end="")
    print(f"cpu_min_page_ratio={min(plain_cpu):.2f} " if plain_cpu else "", end="")
    print(f"cpu_instant_ratio={cpu_ratio('instant')} cpu_search_ratio={cpu_ratio('search')} "
          f"cpu_suggest_ratio={cpu_ratio('suggest')}")


if __name__ == "__main__":
    main()
