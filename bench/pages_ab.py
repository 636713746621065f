"""Two checkouts of the portal measured against each other in one run, slice by slice.

    python bench/pages_ab.py ../before-checkout . --pages agent_queue,agent_ticket,suggest
    python bench/pages_ab.py OLD NEW --rounds 6 --slice 2
    python bench/pages_ab.py . . --old-database sqlite --new-database "$PG_URL"  # PG / SQLite

Each checkout is seeded with the demo and served by its own gunicorn (2 sync workers, its own
code and templates, this venv), next to the floor of bench/pages.py. 8 clients then drive one
page at a time in short slices that alternate between the two sides (and the floor after each
round), so both see the same machine load: on a shared machine a before run and an after run
minutes apart measure the neighbours more than the change. Per page: req/s of each side, the
ratio new/old, each side's ratio to the floor, and server CPU per request. The last line:
RESULT pages=… new_over_old_<page>=… old_ratio_<page>=… new_ratio_<page>=…

Each side runs on SQLite unless `--old-database` / `--new-database` name a PostgreSQL URL,
whose public schema is DROPPED and rebuilt (give the two sides two databases). The same
checkout on SQLite and on PostgreSQL gives PostgreSQL's ratio to SQLite under one load; a side
on PostgreSQL also reports the database server's CPU per request (its backends on this
machine).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import tempfile
from pathlib import Path

import pages as bench


def _serve(checkout: Path, scratch: Path, database: str) -> dict:
    instance = scratch / "instance"
    env = {**os.environ, "PORTAL_INSTANCE_PATH": str(instance), "PORTAL_SECRET_KEY": "bench",
           "PORTAL_RATELIMIT_ENABLED": "false", "PORTAL_LOGIN_RATE_LIMIT": "1000 per minute",
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PORTAL_SEMANTIC_SEARCH", None)
    env.pop("PORTAL_DATABASE_URL", None)
    server = None
    if database != "sqlite":
        bench.empty_schema(database)
        env["PORTAL_DATABASE_URL"] = database
        server = bench.DatabaseCpu(database)
    bench.ROOT = checkout  # prepare() runs that checkout's `flask db upgrade` and `demo seed`
    accounts, urls, words = bench.prepare(instance, env)
    port = bench.free_port()
    proc = bench.start_gunicorn("app:app", port, env, checkout)
    cookies = {role: bench.sign_in(port, *accounts[role]) for role in ("customer", "agent")}
    # The query-model service's CPU (a checkout that has one) is the searches' server CPU too.
    pids = bench.worker_pids(proc) + bench.model_service_pids(proc)
    return {"proc": proc, "port": port, "pids": pids,
            "pages": bench.Pages(urls, cookies, words), "database": server}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="checkout measured first (e.g. before a change)")
    parser.add_argument("new", type=Path, help="checkout compared with it")
    parser.add_argument("--pages", default="agent_queue,agent_ticket,suggest")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--slice", type=float, default=2.0, help="seconds per page and side")
    for side in ("old", "new"):
        parser.add_argument(f"--{side}-database", default="sqlite",
                            help="sqlite (default) or a PostgreSQL URL (its schema is dropped)")
    args = parser.parse_args()
    names = args.pages.split(",")
    if "sqlite" != args.old_database == args.new_database:
        parser.error("the two sides need two databases")
    totals: dict[tuple[str, str], list[float]] = {}

    def add(side: str, name: str, result: dict) -> None:
        # requests, seconds, CPU ms, database CPU ms
        total = totals.setdefault((side, name), [0, 0.0, 0.0, 0.0])
        total[0] += result["n"]
        total[1] += result["n"] / result["rps"]
        total[2] += result["cpu_ms"] * result["n"]
        total[3] += (result["db_cpu_ms"] or 0.0) * result["n"]

    with tempfile.TemporaryDirectory(prefix="pages-ab-") as scratch:
        scratch = Path(scratch)
        (scratch / "old").mkdir()
        (scratch / "new").mkdir()
        sides = {"old": _serve(args.old.resolve(), scratch / "old", args.old_database),
                 "new": _serve(args.new.resolve(), scratch / "new", args.new_database)}
        floor_env = {**os.environ, "BENCH_FLOOR_DB": str(scratch / "floor.sqlite3")}
        floor_port = bench.free_port()
        floor = {"proc": bench.start_gunicorn("pages:floor_app()", floor_port, floor_env,
                                              Path(__file__).resolve().parent),
                 "port": floor_port, "pages": bench.Pages({"floor": (None, "/")}, {}, [])}
        try:
            rng = random.Random(1)
            for side in sides.values():  # warm-up: every worker sees every page
                for name in names:
                    for _ in range(6):
                        path, headers = side["pages"].make(name, rng)
                        status = bench.request(side["port"], path, headers)[0]
                        if status != 200:
                            raise SystemExit(f"{name} {path} answered {status}")
            bench.request(floor_port, "/")
            floor["pids"] = bench.worker_pids(floor["proc"])  # forked once the port is open
            with multiprocessing.Pool(bench.CLIENTS) as pool:
                for round_ in range(args.rounds):
                    order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
                    for name in names:
                        for key in order:
                            side = sides[key]
                            add(key, name, bench.measure(pool, side["port"], side["pids"],
                                                         side["pages"], name, args.slice,
                                                         round_, side["database"]))
                    add("floor", "floor", bench.measure(pool, floor_port, floor["pids"],
                                                        floor["pages"], "floor", args.slice,
                                                        round_))
        finally:
            for server in (*sides.values(), floor):
                bench.stop(server["proc"])

    def rps(side: str, name: str) -> float:
        requests, seconds, _cpu, _db = totals[(side, name)]
        return requests / seconds

    def cpu(side: str, name: str) -> float:
        requests, _seconds, cpu_ms, _db_ms = totals[(side, name)]
        return cpu_ms / requests

    def db_cpu(side: str, name: str) -> str:
        requests, _seconds, _cpu_ms, db_ms = totals[(side, name)]
        return f"{db_ms / requests:9.2f}" if sides[side]["database"] else f"{'-':>9}"

    floor_rps = rps("floor", "floor")
    print(f"{args.rounds} rounds of {args.slice:g} s per page and side, {bench.CLIENTS} clients, "
          f"load average {os.getloadavg()[0]:.1f}; floor {floor_rps:.0f} req/s, "
          f"{cpu('floor', 'floor'):.1f} ms CPU per request")
    print(f"old: {args.old} on {bench.database_name(args.old_database)}; "
          f"new: {args.new} on {bench.database_name(args.new_database)}")
    print(f"{'page':<14}{'old req/s':>10}{'new req/s':>10}{'new/old':>8}{'old ratio':>10}"
          f"{'new ratio':>10}{'old CPU ms':>11}{'new CPU ms':>11}{'old DB ms':>10}"
          f"{'new DB ms':>10}")
    result = [f"pages={len(names)}"]
    for name in names:
        old, new = rps("old", name), rps("new", name)
        print(f"{name:<14}{old:10.0f}{new:10.0f}{new / old:8.2f}{old / floor_rps:10.2f}"
              f"{new / floor_rps:10.2f}{cpu('old', name):11.1f}{cpu('new', name):11.1f}"
              f" {db_cpu('old', name)} {db_cpu('new', name)}")
        result += [f"new_over_old_{name}={new / old:.2f}",
                   f"old_ratio_{name}={old / floor_rps:.2f}",
                   f"new_ratio_{name}={new / floor_rps:.2f}"]
    print("RESULT " + " ".join(result))


if __name__ == "__main__":
    main()
