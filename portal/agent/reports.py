"""Support metrics for a period, computed from recorded data (timeline events, ticket
timestamps, search and view logs).

Definitions (shown on the page too):
- created per day: tickets created; solved per day: "status → solved" events; reopened: "status
  solved → open" events.
- backlog: unsolved tickets (new, open, pending, on-hold) at the end of each day, walked back
  from today's count with the daily created / solved / reopened figures.
- first response time: from creation to the first public agent reply, for tickets first answered
  in the period; resolution time: creation to the final solve, for tickets solved in the period
  (calendar time; medians and 90th percentiles by nearest rank).
- first contact resolution: tickets solved in the period with exactly one public agent reply and
  never reopened, out of those solved with at least one reply (merged duplicates left out).
- reopen rate: reopen events / solve events in the period.
- escalation rate: tickets created in the period that were ever escalated.
- SLA attainment: targets met out of targets due — first responses given in the period and
  resolutions in the period.
- CSAT: good ratings out of all ratings given in the period.
- self-service ratio: article views per ticket created.

Unfiltered counts that would read every row of the period are read from day rows the database
keeps (ReportDay, ReportAgentDay, ReportSearchDay): a month costs the same at any size of history.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time as clock
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from itertools import chain

import numpy as np
from flask import current_app
from sqlalchemy import String, and_, cast, distinct, func, literal, or_, select
from sqlalchemy.orm import aliased

from portal import write_buffer
from portal.agent.planner import broad, unindexed
from portal.auth.models import User
from portal.converters import parse_id
from portal.db import utcnow
from portal.extensions import db
from portal.kb.models import Article, ArticleView, ArticleVote, ReportSearchDay, SearchLog
from portal.tickets.models import (
    Priority,
    QueueCount,
    ReportAgentDay,
    ReportDay,
    SuggestionEvent,
    Ticket,
    TicketEvent,
    is_open,
    reference_of,
)

MAX_DAYS = 366
READ_BEFORE_WINDOW = timedelta(hours=1)
CACHE_SECONDS = 60
CACHE_ENTRIES = 32
_cache_lock = threading.Lock()

log = logging.getLogger(__name__)


@dataclass
class ReportFilters:
    start: date
    end: date  # inclusive
    group_id: int | None = None
    assignee_id: int | None = None
    priority: Priority | None = None
    category_id: int | None = None

    @classmethod
    def from_args(cls, args, today: date | None = None) -> tuple[ReportFilters, list[str]]:
        """Parse the query string; bad values fall back to defaults and are reported."""
        today = today or utcnow().date()
        problems = []

        def parse_date(name: str, default: date) -> date:
            raw = args.get(name, "").strip()
            if not raw:
                return default
            try:
                return date.fromisoformat(raw)
            except ValueError:
                problems.append(f"“{raw[:20]}” is not a date (use YYYY-MM-DD).")
                return default

        end = parse_date("end", today)
        start = parse_date("start", end - timedelta(days=29))
        if start > end:
            problems.append("The start date is after the end date; they were swapped.")
            start, end = end, start
        if (end - start).days >= MAX_DAYS:
            problems.append(f"Periods are limited to {MAX_DAYS} days.")
            start = end - timedelta(days=MAX_DAYS - 1)
        priority = args.get("priority", "")
        return (
            cls(
                start=start,
                end=end,
                group_id=parse_id(args.get("group")),
                assignee_id=parse_id(args.get("assignee")),
                priority=Priority(priority) if priority in Priority._value2member_map_ else None,
                category_id=parse_id(args.get("category")),
            ),
            problems,
        )

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time())

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time())

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def args(self) -> dict:
        values = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "group": self.group_id,
            "assignee": self.assignee_id,
            "priority": self.priority.value if self.priority else None,
            "category": self.category_id,
        }
        return {k: v for k, v in values.items() if v is not None}

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (self.group_id, self.assignee_id, self.priority,
                                            self.category_id))

    def ticket_conditions(self) -> list:
        """The filters on tickets, checked inside the report's date-range index (every
        report index carries the filter columns). On SQLite the columns are written as
        expressions (`group_id + 0`), which no index on the column itself can serve: the
        sampled statistics rate `assignee_id = ?` at a thousand rows, so SQLite read the
        agent's whole history through ix_tickets_assignee_status and sorted it (a month's
        report for one agent at 1,000,000 tickets: 60-70 ms CPU a statement, against a few)."""
        return self.conditions_on(unindexed(Ticket.group_id), unindexed(Ticket.assignee_id),
                                  Ticket.priority, unindexed(Ticket.category_id))

    def conditions_on(self, group, assignee, priority, category) -> list:
        """The set filters, each compared with the given column."""
        pairs = ((group, self.group_id), (assignee, self.assignee_id),
                 (priority, self.priority), (category, self.category_id))
        return [column == value for column, value in pairs if value is not None]


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least pct% of values at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class DayRow:
    day: date
    created: int = 0
    solved: int = 0
    reopened: int = 0
    backlog: int = 0


@dataclass
class AgentRow:
    agent_id: int
    name: str
    solved: int = 0
    replies: int = 0
    open_now: int = 0
    frt_minutes: list[float] = field(default_factory=list)
    good: int = 0
    rated: int = 0

    @cached_property
    def frt_median(self) -> float | None:
        return median(self.frt_minutes)

    @property
    def csat(self) -> float | None:
        return rate(self.good, self.rated)


@dataclass
class Report:
    filters: ReportFilters
    days: list[DayRow]
    created: int
    solved: int
    reopened: int
    backlog: int
    frt_minutes: list[float]
    resolution_minutes: list[float]
    fcr: int
    fcr_base: int
    escalated: int
    sla_met: int
    sla_due: int
    csat_good: int
    csat_bad: int
    csat_comments: list[tuple[str, str, str, datetime]]  # reference, rating, comment, when
    agents: list[AgentRow]
    searches: int
    article_views: int
    impressions: int
    deflections: int
    no_result_searches: list[tuple[str, int]]
    not_helpful: list[tuple[int, str, int]]
    read_before_ticket: list[tuple[int, str, int]]

    @cached_property
    def frt_median(self):
        return median(self.frt_minutes)

    @cached_property
    def frt_p90(self):
        return percentile(self.frt_minutes, 90)

    @cached_property
    def resolution_median(self):
        return median(self.resolution_minutes)

    @cached_property
    def resolution_p90(self):
        return percentile(self.resolution_minutes, 90)

    @property
    def fcr_rate(self):
        return rate(self.fcr, self.fcr_base)

    @property
    def reopen_rate(self):
        return rate(self.reopened, self.solved)

    @property
    def escalation_rate(self):
        return rate(self.escalated, self.created)

    @property
    def sla_attainment(self):
        return rate(self.sla_met, self.sla_due)

    @property
    def csat(self):
        return rate(self.csat_good, self.csat_good + self.csat_bad)

    @property
    def self_service_ratio(self):
        return self.article_views / self.created if self.created else None

    def tables(self) -> dict[str, tuple[list[str], list[list]]]:
        """Every table on the page, for CSV export."""

        def num(value, digits=1):
            return "" if value is None else round(value, digits)

        return {
            "summary": (
                ["metric", "value"],
                [
                    ["tickets created", self.created],
                    ["tickets solved", self.solved],
                    ["backlog at end", self.backlog],
                    ["first response median (min)", num(self.frt_median)],
                    ["first response p90 (min)", num(self.frt_p90)],
                    ["resolution median (min)", num(self.resolution_median)],
                    ["resolution p90 (min)", num(self.resolution_p90)],
                    ["first contact resolution rate", num(self.fcr_rate, 4)],
                    ["reopen rate", num(self.reopen_rate, 4)],
                    ["escalation rate", num(self.escalation_rate, 4)],
                    ["SLA attainment", num(self.sla_attainment, 4)],
                    ["CSAT (share good)", num(self.csat, 4)],
                    ["KB searches", self.searches],
                    ["article views", self.article_views],
                    ["suggestion impressions", self.impressions],
                    ["deflections", self.deflections],
                    ["self-service ratio", num(self.self_service_ratio, 2)],
                ],
            ),
            "daily": (
                ["date", "created", "solved", "reopened", "backlog"],
                [[d.day.isoformat(), d.created, d.solved, d.reopened, d.backlog]
                 for d in self.days],
            ),
            "agents": (
                ["agent", "solved", "public replies", "open now", "first response median (min)",
                 "CSAT"],
                [[a.name, a.solved, a.replies, a.open_now, num(a.frt_median), num(a.csat, 4)]
                 for a in self.agents],
            ),
            "csat": (
                ["ticket", "rating", "comment", "rated at"],
                [[ref, rating, comment, when.isoformat(sep=" ", timespec="minutes")]
                 for ref, rating, comment, when in self.csat_comments],
            ),
            "no_results": (["search", "count"], [list(r) for r in self.no_result_searches]),
            "not_helpful": (
                ["article id", "title", "not helpful votes"], [list(r) for r in self.not_helpful]
            ),
            "read_before_ticket": (
                ["article id", "title", "tickets filed after reading"],
                [list(r) for r in self.read_before_ticket],
            ),
        }


def _day(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _event_ticket_conditions(f: ReportFilters) -> list:
    """Events of filtered tickets only: checked against the copies of the ticket's filters
    that each event carries (kept equal to the ticket's by the database), inside the report
    indexes of ticket_events, so a filtered report reads the same index range as an unfiltered
    one. (Looking each event's ticket up cost a table read per event of the period.)"""
    return f.conditions_on(TicketEvent.ticket_group_id, TicketEvent.ticket_assignee_id,
                           TicketEvent.ticket_priority, TicketEvent.ticket_category_id)


def _daily_volume(f: ReportFilters, start: datetime, until: datetime):
    """Tickets created (and of those, escalated since), solved and reopened per day from
    `start` to `until`, in two grouped single-pass queries (one over tickets, one over status
    events, with conditional counts)."""
    created_day = func.date(Ticket.created_at)
    # From the (few) escalation events since the start: a ticket is escalated after it was
    # created, so this is every escalation of a ticket created since the start.
    escalated_ids = select(TicketEvent.ticket_id).where(
        TicketEvent.kind == "escalation", TicketEvent.created_at >= start)
    created, escalated = {}, {}
    for d, n, n_escalated in db.session.execute(
        select(created_day, func.count(), func.count().filter(Ticket.id.in_(escalated_ids)))
        .where(Ticket.created_at >= start, Ticket.created_at < until, *f.ticket_conditions())
        .group_by(created_day)
    ):
        created[_day(d)], escalated[_day(d)] = n, n_escalated
    event_day = func.date(TicketEvent.created_at)
    solved, reopened = {}, {}
    for d, solves, reopens in db.session.execute(
        select(
            event_day,
            func.count().filter(TicketEvent.new_value == "solved"),
            func.count().filter(TicketEvent.new_value == "open", TicketEvent.old_value == "solved"),
        )
        .where(
            TicketEvent.kind == "status",
            TicketEvent.new_value.in_(("solved", "open")),
            # Only reopenings among the "-> open" events (most are new -> open on a first
            # reply), checked inside the index, before the per-ticket filter check.
            or_(TicketEvent.new_value == "solved", TicketEvent.old_value == "solved"),
            TicketEvent.created_at >= start,
            TicketEvent.created_at < until,
            *_event_ticket_conditions(f),
        )
        .group_by(event_day)
    ):
        solved[_day(d)], reopened[_day(d)] = solves, reopens
    return created, escalated, solved, reopened


def _daily_volume_kept(start: datetime, until: datetime):
    """_daily_volume for an unfiltered report, from the day rows the database keeps
    (ReportDay): a row per day instead of every ticket and status change of the period."""
    last = until.date() if until.time() != time() else until.date() - timedelta(days=1)
    created, escalated, solved, reopened = {}, {}, {}, {}
    for row in db.session.scalars(
        select(ReportDay).where(ReportDay.day >= start.date(), ReportDay.day <= last)
    ):
        created[row.day], escalated[row.day] = row.created, row.escalated
        solved[row.day], reopened[row.day] = row.solved, row.reopened
    return created, escalated, solved, reopened


def _count(*conditions, what=None) -> int:
    counted = Ticket.id if what is None else what
    return db.session.scalar(select(func.count(counted)).where(*conditions)) or 0


def _data_stamp() -> tuple:
    """The newest row of every table a report reads, in one statement of index look-ups.
    Every ticket change records a timeline event, so a new ticket, event, search, article
    view, suggestion event, vote or article edit changes the stamp."""
    newest = (
        func.max(Ticket.id), func.max(TicketEvent.id), func.max(SearchLog.id),
        func.max(ArticleView.id), func.max(SuggestionEvent.id), func.max(ArticleVote.updated_at),
        func.max(Article.updated_at),
    )
    return tuple(db.session.execute(select(*(select(m).scalar_subquery() for m in newest))).one())


def cached_report(f: ReportFilters) -> Report:
    """The report for these filters, reused for up to CACHE_SECONDS while nothing it reads
    has changed (per process; agents reload and export the same period over and over)."""
    cache: OrderedDict = current_app.extensions.setdefault("agent_report_cache", OrderedDict())
    key = tuple(sorted(f.args().items()))
    # This process's buffered article views and suggestion events first (other processes'
    # are at most VIEW_FLUSH_SECONDS old: portal/write_buffer.py).
    write_buffer.flush_all()
    stamp = _data_stamp()
    with _cache_lock:
        hit = cache.get(key)
    if hit and hit[0] == stamp and clock.monotonic() - hit[1] < CACHE_SECONDS:
        return hit[2]
    report = build_report(f)
    with _cache_lock:
        cache[key] = (stamp, clock.monotonic(), report)
        cache.move_to_end(key)
        while len(cache) > CACHE_ENTRIES:
            cache.popitem(last=False)
    return report


WARM_UP_DAY = date(2000, 1, 3)  # a period with no data: every range read is empty


def warm_up(app) -> None:
    """Compile the report's statements, unfiltered and with each filter (gunicorn's master,
    before forking): compiling them was most of a worker's first report (70 of 108 ms CPU at
    100,000 tickets), paid again by the first report with each filter. Never raises."""
    try:
        with app.app_context():
            for filters in ({}, {"group_id": 0}, {"assignee_id": 0},
                            {"priority": Priority.URGENT}, {"category_id": 0}):
                build_report(ReportFilters(start=WARM_UP_DAY, end=WARM_UP_DAY, **filters),
                             now=datetime.combine(WARM_UP_DAY, time(12)))
            db.session.rollback()
    except Exception:  # a server that cannot warm up still serves
        log.exception("report warm-up failed")


def build_report(f: ReportFilters, now: datetime | None = None) -> Report:
    now = now or utcnow()
    start, end = f.start_at, f.end_at
    tc = f.ticket_conditions()

    # Read up to now: the days after the period feed the backlog walk below.
    volume = _daily_volume if f.filtered else (lambda _f, *period: _daily_volume_kept(*period))
    created, escalated_per_day, solved, reopened = volume(f, start, max(end, now))

    def after_period(per_day: dict[date, int]) -> int:
        """Removes the days after the period from `per_day`; returns their total."""
        later = [d for d in per_day if d > f.end]
        return sum(per_day.pop(d) for d in later)

    # Backlog: today's count, walked back through the days after the period and then in it.
    # Filtered: from the open tickets' partial index, which carries the filters (as a bare
    # condition SQLite read the table row of every open ticket); unfiltered, the sum of the
    # counts the database keeps for the queue's tabs (QueueCount: exact at every moment;
    # counting the open tickets grew with the backlog, 8 ms at a million tickets).
    backlog_now = _count(broad(is_open()), *tc) if f.filtered else db.session.scalar(
        select(func.coalesce(func.sum(QueueCount.tickets), 0)))
    backlog = (
        backlog_now - after_period(created) + after_period(solved) - after_period(reopened)
    )
    days = [
        DayRow(d, created.get(d, 0), solved.get(d, 0), reopened.get(d, 0)) for d in f.days
    ]
    running = backlog
    for row in reversed(days):
        row.backlog = max(running, 0)
        running = running - row.created + row.solved - row.reopened

    # Durations are computed by the database: converting thousands of timestamps in Python
    # would dominate the page time. Each period's tickets are read once, as numbers only
    # (agent, minutes and 0/1 flags), straight into numpy, which sorts the durations and
    # counts the flags (a second, grouped pass over the same index range for the counts cost
    # more than carrying them: 10-30 ms each at a million tickets).
    in_frt = (Ticket.first_response_at >= start, Ticket.first_response_at < end, *tc)
    first_due = Ticket.first_response_due_at.is_not(None)
    first = _table(select(
        func.coalesce(Ticket.assignee_id, 0),
        _minutes(Ticket.created_at, Ticket.first_response_at),
        first_due,
        and_(first_due, Ticket.first_response_breached.is_(True)),
    ).where(*in_frt))
    frt, frt_by_agent = _sorted_durations(first[:, :2])
    first_targets, first_missed = int(first[:, 2].sum()), int(first[:, 3].sum())

    in_solved = (
        Ticket.solved_at >= start,  # set while solved or closed, cleared on reopen
        Ticket.solved_at < end,
        Ticket.merged_into_id.is_(None),  # a merged duplicate was not resolved by itself
        *tc,
    )
    resolution_due = Ticket.resolution_due_at.is_not(None)
    solves = _table(select(
        func.coalesce(Ticket.assignee_id, 0),
        _minutes(Ticket.created_at, Ticket.solved_at),
        resolution_due,
        and_(resolution_due, Ticket.resolution_breached.is_(True)),
        Ticket.public_reply_count >= 1,
        and_(Ticket.public_reply_count == 1, Ticket.reopen_count == 0),
    ).where(*in_solved))
    resolution = np.sort(solves[:, 1]).tolist()
    resolution_targets, resolution_missed, answered, fcr = (
        int(solves[:, i].sum()) for i in range(2, 6))
    solvers, solved_counts = np.unique(solves[:, 0].astype(np.int64), return_counts=True)
    solved_by_agent = {agent: n for agent, n in zip(solvers.tolist(), solved_counts.tolist(),
                                                    strict=True) if agent}

    created_total = sum(created.values())
    escalated = sum(n for d, n in escalated_per_day.items() if d <= f.end)

    rated = [
        Ticket.csat_at >= start, Ticket.csat_at < end, Ticket.csat_rating.is_not(None), *tc
    ]
    csat_by_agent = db.session.execute(
        select(Ticket.assignee_id, func.count(), func.count().filter(Ticket.csat_rating == "good"))
        .where(*rated)
        .group_by(Ticket.assignee_id)
    ).all()
    good = sum(r[2] for r in csat_by_agent)
    comments = [
        (reference_of(ticket_id), rating, comment, when)
        for ticket_id, rating, comment, when in db.session.execute(
            select(Ticket.id, Ticket.csat_rating, Ticket.csat_comment, Ticket.csat_at)
            .where(*rated, Ticket.csat_comment != "")
            .order_by(Ticket.csat_at.desc())
            .limit(50)
        )
    ]

    agents = _agent_rows(f, frt_by_agent, solved_by_agent, csat_by_agent)

    return Report(
        filters=f,
        days=days,
        created=created_total,
        solved=sum(solved.values()),
        reopened=sum(reopened.values()),
        backlog=max(backlog, 0),
        frt_minutes=frt,
        resolution_minutes=resolution,
        fcr=fcr,
        fcr_base=answered,
        escalated=escalated,
        sla_met=first_targets - first_missed + resolution_targets - resolution_missed,
        sla_due=first_targets + resolution_targets,
        csat_good=good,
        csat_bad=sum(r[1] for r in csat_by_agent) - good,
        csat_comments=comments,
        agents=agents,
        **_self_service(f),
    )


TABLE_CHUNK = 2048  # rows fetched at a time by _table


def _table(stmt) -> np.ndarray:
    """The statement's rows (numbers and 0/1 flags, as for _rows; 0 for a missing agent) as
    a float64 table. Fetched a chunk at a time, so the row tuples of a chunk are freed
    before the next is read: fetched at once, the 160,000 rows of a month at a million
    tickets grew the heap by tens of megabytes and set off ~200 garbage collections (and,
    in a process whose objects are not frozen, now and then a full one: 90 ms)."""
    width = len(stmt.selected_columns)
    result = db.session.connection().execute(stmt)
    try:
        chunks = [np.fromiter(chain.from_iterable(rows), dtype=np.float64,
                              count=width * len(rows))
                  for rows in iter(lambda: result.cursor.fetchmany(TABLE_CHUNK), [])]
    finally:
        result.close()
    return np.concatenate(chunks or [np.empty(0)]).reshape(-1, width)


def _sorted_durations(table: np.ndarray) -> tuple[list[float], dict[int, list[float]]]:
    """From a table of (agent id or 0 for nobody, minutes): every duration in order, and
    each agent's.

    Sorted once here: the medians and percentiles then sort sorted lists, which costs one
    pass (each sorted 80,000 durations again, on every rendering of the cached report too:
    100 ms). Sorted and grouped by numpy: in Python the 80,000 durations of a month at a
    million tickets cost 60 ms to sort and group."""
    agents, minutes = table[:, 0].astype(np.int64), table[:, 1]
    order = np.lexsort((minutes, agents))
    agents, by_agent_minutes = agents[order], minutes[order]
    ids, starts = np.unique(agents, return_index=True)
    parts = np.split(by_agent_minutes, starts[1:]) if len(ids) else []
    by_agent = {agent: part.tolist()
                for agent, part in zip(ids.tolist(), parts, strict=True) if agent}
    return np.sort(minutes).tolist(), by_agent


def _agent_rows(f: ReportFilters, frt_by_agent: dict[int, list[float]],
                solved_by_agent: dict[int, int], csat_by_agent) -> list[AgentRow]:
    start, end = f.start_at, f.end_at
    rows: dict[int, AgentRow] = {}

    def row(agent_id: int) -> AgentRow:
        if agent_id not in rows:
            rows[agent_id] = AgentRow(agent_id, "")
        return rows[agent_id]

    for agent_id, minutes in frt_by_agent.items():
        row(agent_id).frt_minutes = minutes
    for agent_id, count in solved_by_agent.items():
        row(agent_id).solved = count
    for agent_id, total, good in csat_by_agent:
        if agent_id is not None:
            row(agent_id).rated = total
            row(agent_id).good = good
    replies = db.session.execute(
        select(TicketEvent.actor_id, func.count())
        .where(
            TicketEvent.kind == "reply",
            TicketEvent.created_at >= start,
            TicketEvent.created_at < end,
            TicketEvent.actor_id.is_not(None),
            *_event_ticket_conditions(f),
        )
        .group_by(TicketEvent.actor_id)
    ).all() if f.filtered else db.session.execute(
        select(ReportAgentDay.actor_id, func.sum(ReportAgentDay.replies))
        .where(ReportAgentDay.day >= f.start, ReportAgentDay.day <= f.end)
        .group_by(ReportAgentDay.actor_id)
        .having(func.sum(ReportAgentDay.replies) > 0)
    ).all()
    # `> 0` in assignee order: read along ix_tickets_open_assignee_due (the open tickets
    # only). As `IS NOT NULL`, SQLite chose a status index and read the table row of every
    # open ticket (350 ms CPU at 1,000,000 tickets, against 8).
    open_now = db.session.execute(
        select(Ticket.assignee_id, func.count())
        .where(broad(is_open()), Ticket.assignee_id > 0, *f.ticket_conditions())
        .group_by(Ticket.assignee_id)
        .order_by(Ticket.assignee_id)
    ).all()
    users = {
        u.id: u
        for u in db.session.scalars(
            select(User).where(
                User.id.in_({a for a, _ in replies} | {a for a, _ in open_now} | set(rows))
            )
        )
    }
    for actor_id, count in replies:
        if actor_id in users and users[actor_id].is_agent:
            row(actor_id).replies = count
    for assignee_id, count in open_now:
        row(assignee_id).open_now = count
    for agent_id, agent_row in rows.items():
        agent_row.name = users[agent_id].name if agent_id in users else f"User {agent_id}"
    return sorted(rows.values(), key=lambda r: (-r.solved, r.name))


def _rows(stmt) -> list:
    """Plain DB-API tuples, read from the cursor: building a SQLAlchemy Row per ticket cost
    more than the query (a month at 1,000,000 tickets, 78,000 rows: 0.4-0.9 s against
    0.1-0.25 s). So the selected values must need no conversion: numbers, and flags used
    only for their truth (SQLite gives 0/1)."""
    result = db.session.connection().execute(stmt)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _minutes(start, end):
    """`end - start` in minutes (to the second), computed in SQL; a float on every database
    (on PostgreSQL the numeric epoch divided by a float parameter is a double)."""
    if db.engine.dialect.name == "sqlite":
        return func.round((func.julianday(end) - func.julianday(start)) * 86400.0) / 60.0
    return func.extract("epoch", end - start) / 60.0


def _shifted(column, delta: timedelta):
    """`column + delta` in SQL; SQLite keeps datetimes as text, so it needs datetime()."""
    if db.engine.dialect.name == "sqlite":
        return func.datetime(column, f"{int(delta.total_seconds()):+d} seconds")
    return column + delta


def _self_service(f: ReportFilters) -> dict:
    start, end = f.start_at, f.end_at
    # Searches from the day rows the database keeps (ReportSearchDay): the period's days are
    # whole days, so its rows hold exactly the searches of the period.
    in_period = (ReportSearchDay.day >= f.start, ReportSearchDay.day <= f.end)
    searches = db.session.scalar(
        select(func.coalesce(func.sum(ReportSearchDay.searches), 0)).where(*in_period))
    views = _count(ArticleView.created_at >= start, ArticleView.created_at < end,
                   what=ArticleView.id)
    suggestions = dict(
        db.session.execute(
            select(SuggestionEvent.kind, func.count())
            .where(SuggestionEvent.created_at >= start, SuggestionEvent.created_at < end)
            .group_by(SuggestionEvent.kind)
        ).all()
    )
    no_results_n = func.sum(ReportSearchDay.no_results)
    no_results = db.session.execute(
        select(ReportSearchDay.normalized, no_results_n)
        .where(*in_period, ReportSearchDay.no_results > 0)
        .group_by(ReportSearchDay.normalized)
        .order_by(no_results_n.desc(), ReportSearchDay.normalized)
        .limit(10)
    ).all()
    not_helpful = db.session.execute(
        select(Article.id, Article.title, func.count(ArticleVote.id))
        .join(Article, Article.id == ArticleVote.article_id)
        .where(ArticleVote.helpful.is_(False), ArticleVote.updated_at >= start,
               ArticleVote.updated_at < end)
        .group_by(Article.id, Article.title)
        .order_by(func.count(ArticleVote.id).desc(), Article.id)
        .limit(10)
    ).all()
    viewed = aliased(ArticleView)
    viewer_key = literal("u:", String).concat(cast(Ticket.requester_id, String))
    read_before = db.session.execute(
        select(Article.id, Article.title, func.count(distinct(Ticket.id)))
        .select_from(Ticket)
        .join(
            viewed,
            and_(
                viewed.viewer_key == viewer_key,
                viewed.created_at <= Ticket.created_at,
                viewed.created_at >= _shifted(Ticket.created_at, -READ_BEFORE_WINDOW),
            ),
        )
        .join(Article, Article.id == viewed.article_id)
        .where(Ticket.created_at >= start, Ticket.created_at < end,
               Ticket.requester_id.is_not(None), *f.ticket_conditions())
        .group_by(Article.id, Article.title)
        .order_by(func.count(distinct(Ticket.id)).desc(), Article.id)
        .limit(10)
    ).all()
    return {
        "searches": searches,
        "article_views": views,
        "impressions": suggestions.get("impression", 0),
        "deflections": suggestions.get("deflected", 0),
        "no_result_searches": [tuple(r) for r in no_results],
        "not_helpful": [tuple(r) for r in not_helpful],
        "read_before_ticket": [tuple(r) for r in read_before],
    }
