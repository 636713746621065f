"""Benchmark: how long after a publish on host A does host B's search find the article?

    python bench/cluster.py [--articles 100] [--database-url postgresql+psycopg://...]

Starts the same two-host set-up as tests/cluster (two gunicorn servers with separate instance
folders and a worker each, on a fresh database `<name>_cluster` on the server of
--database-url, default $PORTAL_TEST_POSTGRES_URL). For each article: host B is asked first
(so it may cache "nothing found"), the article is published through A's editor, and B's
search page is polled every 10 ms until the article is listed. The last line is:
RESULT articles=<n> publish_to_other_host_p50_ms=<x> publish_to_other_host_p95_ms=<x> ...
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "cluster"))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def word(n: int) -> str:
    return "benchq" + "".join("bcdfghjklmnpqrstvwxz"[int(d)] for d in f"{n:05d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--database-url", default=os.environ.get("PORTAL_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if not args.database_url:
        parser.error("needs --database-url (or PORTAL_TEST_POSTGRES_URL)")
    from hosts import Client, fresh_database, make_hosts, seed, sign_in

    database_url = fresh_database(args.database_url)
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as folder:
        root = Path(folder)
        hosts = make_hosts(root, database_url)
        a, b = hosts
        try:
            for proc in [a.migrate(), b.migrate()]:
                assert proc.wait(120) == 0
            _app, accounts, _tickets = seed(database_url, root / "setup")
            for host in hosts:
                host.start_server()
                host.start_worker()
            for host in hosts:
                host.wait_until_serving()
            agent, visitor = Client(), Client()
            sign_in(agent, a, *accounts["agent"])
            editor = agent.get(a.url + "/agent/kb/new").text
            section = re.search(r'<option[^>]*value="(\d+)"', editor).group(1)
            delays = []
            first_poll = 0  # found by B's very first search after the publish returned
            for n in range(args.articles):
                title, query = f"Bench {word(n)}", word(n)
                assert title not in visitor.get(f"{b.url}/kb/search?q={query}").text
                response = agent.post(a.url + "/agent/kb/new", {
                    "title": title, "body": f"About {query}.", "section_id": section,
                    "labels": "", "visibility": "public", "version": "", "note": "",
                    "action": "publish"})
                assert response.status in (302, 303), response.status
                published = time.perf_counter()
                polls = 1
                while title not in visitor.get(f"{b.url}/kb/search?q={query}").text:
                    assert time.perf_counter() - published < 30, "never found on B"
                    time.sleep(0.01)
                    polls += 1
                delays.append((time.perf_counter() - published) * 1000)
                first_poll += polls == 1
        finally:
            for host in hosts:
                host.stop()
    print(f"publish on A -> found on B: p50 {percentile(delays, 50):.1f} ms, "
          f"p95 {percentile(delays, 95):.1f} ms, max {max(delays):.1f} ms "
          f"(each figure includes B's search request itself); found by B's first search "
          f"after the publish: {first_poll}/{len(delays)}")
    print(f"RESULT articles={args.articles} "
          f"publish_to_other_host_p50_ms={percentile(delays, 50):.1f} "
          f"publish_to_other_host_p95_ms={percentile(delays, 95):.1f} "
          f"publish_to_other_host_max_ms={max(delays):.1f} first_search_found={first_poll}")


if __name__ == "__main__":
    main()
