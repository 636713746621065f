"""Benchmark surge detection on labelled texts (a script, not a test).

    python bench/surges.py --data ../shared/data/banking77/train.csv [--runs 10] [--seed 1]
        [--per-day 300] [--quiet-days 2] [--cold]
    python bench/surges.py --data ../shared/data/banking77/train.csv --scan-cost
        [--database-url postgresql+psycopg://...] [--per-day 300]

Replays simulated ticket streams, minute by minute on a simulated clock, through the portal's
own code: texts are embedded with the portal's MiniLM encoder (`portal.search.embeddings`;
vectors cached in bench/out/, git-ignored), grouped like `portal.surges.detection.assign`
and scanned with `portal.surges.detection.detect` under both sensitivities, with the same
surge life cycle as the scheduled job: an open surge absorbs later tickets within
`MEMBERSHIP` of its centres and blocks new ones near them; an alert of the same spike
(`detection.same_spike`) joins it; it ends after `END_AFTER` below its alert level
(`detection.surging`), and its tickets then count for no new surge.

Each run: a week of background traffic (categories weighted by a random Dirichlet draw; a
daily rhythm and quieter weekends) as the baseline, then one day per injected surge of one
category (40 in 2 h, 12 in 2 h, 8 in 30 min, 20 in 6 h, a slow ramp of 30 over 12 h, and 20
in 2 h of the category with the closest neighbour), then `--quiet-days` days with no surge.
The detector is scanned every simulated minute in which a ticket arrived (between arrivals
window counts only fall, so a surge can start only if a ticket ageing out of the recent
tickets moves a centre: rare, and caught at the next arrival).

Two lines, one per sensitivity (sensitivity=normal, then sensitivity=sensitive):
RESULT detect40=<share of 40-in-2h surges detected> delay40_tickets=<median of its tickets up
to the alert> precision=<members of the spike's intent, mean> grouped=<spike tickets that are
members, mean> detect12=<share of 12-in-2h detected> false_per_day=<surges on quiet days>
sensitivity=... detect40_within15=<share detected within 15 of its tickets> and the other
scenarios; surges_per_spike counts the surge records one spike raised; stray_per_day counts
surges after the first week that are no spike's, on spike days too (four times the quiet days'
exposure, so a tighter estimate of false surges than false_per_day). A surge belongs to a
spike when most of the tickets it was raised on, or most of all its members, are the spike's
(an open surge also takes in the topic's ordinary traffic, which counts towards precision).

--scan-cost times the scheduled scan itself (`portal.surges.services.scan`) on a database
(SQLite in a scratch folder unless --database-url) holding a week and six hours of tickets at
--per-day, grouped by the portal's code: first a scan whose process holds no copy of the
week's vectors (it reads them all, as every scan with a fresh ticket did before they were
kept in memory), then scans a minute apart with one new ticket each (they read only it).
RESULT scan_tickets=<n> scan_full_ms=<median> scan_incremental_ms=<median> ratio=<full/inc>
"""

from __future__ import annotations

import argparse
import bisect
import csv
import hashlib
import math
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portal.search.embeddings import MODEL_ID, load_encoder, single_threaded_blas  # noqa: E402
from portal.surges import detection  # noqa: E402

DAY = 1440  # minutes
SCENARIOS = (  # name, tickets, minutes, shape
    ("s40", 40, 120, "flat"),
    ("s12", 12, 120, "flat"),
    ("s8", 8, 30, "flat"),
    ("s20_6h", 20, 360, "flat"),
    ("ramp30_12h", 30, 720, "ramp"),
    ("close20", 20, 120, "flat"),
)


def load(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [(r["text"].strip(), r["category"].strip()) for r in csv.DictReader(handle)]
    rows = [r for r in rows if r[0]]
    return [r[0] for r in rows], [r[1] for r in rows]


def embeddings(path: Path, texts: list[str]) -> np.ndarray:
    digest = hashlib.sha256((MODEL_ID + "\n" + "\n".join(texts)).encode()).hexdigest()[:16]
    cache = ROOT / "bench" / "out" / f"surges-{path.stem}-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    encoder = load_encoder()
    if encoder is None:
        sys.exit("the MiniLM model package is not installed (make install)")
    started = time.perf_counter()
    parts = []
    for start in range(0, len(texts), 512):
        parts.append(encoder.encode(texts[start : start + 512]))
        print(f"embedded {start + len(parts[-1])}/{len(texts)}", file=sys.stderr, flush=True)
    vectors = np.concatenate(parts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    print(f"embedding took {time.perf_counter() - started:.0f} s; cached in {cache}",
          file=sys.stderr)
    return vectors


@dataclass
class Ticket:
    minute: int
    row: int  # index into texts
    spike: str | None = None  # the injected scenario it belongs to


def rhythm(minute: int) -> float:
    """Relative volume: busy working hours, quiet nights, weekends at half."""
    hour = (minute % DAY) / 60
    daily = 0.25 + 1.75 * max(0.0, math.sin(math.pi * (hour - 7) / 12)) if 7 <= hour <= 19 \
        else 0.25
    weekend = 0.5 if (minute // DAY) % 7 in (5, 6) else 1.0
    return daily * weekend


def background(rng: np.random.Generator, days: int, per_day: float, by_category,
               weights) -> list[Ticket]:
    mean_rhythm = np.mean([rhythm(m) for m in range(7 * DAY)])
    categories = list(by_category)
    tickets = []
    for minute in range(days * DAY):
        for _ in range(rng.poisson(per_day / DAY * rhythm(minute) / mean_rhythm)):
            cat = categories[rng.choice(len(categories), p=weights)]
            tickets.append(Ticket(minute, int(rng.choice(by_category[cat]))))
    return tickets


def spike(rng, name, count, minutes, shape, start, rows) -> list[Ticket]:
    if shape == "ramp":  # density rising linearly: arrival times ~ sqrt(uniform)
        offsets = np.sqrt(rng.random(count)) * minutes
    else:
        offsets = rng.random(count) * minutes
    chosen = rng.choice(rows, size=count, replace=len(rows) < count)
    return [Ticket(start + int(o), int(r), name) for o, r in zip(offsets, chosen, strict=True)]


@dataclass
class Surge:
    raised_at: int
    centres: np.ndarray  # rows: its first centre, then those of alerts that joined it
    members: list[int] = field(default_factory=list)  # stream indices
    surging_at: int = 0
    raised_with: list[int] = field(default_factory=list)  # its members when raised
    ended_at: int | None = None


@dataclass
class Detector:
    sensitivity: detection.Sensitivity
    open: list[Surge] = field(default_factory=list)
    raised: list[Surge] = field(default_factory=list)
    claimed: set[int] = field(default_factory=set)  # members of ended surges

    def members(self) -> set[int]:
        return {i for surge in self.open for i in surge.members}


def replay(stream: list[Ticket], vectors: np.ndarray, detectors: list[Detector],
           start_minute: int) -> list[int]:
    """Group every ticket and scan the detectors; returns each ticket's group."""
    dims = vectors.shape[1]
    minutes = np.array([t.minute for t in stream], dtype=np.float64)
    stream_vectors = vectors[[t.row for t in stream]]
    sums = np.zeros((len(stream) + 1, dims), dtype=np.float32)
    cents = np.zeros_like(sums)
    last_seen = np.full(len(stream) + 1, -10**9)
    groups_of = []
    idle = detection.GROUP_IDLE.total_seconds() / 60
    fresh: list[int] = []
    n_groups = 0
    for index, ticket in enumerate(stream):
        now = ticket.minute
        if fresh and stream[index - 1].minute != now:
            scan(now - 1, index, detectors, minutes, stream_vectors, start_minute)
            fresh.clear()
        vector = stream_vectors[index]
        best, score = -1, -1.0
        if n_groups:
            scores = cents[:n_groups] @ vector
            scores[last_seen[:n_groups] < now - idle] = -2.0
            best = int(np.argmax(scores))
            score = float(scores[best])
        if score < detection.SIMILARITY:
            best = n_groups
            n_groups += 1
        sums[best] += vector
        cents[best] = detection.centroid(sums[best])
        last_seen[best] = now
        groups_of.append(best)
        fresh.append(index)
        for detector in detectors:
            for surge in detector.open:
                if float((surge.centres @ vector).max()) >= detection.MEMBERSHIP:
                    surge.members.append(index)
                    break
    return groups_of


def scan(now, upto, detectors, minutes, stream_vectors, start_minute):
    """One scheduled scan at minute `now` (tickets before index `upto` have arrived): the
    portal's `scan` on the bench's arrays. Its fresh rows are those of the shortest window,
    as the portal's (not only the tickets since the last scan)."""
    span = timedelta(minutes=now - start_minute)
    longest = max(detection.WINDOWS).total_seconds() / 60
    lo = bisect.bisect_right(minutes, now - longest - detection.HISTORY.total_seconds() / 60,
                             hi=upto)
    recent_minutes, recent_vectors = minutes[lo:upto], stream_vectors[lo:upto]
    fresh_rows = np.flatnonzero(recent_minutes > now - min(detection.WINDOWS).total_seconds() / 60)
    end_after = detection.END_AFTER.total_seconds() / 60
    for detector in detectors:
        claimed = np.isin(np.arange(lo, upto), list(detector.claimed))
        still_open = []
        for surge in detector.open:
            if detection.surging(surge.centres, recent_minutes, recent_vectors, now, span,
                                 detector.sensitivity, claimed):
                surge.surging_at = now
            elif now - surge.surging_at >= end_after:
                surge.ended_at = now
                detector.claimed.update(surge.members)
                continue
            still_open.append(surge)
        if len(still_open) < len(detector.open):
            claimed = np.isin(np.arange(lo, upto), list(detector.claimed))
        detector.open = still_open
        blocked = np.vstack([s.centres for s in detector.open]) if detector.open else None
        alerts = detection.detect(recent_minutes, recent_vectors, now, fresh_rows, span,
                                  detector.sensitivity, blocked, claimed)
        for alert in alerts:
            members = [lo + i for i in alert.members]
            if detection.already_covered(members, detector.members()):
                continue
            same = next((s for s in detector.open if detection.same_spike(
                alert.centre, s.centres[0], members, set(s.members))), None)
            if same is not None:
                same.centres = np.vstack([same.centres, alert.centre])
                known = set(same.members)
                same.members += [i for i in members if i not in known]
                continue
            surge = Surge(now, alert.centre[None, :], members, now, list(members))
            detector.open.append(surge)
            detector.raised.append(surge)


def run_once(rng, texts_categories, vectors, by_category, close_category, args, cold):
    categories = list(by_category)
    weights = rng.dirichlet(np.ones(len(categories)))
    warm = 1 if cold else 7
    days = warm + len(SCENARIOS) + args.quiet_days
    stream = background(rng, days, args.per_day, by_category, weights)
    spikes = {}
    for day, (name, count, minutes, shape) in enumerate(SCENARIOS, start=warm):
        cat = close_category if name == "close20" else categories[rng.integers(len(categories))]
        start = day * DAY + int(rng.integers(8 * 60, 14 * 60))
        spikes[name] = (cat, start)
        stream += spike(rng, name, count, minutes, shape, start, by_category[cat])
    stream.sort(key=lambda t: t.minute)
    detectors = [Detector(detection.SENSITIVITIES[s]) for s in ("normal", "sensitive")]
    replay(stream, vectors, detectors, 0)
    quiet_from = (warm + len(SCENARIOS)) * DAY
    out = {}

    def is_spikes(surge, name):
        # A surge is this spike's when most tickets it was raised on, or most of all its
        # members, are the spike's: while open it also takes in the topic's ordinary
        # traffic, and a slow spike's first window holds much ordinary traffic.
        return any(sum(stream[i].spike == name for i in rows) * 2 > len(rows)
                   for rows in (surge.raised_with, surge.members))

    for detector in detectors:
        res = {}
        for name, (cat, _start) in spikes.items():
            spike_idx = [i for i, t in enumerate(stream) if t.spike == name]
            matched = [s for s in detector.raised if is_spikes(s, name)]
            if not matched:
                res[name] = None
                continue
            first = min(matched, key=lambda s: s.raised_at)
            delay = sum(1 for i in spike_idx if stream[i].minute <= first.raised_at)
            members = [i for s in matched for i in s.members]
            precision = sum(texts_categories[stream[i].row] == cat for i in members) / len(members)
            grouped = len(set(members) & set(spike_idx)) / len(spike_idx)
            res[name] = (delay, precision, grouped, len(matched))
        false = sum(1 for s in detector.raised if s.raised_at >= quiet_from)
        stray = sum(1 for s in detector.raised if s.raised_at >= warm * DAY
                    and not any(is_spikes(s, name) for name in spikes))
        out[detector.sensitivity.name] = (res, false, stray)
    return out


def scan_cost(args, texts: list[str], vectors: np.ndarray) -> None:
    """Per-minute cost of the portal's scan, with and without the week's vectors in memory."""
    import tempfile

    from portal import create_app
    from portal.db import utcnow
    from portal.extensions import db
    from portal.migrate import upgrade
    from portal.surges import recent, services
    from portal.tickets.models import Ticket

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="surges-scan-") as folder:
        config = {"INSTANCE_PATH": folder, "SECRET_KEY": "bench", "SEMANTIC_SEARCH": False,
                  "TESTING": False}
        if args.database_url:  # emptied first, as the PostgreSQL tests do
            from sqlalchemy import create_engine, text

            engine = create_engine(args.database_url)
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            engine.dispose()
            config["DATABASE_URL"] = args.database_url
        app = create_app(config)
        with app.app_context():
            upgrade(app)
            now = utcnow().replace(second=0, microsecond=0)
            period = (detection.HISTORY + max(detection.WINDOWS)).total_seconds() / 60
            count = int(args.per_day * period / DAY)

            def add(at):
                row = int(rng.integers(len(texts)))
                ticket = Ticket(subject=texts[row][:200], requester_name="Bench",
                                requester_email="bench@example.com", created_at=at)
                db.session.add(ticket)
                db.session.flush()
                services.add_to_group(ticket.id, at, vectors[row]).embedded_at = \
                    at + timedelta(seconds=5)  # embedded as it arrived

            started = time.perf_counter()
            for minute in sorted(rng.uniform(1, period, count), reverse=True):
                add(now - timedelta(minutes=float(minute)))
            db.session.commit()
            print(f"seeded {count} tickets in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)

            def timed(at) -> float:
                started = time.perf_counter()
                services.scan(at)
                db.session.rollback()  # the same minute again, as it was
                return (time.perf_counter() - started) * 1000

            full, incremental = [], []
            for minute in range(args.rounds):
                at = now + timedelta(minutes=minute)
                add(at - timedelta(seconds=30))
                db.session.commit()
                app.extensions.pop("surges_recent", None)  # a process with no copy yet
                full.append(timed(at))
                timed(at)  # the copy is now up to date: the next minute reads one row
                add(at + timedelta(seconds=30))
                db.session.commit()
                incremental.append(timed(at + timedelta(minutes=1)))
            assert recent.recent().full_reads == 1
            full_ms, inc_ms = statistics.median(full), statistics.median(incremental)
            print(f"RESULT scan_tickets={count} scan_full_ms={full_ms:.1f} "
                  f"scan_incremental_ms={inc_ms:.1f} ratio={full_ms / inc_ms:.1f} "
                  f"database={db.engine.dialect.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-day", type=float, default=300.0)
    parser.add_argument("--quiet-days", type=int, default=2)
    parser.add_argument("--cold", action="store_true",
                        help="one day of history instead of a week (the cold-start rule)")
    parser.add_argument("--scan-cost", action="store_true",
                        help="time the portal's per-minute scan instead (see above)")
    parser.add_argument("--database-url",
                        help="for --scan-cost: this PostgreSQL database (emptied first)")
    parser.add_argument("--rounds", type=int, default=15, help="for --scan-cost")
    args = parser.parse_args()
    texts, labels = load(args.data)
    vectors = embeddings(args.data, texts)
    if args.scan_cost:
        with single_threaded_blas():
            scan_cost(args, texts, vectors)
        return
    by_category: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_category[label].append(i)
    names = sorted(by_category)
    means = np.stack([detection.centroid(vectors[by_category[c]].sum(0)) for c in names])
    sims = means @ means.T
    np.fill_diagonal(sims, -1)
    close_category = names[int(np.argmax(sims.max(1)))]
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    with single_threaded_blas():
        totals = replay_runs(rng, labels, vectors, by_category, close_category, args)
    report(totals, args, texts, by_category, close_category, started)


def replay_runs(rng, labels, vectors, by_category, close_category, args):
    totals = {"normal": [], "sensitive": []}
    for run in range(args.runs):
        result = run_once(rng, labels, vectors, by_category, close_category, args, args.cold)
        for key, value in result.items():
            totals[key].append(value)
        print(f"run {run + 1}/{args.runs}: " + "; ".join(
            f"{k}: " + ", ".join(f"{n}={'-' if r is None else r[0]}" for n, r in v[0].items())
            + f", false={v[1]}, stray={v[2]}" for k, v in result.items()),
            file=sys.stderr, flush=True)
    return totals


def report(totals, args, texts, by_category, close_category, started):
    """One RESULT line per sensitivity, the issue's keys first."""
    print(f"# {len(texts)} texts, {len(by_category)} categories, runs={args.runs}, "
          f"seed={args.seed}, per_day={args.per_day:g}, close category={close_category}, "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    judged_days = len(SCENARIOS) + args.quiet_days  # days after the first week
    for key, runs in totals.items():
        def hits(name, runs=runs):
            return [r[0][name] for r in runs if r[0][name] is not None]
        s40 = hits("s40")
        every = [h for name, *_ in SCENARIOS for h in hits(name)]
        fields = [
            f"detect40={len(s40) / len(runs):.2f}",
            f"delay40_tickets="
            f"{statistics.median(h[0] for h in s40) if s40 else float('nan'):.0f}",
            f"precision={statistics.mean(h[1] for h in every) if every else 0:.2f}",
            f"grouped={statistics.mean(h[2] for h in every) if every else 0:.2f}",
            f"detect12={len(hits('s12')) / len(runs):.2f}",
            f"false_per_day={sum(r[1] for r in runs) / (len(runs) * args.quiet_days):.2f}",
            f"sensitivity={key}",
            f"detect40_within15={sum(h[0] <= 15 for h in s40) / len(runs):.2f}",
            f"delay40_max={max((h[0] for h in s40), default=float('nan'))}",
            f"surges_per_spike={statistics.mean(h[3] for h in every) if every else 0:.2f}",
            f"detect8_30m={len(hits('s8')) / len(runs):.2f}",
            f"detect20_6h={len(hits('s20_6h')) / len(runs):.2f}",
            f"detect_ramp={len(hits('ramp30_12h')) / len(runs):.2f}",
            f"detect_close={len(hits('close20')) / len(runs):.2f}",
            f"stray_per_day={sum(r[2] for r in runs) / (len(runs) * judged_days):.3f}",
        ]
        print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    main()
