"""Suggestion and search quality per kind of question, and suggestion speed, on two FAQs.

For each development set (Debian's FAQ from package debian-faq, the Python FAQ from package
python3-doc; see bench/data/README.md) it builds a fresh instance in a temporary folder,
imports one article per question and runs the hand-written queries of
bench/data/<set>_faq_queries.tsv through the app's own `suggest_articles` (keyword-only,
meaning-only and hybrid) and `search_articles` (the /kb/search ranking). It prints recall@1,
recall@5 and MRR@10 per kind of query, and the share of unrelated questions (those of every
set, asked of each knowledge base) answered with nothing; then, per kind, how the hybrid
rankers compare with the best single ranker (keyword alone, meaning alone). Then, on the
first set, it adds generated filler articles up to --articles (default 20,000), embeds them
with the app's code, and times the suggestion request through the app.

    python bench/search_quality.py [--sets debian,python] [--articles 20000] [--quality-only]
    python bench/search_quality.py --quality-only --backend whoosh,postgres

`--backend` lists the keyword backends to measure, in one run: whoosh (SQLite, the default)
and postgres (PostgreSQL full-text search in the database of $PORTAL_TEST_POSTGRES_URL, whose
public schema it DROPS and rebuilds for each set); PostgreSQL's keys start with `pg_`.

Last line: RESULT <set>_suggest_r1=.. <set>_suggest_r5=.. ... <set>_semantic_r1=..
<set>_below_best_single=.. suggest_p95_ms=.. suggest_p95_ms_before=.. suggest_cpu_p95_ms=..
suggest_cpu_p95_ms_before=.. embed_s_per_1k=..
(suggestion requests alternate between today's fusion and the one before title vectors).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import debian_faq  # noqa: E402
import numpy as np  # noqa: E402
import python_faq  # noqa: E402
from flask import jsonify, request  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from portal import create_app  # noqa: E402
from portal.db import utcnow  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.kb import services  # noqa: E402
from portal.kb.models import Article, ArticleEmbedding, ArticleStatus, Visibility  # noqa: E402
from portal.search import (  # noqa: E402
    Audience,
    reindex_all,
    search_articles,
    semantic,
    suggest_articles,
)
from portal.search import service as search_service  # noqa: E402
from portal.search.embeddings import DIMENSIONS, MODEL_ID  # noqa: E402

DATA = ROOT / "bench" / "data"
MODES = {
    "keyword": {"SEMANTIC_SEARCH": False},
    "semantic": {"SEMANTIC_SEARCH": True, "SEARCH_RANKING": "semantic"},
    "hybrid": {"SEMANTIC_SEARCH": True, "SEARCH_RANKING": "hybrid"},
}
KINDS = ("paraphrase", "keywords", "typo", "vague")
UNRELATED = "unrelated"


@dataclass
class DevSet:
    name: str
    title: str  # the category the articles are filed under
    queries_file: Path
    load: Callable[[], list]  # -> sections with .key, .title, .body


SETS = {
    "debian": DevSet("debian", "Debian FAQ", DATA / "debian_faq_queries.tsv",
                     debian_faq.load_sections),
    "python": DevSet("python", "Python FAQ", DATA / "python_faq_queries.tsv",
                     python_faq.load_sections),
}


@dataclass
class Query:
    keys: tuple[str, ...]  # any of these articles answers it; empty for unrelated questions
    kind: str
    text: str


def load_queries(path: Path) -> list[Query]:
    """`<key[|key...] or ->` TAB `<kind>` TAB `<query>` lines; `#` starts a comment."""
    rows = []
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            keys, kind, text = line.split("\t")
            if kind not in KINDS + (UNRELATED,):
                raise ValueError(f"{path.name}: unknown kind {kind!r} in {line!r}")
            rows.append(Query(tuple(k for k in keys.split("|") if k != "-"), kind, text))
    return rows


def make_app(instance: Path, database_url: str | None = None):
    """A migrated app on SQLite, or on `database_url` (emptied first)."""
    from portal.migrate import upgrade

    if database_url:
        from sqlalchemy import create_engine, text

        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    app = create_app({
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": database_url or f"sqlite:///{instance / 'portal.sqlite3'}",
        "SECRET_KEY": "bench",
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": False,
        "DEVELOPMENT": True,
    })
    with app.app_context():
        upgrade(app)
    return app


def import_faq(app, dev_set: DevSet) -> dict[str, int]:
    """One published public article per FAQ question; returns FAQ key -> article id."""
    with app.app_context():
        category = services.create_category(dev_set.title)
        section = services.create_section(category, "Questions")
        ids = {}
        for faq in dev_set.load():
            data = services.ArticleInput(title=faq.title, body=faq.body, section_id=section.id)
            article = services.create_article(data, None, status=ArticleStatus.PUBLISHED)
            ids[faq.key] = article.id
        db.session.commit()
        reindex_all()
        semantic.rebuild_embeddings()
        db.session.commit()
    return ids


def _suggested(query: str) -> list[int]:
    return [h.article_id for h in suggest_articles(query, Audience.PUBLIC, limit=10)]


def _searched(query: str) -> list[int]:
    return [h.article_id for h in search_articles(query, Audience.PUBLIC, per_page=10).hits]


# What is measured: (label, ranking mode, function giving the ranked article ids).
RANKERS = [
    ("keyword", "keyword", _suggested),
    ("semantic", "semantic", _suggested),
    ("suggest", "hybrid", _suggested),
    ("kwsearch", "keyword", _searched),
    ("semsearch", "semantic", _searched),
    ("search", "hybrid", _searched),
]


def evaluate(app, ids: dict[str, int], queries: list[Query]) -> dict[str, dict[str, dict]]:
    """ranker -> kind ("all" too) -> recall@1, recall@5, MRR@10 (for answerable kinds) or
    the share answered with nothing (for unrelated questions)."""
    out: dict[str, dict[str, dict]] = {}
    with app.app_context():
        titles = dict(db.session.execute(select(Article.id, Article.title)).all())
    for label, mode, ranked in RANKERS:
        app.config.update(MODES[mode])
        search_service._cache.__init__(search_service.CACHE_SIZE)
        per_kind: dict[str, list] = {}
        with app.test_request_context():
            for q in queries:
                found = ranked(q.text)
                if q.kind == UNRELATED:
                    per_kind.setdefault(UNRELATED, []).append(not found)
                    if found:
                        print(f"  {label}: unrelated {q.text!r} answered with "
                              f"{titles.get(found[0], found[0])!r}")
                    continue
                targets = {ids[k] for k in q.keys}
                rank = next((i + 1 for i, a in enumerate(found) if a in targets), None)
                for kind in (q.kind, "all"):
                    per_kind.setdefault(kind, []).append(rank)
        table = {}
        for kind, ranks in per_kind.items():
            n = len(ranks)
            if kind == UNRELATED:
                table[kind] = {"n": n, "nothing": sum(ranks) / n}
                continue
            table[kind] = {
                "n": n,
                "recall@1": sum(r == 1 for r in ranks) / n,
                "recall@5": sum(r is not None and r <= 5 for r in ranks) / n,
                "mrr@10": sum(1.0 / r for r in ranks if r is not None and r <= 10) / n,
            }
        out[label] = table
    app.config.update(MODES["hybrid"])
    return out


def print_quality(name: str, results: dict[str, dict[str, dict]]) -> None:
    print(f"\n{name}: {'ranker':<9} {'kind':<11} {'n':>4} {'R@1':>6} {'R@5':>6} {'MRR@10':>7}"
          f"  unrelated answered with nothing")
    for label, table in results.items():
        for kind in (*KINDS, "all"):
            r = table.get(kind)
            if r:
                print(f"{'':<{len(name) + 2}}{label:<9} {kind:<11} {r['n']:>4} "
                      f"{r['recall@1']:>6.3f} {r['recall@5']:>6.3f} {r['mrr@10']:>7.3f}")
        if UNRELATED in table:
            r = table[UNRELATED]
            print(f"{'':<{len(name) + 2}}{label:<9} {UNRELATED:<11} {r['n']:>4} "
                  f"{'':>22}  {r['nothing']:.3f}")


# Each hybrid ranker and the single rankers (keyword alone, meaning alone) through its path.
SINGLE = {"suggest": ("keyword", "semantic"), "search": ("kwsearch", "semsearch")}


def print_against_single(name: str, results: dict[str, dict[str, dict]]) -> int:
    """Per kind: each hybrid ranker's recall@1 and @5 against the best single ranker through
    the same path; returns how many (hybrid ranker, kind, measure) figures fall below it."""
    print(f"\n{name}: hybrid against the best single ranker (keyword alone, meaning alone)")
    below = 0
    for kind in (*KINDS, "all"):
        cells = []
        for hybrid, singles in SINGLE.items():
            for measure in ("recall@1", "recall@5"):
                best = max(results[label][kind][measure] for label in singles)
                gap = results[hybrid][kind][measure] - best
                below += kind != "all" and gap < -1e-9
                cells.append(f"{hybrid} {measure} {best:.3f}{gap:+.3f}")
        print(f"{'':<{len(name) + 2}}{kind:<11} " + ", ".join(cells))
    print(f"{'':<{len(name) + 2}}figures below the best single ranker: {below}")
    return below


_WORDS = {
    key: words.split("|")
    for key, words in {
        "thing": "account|invoice|order|password|printer|router|laptop|phone|subscription|"
                 "payment|refund|delivery|parcel|voucher|licence|backup|mailbox|calendar|"
                 "report|dashboard|export|import|profile|team|workspace|device|sensor|"
                 "firmware|battery|charger",
        "verb": "reset|cancel|update|change|renew|download|upload|sync|connect|configure|"
                "share|restore|delete|archive|merge|transfer|activate|verify|track|return",
        "problem": "is slow|keeps failing|shows an error|does not load|was charged twice|"
                   "is missing|stopped syncing|looks wrong|times out|cannot be found",
        "place": "in the app|on the website|from the admin area|on a mobile device|"
                 "in the settings page|after the latest update|from the billing page",
    }.items()
}


def filler_article(rng: random.Random, number: int) -> tuple[str, str]:
    """A plausible help-centre article (20-60 words) so keyword search has real work."""
    w = _WORDS
    title = (f"How to {rng.choice(w['verb'])} your {rng.choice(w['thing'])} "
             f"{rng.choice(w['place'])} ({number})")
    sentences: list[str] = []
    length = rng.randint(20, 60)
    while sum(len(s.split()) for s in sentences) < length:
        sentences.append(rng.choice([
            f"If your {rng.choice(w['thing'])} {rng.choice(w['problem'])}, "
            f"{rng.choice(w['verb'])} it {rng.choice(w['place'])}.",
            f"You can {rng.choice(w['verb'])} the {rng.choice(w['thing'])} "
            f"{rng.choice(w['place'])} at any time.",
            f"Our team will {rng.choice(w['verb'])} your {rng.choice(w['thing'])} "
            f"within {rng.randint(1, 5)} working days.",
            f"Note: the {rng.choice(w['thing'])} {rng.choice(w['problem'])} when the "
            f"{rng.choice(w['thing'])} is not up to date.",
        ]))
    return title, " ".join(sentences)


def add_random_vectors(article_ids: list[int]) -> None:
    """A random unit vector for each article's one chunk, its title and its lead (these
    bodies fit one chunk): cosines near 0, so they never rank, but the matrix, its products
    and the title lookups cost what real ones do. For a speed run on a machine too loaded to
    embed 20,000 articles in time; the FAQ articles keep their real vectors."""
    rng = np.random.default_rng(7)
    kinds = (0, semantic.TITLE_CHUNK, semantic.LEAD_CHUNK)
    for start in range(0, len(article_ids), 2000):
        batch = []
        for article_id in article_ids[start:start + 2000]:
            vectors = rng.standard_normal((len(kinds), DIMENSIONS)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            batch += [{"article_id": article_id, "chunk": chunk, "heading": "",
                       "content_hash": "random", "model": MODEL_ID, "vector": v.tobytes()}
                      for chunk, v in zip(kinds, vectors, strict=True)]
        db.session.execute(insert(ArticleEmbedding), batch)
    db.session.commit()
    semantic.write_matrix_file()


def add_filler(app, count: int, random_vectors: bool = False) -> tuple[list[int], float]:
    """Insert `count` filler articles, index and embed them (or give them random vectors);
    returns (ids, s per 1k embedded, 0 with random vectors)."""
    rng = random.Random(7)
    with app.app_context():
        section_id = services.create_section(services.create_category("Filler"), "General").id
        db.session.commit()
        now = utcnow()
        rows = []
        for number in range(count):
            title, body = filler_article(rng, number)
            rows.append({"section_id": section_id, "title": title, "slug": f"filler-{number}",
                         "body": body, "labels": "", "status": ArticleStatus.PUBLISHED,
                         "visibility": Visibility.PUBLIC, "version": 1, "created_at": now,
                         "updated_at": now, "published_at": now})
        db.session.execute(insert(Article), rows)
        db.session.commit()
        reindex_all()
        missing = semantic.missing_article_ids()
        if random_vectors:
            add_random_vectors(missing)
            return missing, 0.0
        first = missing[:1000]
        started = time.perf_counter()
        semantic.sync_embeddings(first)
        per_1k = (time.perf_counter() - started) * 1000 / max(len(first), 1)
        print(f"  embedded {len(first)} filler articles in {per_1k * len(first) / 1000:.1f} s; "
              f"embedding the other {len(missing) - len(first)} ...", flush=True)
        semantic.sync_embeddings(missing[1000:])
        db.session.commit()
    return missing, per_1k


def suggestion_url(app, query: str) -> str:
    """The new-request suggestion endpoint when the tickets domain has one, else a bench route
    that calls the same `suggest_articles` the way it does (customer audience, 5 results)."""
    if "tickets.suggest" in app.view_functions:
        return "/tickets/new/suggestions?" + urlencode({"subject": query})
    return "/bench/suggest?" + urlencode({"q": query})


def register_bench_route(app) -> None:
    if "tickets.suggest" in app.view_functions:
        return

    def bench_suggest():
        hits = suggest_articles(request.args.get("q", ""), Audience.CUSTOMERS, limit=5)
        return jsonify([{"id": h.article_id, "title": h.title, "url": h.url} for h in hits])

    app.add_url_rule("/bench/suggest", "bench_suggest", bench_suggest)


HTMX = {"HX-Request": "true"}  # the form's htmx request; without it the endpoint redirects


# The fusion before title vectors (issue 15, quality5), timed in the same run as today's:
# requests alternate between the two, so the machine's load weighs on both alike.
BEFORE = {"KEYWORD_ALPHA": 0.1, "TITLE_WEIGHT": 0.0}


def time_requests(app, queries: list[Query], rounds: int
                  ) -> dict[str, tuple[float, float, float, float]]:
    """"now" and "before" (the fusion of BEFORE): (p50, p95) in ms of `rounds` requests each,
    then the same of the CPU time the request took in this thread (the test client runs it
    here): on a shared, loaded machine wall-clock time mostly measures the wait for a core."""
    client = app.test_client()
    for q in queries[:20]:  # warm up: model loaded, matrix in memory
        client.get(suggestion_url(app, q.text), headers=HTMX)
    now = {name: getattr(semantic, name) for name in BEFORE}
    timings: dict[str, list[float]] = {"now": [], "before": []}
    cpu: dict[str, list[float]] = {"now": [], "before": []}
    rng = random.Random(3)
    for number in range(2 * rounds):
        label = ("now", "before")[number % 2]
        for name, value in (BEFORE if label == "before" else now).items():
            setattr(semantic, name, value)
        # Fresh text each time (a typed-in description is rarely repeated): no cache hits.
        query = f"{rng.choice(queries).text} {rng.choice(_WORDS['thing'])} {rng.randint(1, 10**6)}"
        started, started_cpu = time.perf_counter(), time.thread_time()
        response = client.get(suggestion_url(app, query), headers=HTMX)
        timings[label].append((time.perf_counter() - started) * 1000)
        cpu[label].append((time.thread_time() - started_cpu) * 1000)
        assert response.status_code == 200, response.status_code
    for name, value in now.items():
        setattr(semantic, name, value)
    out = {}
    for label, times in timings.items():
        times.sort()
        cpu[label].sort()
        out[label] = (statistics.median(times), times[int(len(times) * 0.95) - 1],
                      statistics.median(cpu[label]), cpu[label][int(len(times) * 0.95) - 1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--random-vectors", action="store_true",
                        help="give the filler articles random vectors instead of embedding "
                             "them (speed only; the development sets keep real ones)")
    parser.add_argument("--sets", default="debian,python",
                        help="development sets to measure, comma-separated (debian, python); "
                             "the first one is also used for the speed measurement")
    parser.add_argument("--backend", default="whoosh",
                        help="keyword backends, comma-separated: whoosh, postgres")
    args = parser.parse_args()
    backends = args.backend.split(",")
    if "postgres" in backends and not os.environ.get("PORTAL_TEST_POSTGRES_URL"):
        parser.error("--backend postgres needs PORTAL_TEST_POSTGRES_URL")
    # Every set's unrelated questions are asked of every knowledge base: a question about
    # pets or pizza must get nothing from any of them.
    unrelated = [q for dev_set in SETS.values() for q in load_queries(dev_set.queries_file)
                 if q.kind == UNRELATED]

    summary: dict[str, float] = {}
    runs = [(name, backend) for name in args.sets.split(",") for backend in backends]
    for position, (name, backend) in enumerate(runs):
        dev_set = SETS[name]
        queries = load_queries(dev_set.queries_file)
        asked = {q.text.lower() for q in queries}
        for q in unrelated:
            if q.text.lower() not in asked:
                asked.add(q.text.lower())
                queries.append(q)
        prefix = "pg_" if backend == "postgres" else ""
        with tempfile.TemporaryDirectory() as folder:
            app = make_app(Path(folder), os.environ["PORTAL_TEST_POSTGRES_URL"]
                           if backend == "postgres" else None)
            started = time.perf_counter()
            ids = import_faq(app, dev_set)
            print(f"{dev_set.title} ({backend}): {len(ids)} questions imported as articles, "
                  f"indexed and embedded in {time.perf_counter() - started:.1f} s; "
                  f"{len(queries)} queries.")
            results = evaluate(app, ids, queries)
            print_quality(prefix + name, results)
            below = print_against_single(prefix + name, results)
            for label in (label for label, _mode, _ranked in RANKERS):
                key = f"{prefix}{name}_{label}"
                summary[f"{key}_r1"] = results[label]["all"]["recall@1"]
                summary[f"{key}_r5"] = results[label]["all"]["recall@5"]
                summary[f"{key}_unrelated_empty"] = results[label][UNRELATED]["nothing"]
            summary[f"{prefix}{name}_below_best_single"] = below
            if position == 0 and not args.quality_only:
                filler = max(0, args.articles - len(ids))
                print(f"Adding {filler} generated filler articles (20-60 words each) ...",
                      flush=True)
                _ids, per_1k = add_filler(app, filler, args.random_vectors)
                register_bench_route(app)
                timed = time_requests(app, queries, args.requests)
                for label, (p50, p95, cpu50, cpu95) in timed.items():
                    print(f"Suggestion request at {args.articles} articles (hybrid {label}, "
                          f"{suggestion_url(app, '').split('?')[0]}): p50 {p50:.1f} ms, "
                          f"p95 {p95:.1f} ms (CPU p50 {cpu50:.1f}, p95 {cpu95:.1f} ms); "
                          f"load average {os.getloadavg()[0]:.1f}")
                print(f"Embedding: {per_1k:.1f} s per 1,000 articles")
                summary.update(suggest_p95_ms=timed["now"][1],
                               suggest_p95_ms_before=timed["before"][1],
                               suggest_cpu_p95_ms=timed["now"][3],
                               suggest_cpu_p95_ms_before=timed["before"][3],
                               embed_s_per_1k=per_1k)
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
