"""Benchmark KB search on a seeded corpus (a script, not a test).

    python bench/kb_search.py [--articles 20000] [--seed 7] [--backend whoosh|postgres]
    python bench/kb_search.py --articles 100000 --instance /tmp/kb100k   # issue 18's size
    python bench/kb_search.py --articles 100000 --instance /tmp/kb100k --meaning
    PORTAL_SEMANTIC_ANN_MIN_VECTORS=1000000000 python bench/kb_search.py --articles 100000 \
        --instance /tmp/kb100k --meaning     # the same with an exact scan of every vector

`--backend postgres` runs the same queries on PostgreSQL full-text search (portal/search/pg.py)
in the database of `--database-url` (default: $PORTAL_TEST_POSTGRES_URL), whose public schema
it DROPS and rebuilds; "bare" is then the ranking query alone (no Flask, no rendering).

Builds an instance (a temporary folder, or `--instance`, which a later run with the same
--articles, --seed and --backend measures again without rebuilding), generates N articles
and builds the index with `reindex_all` in a process of its own (its peak memory is the
build's; the index folder, Whoosh's temporary runs included, is sampled meanwhile). Then, in
a fresh process as a server worker would start, it times 200 fixed 1-3 word queries:
  * the full search page   GET /kb/search?q=...           (Flask app, highlighted snippets)
  * the instant partial    GET /kb/search/instant?q=...   (Flask app, htmx headers)
  * bare Whoosh            a shared searcher, the same MultifieldParser, search(limit=10)
Each measured query runs once, after a warm-up on *different* queries, so the result cache
does not flatter the numbers (a last pass repeats the page queries to show the cache).

Meaning-based ranking is off unless `--meaning`: embedding 100,000 articles with the real
model would take hours on two cores, so `--meaning` stores synthetic chunk vectors made of the
real model's embeddings of each article's title words and labels plus noise (once, in the
instance; see `_add_synthetic_vectors`) and encodes the queries with the real query model: the
timings and memory are those of the meaning layer, its rankings mean little (quality is
measured by bench/search_quality.py). It also times the nearest-vector step alone, as
configured and as an exact scan, and how many of the exact scan's nearest articles the
configured search finds (`recall_at_10`, `recall_at_50`: below 1 with k-means cells).

The last line is machine-readable:
RESULT backend=.. articles=<n> [meaning=synthetic-vectors vector_p95_ms=<x>
       exact_vector_p95_ms=<x> recall_at_10=<x> recall_at_50=<x>] build_s=<x>
       page_p95_ms=<x> instant_p95_ms=<x>
       overhead_ratio=<x> page_statements=<x> page_app_cpu_ms=<x> [page_db_cpu_ms=<x>]
       build_peak_rss_mb=<x> index_peak_mb=<x> index_mb=<x> worker_rss_mb=<x> worker_anon_mb=<x>
where overhead_ratio = search page p95 / bare Whoosh p95 over the same fields (what our
layer costs: visibility filter, exact totals, snippets, search log, rendering). Instant
results search only the short fields (title, labels, section); the bare figure for those
fields is printed too. Statements and CPU per search page request (this process's, and on
PostgreSQL the database server's for this app's connections) move less with a shared
machine's load than milliseconds do. worker_anon_mb is the measuring process's own memory
after the queries; worker_rss_mb adds the pages of mapped files (index, posting files,
vectors) it touched, which every process of the host shares.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOPICS = {
    "Account": ["password", "sign", "login", "email", "profile", "security", "verification",
                "two-step", "session", "account", "username", "recovery", "locked", "sso"],
    "Billing": ["invoice", "receipt", "payment", "card", "refund", "plan", "upgrade",
                "downgrade", "cancel", "subscription", "seat", "tax", "vat", "charge"],
    "Integrations": ["slack", "webhook", "api", "token", "calendar", "google", "microsoft",
                     "zapier", "import", "export", "csv", "sync", "github", "jira"],
    "Troubleshooting": ["slow", "error", "upload", "cache", "browser", "crash", "timeout",
                        "offline", "notification", "mobile", "app", "loading", "blank",
                        "failed"],
    "Projects": ["project", "task", "board", "deadline", "assign", "comment", "label",
                 "template", "archive", "permission", "guest", "member", "milestone", "file"],
    "Reports": ["report", "dashboard", "chart", "time", "tracking", "filter", "schedule",
                "summary", "export", "metrics", "workload", "budget", "forecast", "goal"],
}
VERBS = ["reset", "change", "set up", "fix", "connect", "remove", "add", "enable", "disable",
         "update", "download", "share", "move", "restore", "manage", "configure", "troubleshoot"]
FILLER = [
    "the", "a", "your", "you", "to", "and", "of", "in", "for", "on", "with", "this", "that",
    "when", "it", "is", "can", "settings", "page", "open", "click", "choose", "select", "menu",
    "button", "then", "after", "before", "if", "not", "from", "by", "at", "as", "be", "will",
    "new", "team", "workspace", "owner", "admin", "user", "people", "list", "option", "steps",
    "help",
]
QUERY_WARMUP = ["help", "settings", "workspace owner", "menu", "steps", "team admin",
                "button", "new user", "click open", "people list"]


def _synthetic_vocabulary(rng: random.Random, size: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ter", "ron", "vel", "sa", "dri", "pon", "el", "qua", "zen",
                 "bor", "fi", "ne", "tal", "gra", "mo", "ur", "is"]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def fixed_queries() -> list[str]:
    """200 realistic 1-3 word queries, the same every run (own seed)."""
    rng = random.Random(2024)
    words = [w for ws in TOPICS.values() for w in ws]
    queries = ["reset password", "invoice", "cancel subscription", "slack", "two-step",
               "api token", "upload failed", "refund", "change email", "webhook retries",
               "pasword", "invoce", "slak integration", "export csv", "pass*", "sso",
               '"reset password"', "card declined", "delete account", "time tracking"]
    while len(queries) < 200:
        n = rng.choice((1, 1, 2, 2, 2, 3))
        parts = rng.sample(words, n)
        if n >= 2 and rng.random() < 0.4:
            parts[0] = rng.choice(VERBS)
        queries.append(" ".join(parts))
    return queries


def generate_rows(n: int, seed: int, section_ids: dict[str, list[int]]):
    rng = random.Random(seed)
    vocabulary = _synthetic_vocabulary(rng, 6000)
    cumulative, total = [], 0.0
    for rank in range(len(vocabulary)):  # Zipf-like: a few common words, a long tail
        total += 1 / (rank + 1)
        cumulative.append(total)
    topics = list(TOPICS)
    for i in range(n):
        topic = topics[i % len(topics)]
        terms = TOPICS[topic]
        title = f"{rng.choice(VERBS).capitalize()} {' '.join(rng.sample(terms, 2))}"
        paragraphs = []
        for _ in range(rng.randint(2, 5)):
            words = []
            for _ in range(rng.randint(30, 70)):
                r = rng.random()
                if r < 0.45:
                    words.append(rng.choice(FILLER))
                elif r < 0.7:
                    words.append(rng.choice(terms))
                else:
                    words.append(rng.choices(vocabulary, cum_weights=cumulative)[0])
            paragraphs.append(" ".join(words).capitalize() + ".")
        body = f"## {title}\n\n" + "\n\n".join(paragraphs)
        status = "draft" if i % 50 == 0 else "published"
        visibility = "internal" if i % 40 == 0 else ("customers" if i % 9 == 0 else "public")
        yield {
            "section_id": rng.choice(section_ids[topic]), "title": f"{title} ({i})",
            "slug": f"article-{i}", "body": body, "labels": ", ".join(rng.sample(terms, 2)),
            "status": status, "visibility": visibility, "promoted": i % 500 == 0,
        }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(name: str, samples_ms: list[float]) -> str:
    return (f"{name:<22} p50 {percentile(samples_ms, 50):7.2f} ms   "
            f"p95 {percentile(samples_ms, 95):7.2f} ms   p99 {percentile(samples_ms, 99):7.2f} ms"
            f"   mean {statistics.fmean(samples_ms):7.2f} ms")


def _app(instance: Path, args, *, meaning: bool = False):
    from portal import create_app

    return create_app({
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": args.database_url if args.backend == "postgres"
        else f"sqlite:///{instance / 'portal.sqlite3'}",
        "SECRET_KEY": "bench", "SEMANTIC_SEARCH": meaning, "RATELIMIT_ENABLED": False,
        "DEVELOPMENT": True,
    })


def _add_synthetic_vectors(seed: int) -> int:
    """Synthetic chunk vectors for every published article (as many chunks as
    `chunk_article` makes of these bodies: the title alone, then one per 100 words).

    Embedding 100,000 articles would take hours, so each chunk's vector is built from the
    real model's embeddings of the article's title words and labels, one more topic word of
    its own, and noise: articles about the same words lie close together, as real vectors
    do, so the nearest neighbours of a real query have the structure an approximate search
    meets in practice (random vectors have none: every point is as far as any other). The
    cosines are not those of real articles; bench/search_quality.py measures ranking."""
    from sqlalchemy import func, insert, select

    from portal.extensions import db
    from portal.kb.models import Article, ArticleEmbedding, ArticleStatus
    from portal.search import semantic
    from portal.search.embeddings import DIMENSIONS, MODEL_ID

    if db.session.scalar(select(func.count(ArticleEmbedding.id))):
        return 0
    words = sorted({w for ws in TOPICS.values() for w in ws} | set(VERBS))
    embedded = dict(zip(words, semantic.encoder().encode(words), strict=True))
    rng = np.random.default_rng(seed)
    added = 0
    rows = db.session.execute(select(Article.id, Article.title, Article.labels, Article.body)
                              .where(Article.status == ArticleStatus.PUBLISHED)
                              .order_by(Article.id)).all()
    for start in range(0, len(rows), 2000):
        batch = []
        for article_id, title, labels, body in rows[start:start + 2000]:
            body_words = len(body.split("\n\n", 1)[-1].split())
            chunks = min(1 + -(-body_words // semantic.CHUNK_WORDS), semantic.MAX_CHUNKS)
            title = title.rsplit(" (", 1)[0].lower()
            verb = next(v for v in VERBS if title.startswith(v + " "))
            terms = title[len(verb) + 1:].split() + [t.strip() for t in labels.split(",")]
            base = embedded[verb] + sum(embedded[t] for t in terms if t in embedded)
            base /= np.linalg.norm(base)
            own = np.stack([embedded[w] for w in rng.choice(words, chunks)])
            noise = rng.standard_normal((chunks, DIMENSIONS)) / np.sqrt(DIMENSIONS)
            vectors = (2 * base + own + noise).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            batch += [{"article_id": article_id, "chunk": n, "heading": "",
                       "content_hash": "synthetic", "model": MODEL_ID,
                       "vector": vector.tobytes()} for n, vector in enumerate(vectors)]
        db.session.execute(insert(ArticleEmbedding), batch)
        added += len(batch)
    db.session.commit()
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backend", choices=("whoosh", "postgres"), default="whoosh")
    parser.add_argument("--database-url", default=os.environ.get("PORTAL_TEST_POSTGRES_URL"))
    parser.add_argument("--instance", type=Path,
                        help="keep the built instance here; a later run with the same "
                             "--articles, --seed and --backend measures it without rebuilding")
    parser.add_argument("--meaning", action="store_true",
                        help="measure with meaning-based ranking on: synthetic chunk vectors "
                             "(stored once in the instance), queries encoded by the real "
                             "query model")
    parser.add_argument("--phase", choices=("build", "vectors", "measure"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend == "postgres" and not args.database_url:
        parser.error("--backend postgres needs --database-url (or PORTAL_TEST_POSTGRES_URL)")
    import logging

    logging.disable(logging.WARNING)
    if args.phase == "build":
        _build(args)
    elif args.phase == "vectors":
        _vectors(args)
    elif args.phase == "measure":
        _measure(args)
    elif args.instance:
        args.instance.mkdir(parents=True, exist_ok=True)
        _run(args, args.instance)
    else:
        with tempfile.TemporaryDirectory(prefix="kb-bench-") as folder:
            _run(args, Path(folder))


def _run(args, instance: Path) -> None:
    """Build in one process, measure in a fresh one (as a server worker would start): each
    process's peak memory is its own, and the folder's size is sampled while it is built."""
    marker = instance / "bench.json"
    built = {"articles": args.articles, "seed": args.seed, "backend": args.backend}
    if marker.exists() and json.loads(marker.read_text()) == built:
        print(f"reusing the instance built in {instance}")
        build = json.loads((instance / "build.json").read_text())
    else:
        build = _child(args, instance, "build")
        marker.write_text(json.dumps(built))
        (instance / "build.json").write_text(json.dumps(build))
    if args.meaning:  # stored by a process of its own: the measuring one starts clean
        _child(args, instance, "vectors")
    measured = _child(args, instance, "measure")
    _report(args, build, measured)


def _child(args, instance: Path, phase: str) -> dict:
    """Run one phase in a new process; returns its figures (its last line, JSON)."""
    command = [sys.executable, __file__, "--phase", phase, "--instance", str(instance),
               "--articles", str(args.articles), "--seed", str(args.seed),
               "--backend", args.backend]
    if args.database_url:
        command += ["--database-url", args.database_url]
    if args.meaning:
        command.append("--meaning")
    index = instance / "index"
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:  # noqa: S603
        sizes: list[float] = []

        def sample() -> None:
            while child.poll() is None:
                sizes.append(_folder_mb(index))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        lines = [line.rstrip("\n") for line in child.stdout]
        sampler.join()
    if child.returncode:
        sys.exit(f"the {phase} phase failed ({child.returncode})")
    for line in lines[:-1]:
        print(line)
    figures = json.loads(lines[-1])
    figures["index_peak_mb"] = max([*sizes, _folder_mb(index)])
    return figures


def _folder_mb(folder: Path) -> float:
    """Size of the files under `folder` (the index and Whoosh's temporary files inside it)."""
    total = 0
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # a temporary file gone meanwhile
                total += os.stat(os.path.join(parent, name)).st_size
    return total / 2**20


def _memory() -> dict:
    """This process's resident memory (MB): all of it, its own (anonymous) pages, and pages
    of mapped files (shared with every other process mapping them), and the peak."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _sep, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def _build(args) -> None:
    from sqlalchemy import insert

    from portal.extensions import db
    from portal.kb.models import Article
    from portal.kb.services import create_category, create_section
    from portal.migrate import upgrade
    from portal.search import reindex_all

    if args.backend == "postgres":
        from sqlalchemy import create_engine, text

        engine = create_engine(args.database_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    app = _app(args.instance, args)
    with app.app_context():
        upgrade(app)
        sections: dict[str, list[int]] = {}
        for topic in TOPICS:
            category = create_category(topic)
            sections[topic] = [create_section(category, f"{topic} {n}").id for n in range(5)]
        db.session.commit()
        started = time.perf_counter()
        rows = generate_rows(args.articles, args.seed, sections)
        while batch := list(itertools.islice(rows, 2000)):
            db.session.execute(insert(Article), batch)
        db.session.commit()
        print(f"generated {args.articles} articles in {time.perf_counter() - started:.1f} s",
              flush=True)
        before = _memory()["VmRSS"]
        started = time.perf_counter()
        reindex_all()
        build_s = time.perf_counter() - started
        print(f"index build (reindex_all)  {build_s:.1f} s", flush=True)
    memory = _memory()
    print(json.dumps({"build_s": build_s, "build_peak_rss_mb": memory["VmHWM"],
                      "rss_before_build_mb": before}))


def _vectors(args) -> None:
    from portal.search import semantic

    app = _app(args.instance, args, meaning=True)
    with app.app_context():
        began = time.perf_counter()
        if added := _add_synthetic_vectors(args.seed):
            print(f"stored {added} synthetic chunk vectors in "
                  f"{time.perf_counter() - began:.1f} s", flush=True)
        semantic.write_matrix_file()
    print(json.dumps({}))


def _measure(args) -> None:
    from portal.search.index import store
    from portal.search.queryparse import make_parser
    from portal.search.schema import INSTANT_FIELDS

    postgres = args.backend == "postgres"
    app = _app(args.instance, args, meaning=args.meaning)
    if args.meaning:
        from portal.search import semantic

        semantic.start_loading(app)  # as gunicorn's master does before forking
        semantic.wait_until_loaded(app)
    client = app.test_client()
    queries = fixed_queries()
    htmx = {"HX-Request": "true", "HX-Target": "instant-results"}
    cost = _Cost(app, postgres)
    started_mb = _memory()["VmRSS"]

    def timed(url: str, headers=None) -> float:
        began = time.perf_counter()
        response = client.get(url, headers=headers or {})
        elapsed = (time.perf_counter() - began) * 1000
        assert response.status_code == 200, (url, response.status_code)
        return elapsed

    from urllib.parse import quote

    for q in QUERY_WARMUP:
        timed(f"/kb/search?q={quote(q)}")
        timed(f"/kb/search/instant?q={quote(q)}", htmx)
    # Instant first: it must not profit from postings the page queries loaded. Typing is
    # simulated by leaving off the last letter (a prefix search on the last word).
    instant = [timed(f"/kb/search/instant?q={quote(q[:-1] if len(q) > 4 else q)}", htmx)
               for q in queries]
    with cost.measure("search page"):
        page = [timed(f"/kb/search?q={quote(q)}") for q in queries]
    with cost.measure("search page (repeat)"):
        cached = [timed(f"/kb/search?q={quote(q)}") for q in queries]
    memory = _memory()  # a worker after warm-up: before the bare runs below add their own
    vectors = _vector_search(app, queries) if args.meaning else {}
    if postgres:
        bare, bare_instant = _bare_postgres(app, queries)
    else:
        with app.app_context():
            bare, bare_instant = _bare_whoosh(store, make_parser, INSTANT_FIELDS, queries)
    print(summary("search page", page))
    print(summary("instant partial", instant))
    print(summary("search page (repeat)", cached))
    bare_name = "bare postgres" if postgres else "bare whoosh"
    print(summary(bare_name, bare))
    print(summary(f"{bare_name}, instant", bare_instant))
    print("\n".join(cost.lines(len(page))))
    statements, app_cpu, db_cpu = cost.figures["search page"]
    print(json.dumps({
        "page_p95": percentile(page, 95), "instant_p95": percentile(instant, 95),
        "bare_p95": percentile(bare, 95), "bare_instant_p95": percentile(bare_instant, 95),
        "statements": statements / len(page), "app_cpu_ms": app_cpu * 1000 / len(page),
        "db_cpu_ms": None if db_cpu is None else db_cpu * 1000 / len(page),
        "worker_start_mb": started_mb, "worker_rss_mb": memory["VmRSS"],
        "worker_anon_mb": memory["RssAnon"], "worker_file_mb": memory["RssFile"],
        **vectors,
    }))


def _vector_search(app, queries) -> dict:
    """The nearest-vector step alone (queries already encoded), as configured and as an
    exact scan of every vector, and how many of the exact nearest articles the configured
    search finds (recall@10, @50): with k-means cells (portal/search/cells.py) below 1."""
    from portal.search import Audience, semantic

    def nearest(text: str, **config) -> tuple[list[int], float]:
        saved = {key: app.config[key] for key in config}
        app.config.update(config)
        try:
            began = time.perf_counter()
            found = semantic.nearest_articles(text, Audience.PUBLIC, 0, semantic.CANDIDATES)
            return [article_id for article_id, _ in found], (time.perf_counter() - began) * 1000
        finally:
            app.config.update(saved)

    with app.test_request_context():
        configured = [nearest(q) for q in queries]
        exact = [nearest(q, SEMANTIC_ANN_MIN_VECTORS=10**12) for q in queries]
        cells = semantic._matrix().cells
    recall = {k: statistics.fmean(len(set(a[:k]) & set(e[:k])) / max(1, len(e[:k]))
                                  for (a, _), (e, _) in zip(configured, exact, strict=True))
              for k in (10, 50)}
    print(summary("nearest vectors", [ms for _, ms in configured]))
    print(summary("nearest, exact scan", [ms for _, ms in exact]))
    print(f"nearest vectors: {len(cells.centroids) if cells else 0} cells; found "
          f"{recall[10]:.3f} of the exact top 10 articles, {recall[50]:.3f} of the top 50")
    return {"vector_p95": percentile([ms for _, ms in configured], 95),
            "exact_vector_p95": percentile([ms for _, ms in exact], 95),
            "recall_at_10": recall[10], "recall_at_50": recall[50]}


class _Cost:
    """Statements and CPU per request: the app's (this process) and, on PostgreSQL, the
    database server's (its backends for this app's connections, read from /proc). On a
    shared machine these move far less with the neighbours' load than milliseconds do."""

    def __init__(self, app, postgres: bool) -> None:
        from sqlalchemy import event, text

        self.figures: dict[str, tuple[float, float, float | None]] = {}
        self.statements = 0
        self.backends: set[int] = set()
        engine = app.extensions["portal_db_engine"]

        @event.listens_for(engine, "before_cursor_execute")
        def count(_conn, _cursor, statement, *_args):
            if "change_feed" not in statement:  # the feed's own poll, not the page's
                self.statements += 1

        if postgres:
            with app.app_context():
                engine.dispose()  # pooled connections from the build: reopened and seen

            @event.listens_for(engine, "connect")
            def remember(dbapi_connection, _record):
                self.backends.add(dbapi_connection.info.backend_pid)

            with engine.connect() as conn:  # at least one, opened through the pool
                conn.execute(text("SELECT 1"))

    def _server_seconds(self) -> float:
        ticks = 0
        for pid in self.backends:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # not on this machine, or gone
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")

    @contextlib.contextmanager
    def measure(self, name: str):
        statements, cpu, server = self.statements, time.process_time(), self._server_seconds()
        yield
        self.figures[name] = (self.statements - statements, time.process_time() - cpu,
                              self._server_seconds() - server if self.backends else None)

    def lines(self, requests: int) -> list[str]:
        out = []
        for name, (statements, cpu, server) in self.figures.items():
            db_cpu = "" if server is None else f"   database CPU {server * 1000 / requests:6.2f} ms"
            out.append(f"{name:<22} statements {statements / requests:5.2f}/request   app CPU "
                       f"{cpu * 1000 / requests:6.2f} ms{db_cpu}")
        return out


def _bare_postgres(app, queries):
    """The ranking query alone, as the search page and instant results run it."""
    from portal.search import Audience, pg

    def run(texts, instant):
        samples = []
        with app.test_request_context():
            for text in texts:
                began = time.perf_counter()
                parsed = pg.parse(text, prefix_last=instant)
                if parsed.parts:
                    pg.keyword_page(parsed, Audience.PUBLIC, None, page=1,
                                    per_page=8 if instant else 10, any_word=instant,
                                    snippets=not instant, instant=instant)
                samples.append((time.perf_counter() - began) * 1000)
        return samples

    run(QUERY_WARMUP, False)
    return run(queries, False), run([q[:-1] if len(q) > 4 else q for q in queries], True)


def _bare_whoosh(store, make_parser, instant_fields, queries):
    """Whoosh alone: a shared searcher, the same parser, search(limit=10)."""
    searcher = store().index().searcher()

    def bare_run(parser, texts, limit) -> list[float]:
        samples = []
        for text in texts:
            began = time.perf_counter()
            results = searcher.search(parser.parse(text), limit=limit)
            [hit.fields() for hit in results]
            samples.append((time.perf_counter() - began) * 1000)
        return samples

    page_parser = make_parser(searcher.schema, any_word=False)
    instant_parser = make_parser(searcher.schema, any_word=False, fields=instant_fields)
    bare_run(page_parser, QUERY_WARMUP, 10)
    bare = bare_run(page_parser, queries, 10)
    bare_instant = bare_run(instant_parser, queries, 8)
    searcher.close()
    return bare, bare_instant


def _report(args, build: dict, measured: dict) -> None:
    page_p95, instant_p95 = measured["page_p95"], measured["instant_p95"]
    ratio = page_p95 / measured["bare_p95"]
    print(f"overhead (same fields, same queries): page p95 / bare p95 = {ratio:.2f}; "
          f"instant p95 / bare instant-fields p95 = "
          f"{instant_p95 / measured['bare_instant_p95']:.2f}")
    print(f"memory: build peak {build['build_peak_rss_mb']:.0f} MB resident, index folder "
          f"peak {build['index_peak_mb']:.0f} MB, now {measured['index_peak_mb']:.0f} MB; a "
          f"worker after the queries {measured['worker_rss_mb']:.0f} MB resident = "
          f"{measured['worker_anon_mb']:.0f} MB its own + {measured['worker_file_mb']:.0f} MB "
          f"of mapped files (shared)")
    db_cpu = measured["db_cpu_ms"]
    db_figure = "" if db_cpu is None else f" page_db_cpu_ms={db_cpu:.2f}"
    meaning = " meaning=synthetic-vectors" if args.meaning else ""
    if "vector_p95" in measured:
        meaning += (f" vector_p95_ms={measured['vector_p95']:.1f}"
                    f" exact_vector_p95_ms={measured['exact_vector_p95']:.1f}"
                    f" recall_at_10={measured['recall_at_10']:.3f}"
                    f" recall_at_50={measured['recall_at_50']:.3f}")
    print(f"RESULT backend={args.backend} articles={args.articles}{meaning} "
          f"build_s={build['build_s']:.1f} "
          f"page_p95_ms={page_p95:.1f} "
          f"instant_p95_ms={instant_p95:.1f} overhead_ratio={ratio:.2f} "
          f"page_statements={measured['statements']:.2f} "
          f"page_app_cpu_ms={measured['app_cpu_ms']:.2f}{db_figure} "
          f"build_peak_rss_mb={build['build_peak_rss_mb']:.0f} "
          f"index_peak_mb={build['index_peak_mb']:.0f} index_mb={measured['index_peak_mb']:.0f} "
          f"worker_rss_mb={measured['worker_rss_mb']:.0f} "
          f"worker_anon_mb={measured['worker_anon_mb']:.0f}")


if __name__ == "__main__":
    main()
