"""Suggestion quality and speed: keyword-only vs meaning-only vs hybrid, on Debian's FAQ.

Builds a fresh instance in a temporary folder, imports the FAQ (package debian-faq) as one
article per question section, and runs the hand-written queries of
bench/data/debian_faq_queries.tsv through the app's own `suggest_articles` in three modes.
Then it adds generated filler articles up to --articles (default 20,000), embeds them with the
app's code, and times the suggestion request through the Flask app.

    python bench/search_quality.py [--articles 20000] [--quality-only]

Last line: RESULT recall5_keyword=.. recall5_hybrid=.. suggest_p95_ms=.. embed_s_per_1k=..
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from debian_faq import load_sections  # noqa: E402
from flask import jsonify, request  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from portal import create_app  # noqa: E402
from portal.db import utcnow  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.kb import services  # noqa: E402
from portal.kb.models import Article, ArticleStatus, Visibility  # noqa: E402
from portal.search import Audience, reindex_all, semantic, suggest_articles  # noqa: E402
from portal.search import service as search_service  # noqa: E402

QUERIES = ROOT / "bench" / "data" / "debian_faq_queries.tsv"
MODES = {
    "keyword": {"SEMANTIC_SEARCH": False},
    "semantic": {"SEMANTIC_SEARCH": True, "SEARCH_RANKING": "semantic"},
    "hybrid": {"SEMANTIC_SEARCH": True, "SEARCH_RANKING": "hybrid"},
}


def load_queries() -> list[tuple[str, str]]:
    rows = []
    for line in QUERIES.read_text().splitlines():
        if line and not line.startswith("#"):
            key, query = line.split("\t")
            rows.append((key, query))
    return rows


def make_app(instance: Path):
    from portal.migrate import upgrade

    app = create_app({
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"sqlite:///{instance / 'portal.sqlite3'}",
        "SECRET_KEY": "bench",
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": False,
        "DEVELOPMENT": True,
    })
    with app.app_context():
        upgrade(app)
    return app


def import_faq(app) -> dict[str, int]:
    """One published public article per FAQ section; returns FAQ key -> article id."""
    with app.app_context():
        category = services.create_category("Debian FAQ")
        section = services.create_section(category, "Questions")
        ids = {}
        for faq in load_sections():
            data = services.ArticleInput(title=faq.title, body=faq.body, section_id=section.id)
            article = services.create_article(data, None, status=ArticleStatus.PUBLISHED)
            ids[faq.key] = article.id
        db.session.commit()
        reindex_all()
        semantic.rebuild_embeddings()
        db.session.commit()
    return ids


def evaluate(app, ids: dict[str, int], queries: list[tuple[str, str]]) -> dict[str, dict]:
    out = {}
    for mode, config in MODES.items():
        app.config.update(config)
        search_service._cache.__init__(search_service.CACHE_SIZE)
        hits1 = hits5 = empty = 0
        reciprocal = 0.0
        with app.test_request_context():
            for key, query in queries:
                found = [h.article_id for h in suggest_articles(query, Audience.PUBLIC, limit=10)]
                target = ids[key]
                empty += not found
                if target in found:
                    rank = found.index(target) + 1
                    hits1 += rank == 1
                    hits5 += rank <= 5
                    reciprocal += 1.0 / rank
        n = len(queries)
        out[mode] = {"recall@1": hits1 / n, "recall@5": hits5 / n, "mrr@10": reciprocal / n,
                     "no_result": empty / n}
    app.config.update(MODES["hybrid"])
    return out


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


def add_filler(app, count: int) -> tuple[list[int], float]:
    """Insert `count` filler articles, index and embed them; returns (ids, s per 1k embedded)."""
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


def time_requests(app, queries: list[tuple[str, str]], rounds: int) -> tuple[float, float]:
    client = app.test_client()
    for _key, query in queries[:20]:  # warm up: model loaded, matrix in memory
        client.get(suggestion_url(app, query), headers=HTMX)
    timings = []
    rng = random.Random(3)
    for _ in range(rounds):
        # Fresh text each time (a typed-in description is rarely repeated): no cache hits.
        _key, query = rng.choice(queries)
        query = f"{query} {rng.choice(_WORDS['thing'])} {rng.randint(1, 10**6)}"
        started = time.perf_counter()
        response = client.get(suggestion_url(app, query), headers=HTMX)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--quality-only", action="store_true")
    args = parser.parse_args()

    queries = load_queries()
    with tempfile.TemporaryDirectory() as folder:
        app = make_app(Path(folder))
        started = time.perf_counter()
        ids = import_faq(app)
        print(f"Imported {len(ids)} FAQ sections as articles, indexed and embedded in "
              f"{time.perf_counter() - started:.1f} s; {len(queries)} queries.")
        results = evaluate(app, ids, queries)
        print(f"{'mode':<10} {'recall@1':>9} {'recall@5':>9} {'MRR@10':>8} {'no result':>10}")
        for mode, r in results.items():
            print(f"{mode:<10} {r['recall@1']:>9.3f} {r['recall@5']:>9.3f} {r['mrr@10']:>8.3f} "
                  f"{r['no_result']:>10.3f}")
        p50 = p95 = per_1k = float("nan")
        if not args.quality_only:
            filler = max(0, args.articles - len(ids))
            print(f"Adding {filler} generated filler articles (20-60 words each) ...",
                  flush=True)
            _ids, per_1k = add_filler(app, filler)
            register_bench_route(app)
            p50, p95 = time_requests(app, queries, args.requests)
            print(f"Suggestion request at {args.articles} articles (hybrid, "
                  f"{suggestion_url(app, '').split('?')[0]}): p50 {p50:.1f} ms, p95 {p95:.1f} ms"
                  f"; embedding: {per_1k:.1f} s per 1,000 articles")
    print(f"RESULT recall5_keyword={results['keyword']['recall@5']:.3f} "
          f"recall5_hybrid={results['hybrid']['recall@5']:.3f} "
          f"suggest_p95_ms={p95:.1f} embed_s_per_1k={per_1k:.1f}")


if __name__ == "__main__":
    main()
