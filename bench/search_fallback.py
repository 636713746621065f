"""Benchmark the search page while the index is being rebuilt (a script, not a test).

    python bench/search_fallback.py [--articles 2000] [--seed 7]

Seeds N articles (the corpus of bench/kb_search.py), times 200 fixed queries on the search
page answered by the index, then deletes the index folder while holding its write lock (so
the background rebuild must wait) and times the same queries answered by the database
fallback. Finally it releases the lock and times the rebuild the first search started.
RESULT articles=<n> index_p95_ms=<x> fallback_p95_ms=<x> fallback_hit_ratio=<x> rebuild_s=<x>
where fallback_hit_ratio = share of queries with results from the index that also get results
from the fallback (customers should never see an empty knowledge base).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kb_search import TOPICS, fixed_queries, generate_rows, percentile, summary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import logging

    logging.disable(logging.ERROR)  # the deleted index is logged as an error, on purpose
    from sqlalchemy import insert
    from whoosh.filedb.filestore import FileStorage

    from portal import create_app
    from portal.extensions import db
    from portal.kb.models import Article
    from portal.kb.services import create_category, create_section
    from portal.migrate import upgrade
    from portal.search import reindex_all
    from portal.search.index import store
    from portal.search.schema import INDEX_NAME

    with tempfile.TemporaryDirectory(prefix="fallback-bench-") as folder:
        instance = Path(folder)
        app = create_app({
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": f"sqlite:///{instance / 'portal.sqlite3'}",
            "SECRET_KEY": "bench", "SEMANTIC_SEARCH": False, "RATELIMIT_ENABLED": False,
        })
        with app.app_context():
            upgrade(app)
            sections = {}
            for topic in TOPICS:
                category = create_category(topic)
                sections[topic] = [create_section(category, f"{topic} {n}").id for n in range(5)]
            db.session.commit()
            rows = list(generate_rows(args.articles, args.seed, sections))
            for start in range(0, len(rows), 2000):
                db.session.execute(insert(Article), rows[start:start + 2000])
            db.session.commit()
            reindex_all()

        client = app.test_client()
        queries = fixed_queries()

        def run() -> tuple[list[float], list[bool]]:
            samples, found = [], []
            for q in queries:
                began = time.perf_counter()
                response = client.get(f"/kb/search?q={quote(q)}")
                samples.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200, (q, response.status_code)
                found.append("search-hit" in response.get_data(as_text=True))
            return samples, found

        indexed, found_by_index = run()
        index_dir = Path(app.config["INDEX_DIR"])
        shutil.rmtree(index_dir)
        index_dir.mkdir()
        lock = FileStorage(str(index_dir)).lock(f"{INDEX_NAME}_WRITELOCK")
        assert lock.acquire()
        fallback, found_by_fallback = run()
        with app.app_context():
            assert store().rebuilding, "the fallback bench ran against the index"
            thread = store().rebuild_thread
        began = time.perf_counter()
        lock.release()
        thread.join(600)
        rebuild_s = time.perf_counter() - began

    print(summary("search page (index)", indexed))
    print(summary("search page (fallback)", fallback))
    both = [f for i, f in zip(found_by_index, found_by_fallback, strict=True) if i]
    ratio = sum(both) / len(both) if both else 0.0
    print(f"queries with index results that the fallback also answers: {sum(both)}/{len(both)}")
    print(f"RESULT articles={args.articles} index_p95_ms={percentile(indexed, 95):.1f} "
          f"fallback_p95_ms={percentile(fallback, 95):.1f} fallback_hit_ratio={ratio:.2f} "
          f"rebuild_s={rebuild_s:.1f}")


if __name__ == "__main__":
    main()
