"""The agents' ticket queue: named views, filters, search, sort and paging.

Each page is two indexed queries (a count and the page, with requester, assignee, group and
category joined in and tags loaded in one extra IN query), however many tickets there are.
The page's tickets are rows of the columns the queue shows (`QueueTicket`), not ORM entities:
building 50 tickets with their assignee, group, category and tags through the identity map was
a fifth of the page's CPU.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import (
    Date,
    DateTime,
    Select,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from portal.agent import search
from portal.agent.planner import broad
from portal.agent.stale import stale_condition
from portal.auth.models import User
from portal.converters import parse_id, parse_page
from portal.db import utcnow
from portal.extensions import db
from portal.tickets.models import (
    REFERENCE_OFFSET,
    Group,
    Priority,
    QueueCount,
    QueueDueDay,
    Status,
    Tag,
    Ticket,
    TicketCategory,
    TicketType,
    is_open,
    reference_of,
    ticket_tags,
)
from portal.tickets.sla import DUE_SOON

PAGE_SIZE = 50
COUNT_CAP = 1000  # a filtered view's count stops here: "1000+ tickets"
_statements_lock = threading.Lock()
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RECENTLY_SOLVED = timedelta(days=7)

VIEWS = {
    "unassigned": "Unassigned",
    "mine": "My open tickets",
    "open": "All open",
    "pending": "Awaiting customer",
    "due": "Due soon or breached",
    "stale": "Stale",
    "solved": "Recently solved",
    "all": "All tickets",
}

SORTS = {
    "due": "SLA due",
    "priority": "Priority",
    "updated": "Last update",
    "created": "Newest",
}

PRIORITY_RANK = case(
    {Priority.URGENT.value: 0, Priority.HIGH.value: 1, Priority.NORMAL.value: 2},
    value=Ticket.priority,
    else_=3,
)


@dataclass
class QueueQuery:
    """What the agent asked for; built from the query string, invalid values ignored."""

    view: str = "open"
    sort: str = "due"
    status: str = ""
    priority: str = ""
    type: str = ""
    category_id: int | None = None
    group_id: int | None = None
    assignee_id: int | None = None  # 0 means unassigned
    tag: str = ""
    q: str = ""
    page: int = 1
    args: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> QueueQuery:
        query = cls(
            view=args.get("view") if args.get("view") in VIEWS else "open",
            sort=args.get("sort") if args.get("sort") in SORTS else "due",
            status=args.get("status") if args.get("status") in Status._value2member_map_ else "",
            priority=(
                args.get("priority") if args.get("priority") in Priority._value2member_map_ else ""
            ),
            type=args.get("type") if args.get("type") in TicketType._value2member_map_ else "",
            category_id=parse_id(args.get("category")),
            group_id=parse_id(args.get("group")),
            assignee_id=parse_id(args.get("assignee")),
            tag=args.get("tag", "").strip()[:60],
            q=args.get("q", "").strip()[:200],
            page=parse_page(args.get("page")),
        )
        query.args = {
            key: value
            for key, value in {
                "view": query.view,
                "sort": query.sort,
                "status": query.status,
                "priority": query.priority,
                "type": query.type,
                "category": query.category_id,
                "group": query.group_id,
                "assignee": query.assignee_id,
                "tag": query.tag,
                "q": query.q,
            }.items()
            if value not in ("", None)
        }
        return query

    @property
    def filtered(self) -> bool:
        return any(
            (self.status, self.priority, self.type, self.tag, self.q)
        ) or any(x is not None for x in (self.category_id, self.group_id, self.assignee_id))


@dataclass(slots=True)
class QueueTicket:
    """One row of the queue: what the table shows and what `sla_state` reads."""

    id: int
    subject: str
    requester_name: str
    priority: Priority
    status: Status
    escalated_at: datetime | None
    last_activity_at: datetime
    first_response_at: datetime | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    sla_paused_at: datetime | None
    first_response_breached: bool
    resolution_breached: bool
    assignee_name: str | None
    group_name: str | None
    category_name: str | None
    tags: list[str] = field(default_factory=list)  # names, alphabetical

    @property
    def reference(self) -> str:
        return reference_of(self.id)


_Assignee = aliased(User)
_ROW_COLUMNS = (
    Ticket.id, Ticket.subject, Ticket.requester_name, Ticket.priority, Ticket.status,
    Ticket.escalated_at, Ticket.last_activity_at, Ticket.first_response_at,
    Ticket.first_response_due_at, Ticket.resolution_due_at, Ticket.sla_paused_at,
    Ticket.first_response_breached, Ticket.resolution_breached,
    _Assignee.name, Group.name, TicketCategory.name,
)


def _with_tags(rows) -> list[QueueTicket]:
    """The page's tickets with their tags: on PostgreSQL an array column of each row (its
    tag links are found by index; a statement less, each being a round trip to a server that
    shares the CPU), elsewhere read in one IN query (not joined: SQLite would then walk the
    tag links first, 35 ms a page at 100k tickets)."""
    if _tags_in_rows():
        return [QueueTicket(*row[:len(_ROW_COLUMNS)], tags=list(row[len(_ROW_COLUMNS)]))
                for row in rows]
    tickets = [QueueTicket(*row[:len(_ROW_COLUMNS)]) for row in rows]
    if tickets:
        by_id = {t.id: t for t in tickets}
        for ticket_id, name in db.session.execute(_PAGE_TAGS, {"ids": list(by_id)}):
            by_id[ticket_id].tags.append(name)
    return tickets


def _tags_in_rows() -> bool:
    return db.engine.dialect.name == "postgresql"


_PAGE_TAGS = (select(ticket_tags.c.ticket_id, Tag.name)
              .join(Tag, Tag.id == ticket_tags.c.tag_id)
              .where(ticket_tags.c.ticket_id.in_(bindparam("ids", expanding=True)))
              .order_by(Tag.name))
_ROW_TAGS = func.array(select(Tag.name).join(ticket_tags, ticket_tags.c.tag_id == Tag.id)
                       .where(ticket_tags.c.ticket_id == Ticket.id).order_by(Tag.name)
                       .scalar_subquery())


@dataclass
class QueuePage:
    tickets: list[QueueTicket]
    total: int
    page: int
    pages: int
    more: bool = False  # there are more than `total` tickets (a filtered count stops there)


# In due order these are read by walking ix_tickets_open_due: their conditions are then marked
# broad (see planner.broad; as bare conditions SQLite picked the tickets through a status index
# and sorted them). In other orders no index gives the order, and the status index picks them.
WALKING_VIEWS = ("open", "unassigned", "mine", "due")


def _view_condition(view: str, agent: User, now: datetime, walking: bool = False):
    checked = broad if walking else (lambda condition: condition)
    open_now = checked(is_open())
    if view == "unassigned":
        return and_(Ticket.assignee_id.is_(None), open_now)
    if view == "mine":
        return and_(Ticket.assignee_id == agent.id, open_now)
    if view == "pending":
        return Ticket.status == Status.PENDING
    if view == "due":
        # Checked while walking the unsolved tickets in due order: ix_tickets_open_due
        # carries these columns. (Picking them through two indexes and sorting read 90,000
        # table rows at 1,000,000 tickets.)
        soon = now + DUE_SOON
        working = Ticket.status.in_((Status.NEW, Status.OPEN, Status.ON_HOLD))
        return and_(
            open_now,
            checked(working),
            checked(or_(
                Ticket.resolution_due_at <= soon,
                and_(Ticket.first_response_at.is_(None), Ticket.first_response_due_at <= soon),
            )),
        )
    if view == "stale":
        return stale_condition()
    if view == "solved":
        # The week's solved_at range is the selective part and gives the order; the status,
        # written as an expression, is checked on those rows only (as a bare column SQLite
        # read every solved ticket of the history through the status index, then sorted).
        return and_(
            Ticket.status.concat("").in_((Status.SOLVED.value, Status.CLOSED.value)),
            Ticket.solved_at >= now - RECENTLY_SOLVED,
        )
    if view == "all":
        return None
    return open_now


def _search_condition(text: str, narrowed: bool,
                      in_order: bool) -> tuple[ColumnElement[bool], search.Matches | None]:
    """A reference finds that ticket; other text is looked for, word by word, in the subject,
    the requester's name and email and every message body, through the full-text indexes.
    With the matches of a text search, as far as they were read."""
    ticket_id = Ticket.id_from_reference(text)
    if ticket_id is not None:
        return Ticket.id == ticket_id, None
    if EMAIL.match(text):  # a whole address: that requester's tickets, from the index
        return Ticket.requester_email.in_({text, text.lower()}), None
    matches = search.text_condition(text, narrowed=narrowed, in_order=in_order)
    number = parse_id(text)
    if number is not None and number > REFERENCE_OFFSET:  # a bare reference number
        return or_(Ticket.id == number - REFERENCE_OFFSET,
                   false() if matches is None else matches.condition), None
    return (false(), None) if matches is None else (matches.condition, matches)


PROBED_PAGES = 2  # a tag is checked ticket by ticket on a walk this far (search.ids_condition)


def build_query(query: QueueQuery, agent: User,
                now: datetime | None = None) -> tuple[Select, search.Matches | None]:
    """The view's tickets, with the matches of its tag or search when they alone are the
    view's tickets (all tickets, no other filter): their count is then the view's."""
    now = now or utcnow()
    stmt = select(Ticket)
    conditions = []
    # An unsolved view in due order walks ix_tickets_open_due, which carries the filters:
    # each is checked there (planner.broad), not looked up through its own index.
    walking = query.view in WALKING_VIEWS and query.sort == "due"
    checked = broad if walking else (lambda condition: condition)
    view_condition = _view_condition(query.view, agent, now, walking)
    if view_condition is not None:
        conditions.append(view_condition)
    if query.status:
        conditions.append(checked(Ticket.status == Status(query.status)))
    if query.priority:
        conditions.append(checked(Ticket.priority == Priority(query.priority)))
    if query.type:
        conditions.append(checked(Ticket.type == TicketType(query.type)))
    if query.category_id is not None:
        conditions.append(checked(Ticket.category_id == query.category_id))
    if query.group_id is not None:
        conditions.append(checked(Ticket.group_id == query.group_id))
    if query.assignee_id is not None:
        conditions.append(checked(
            Ticket.assignee_id.is_(None) if query.assignee_id == 0
            else Ticket.assignee_id == query.assignee_id
        ))
    alone = view_condition is None and len(conditions) == 0 and not (query.tag and query.q)
    # How a tag's or a search's matches are checked (search.ids_condition): all tickets can
    # be walked in due order (ix_tickets_due) or by id.
    narrowed = view_condition is not None
    in_order = query.sort in ("due", "created")
    matches = None
    if query.tag:
        tag_id = select(Tag.id).where(Tag.name == query.tag.lower()).scalar_subquery()
        matches = search.ids_condition(
            select(ticket_tags.c.ticket_id).where(ticket_tags.c.tag_id == tag_id),
            narrowed=narrowed, in_order=in_order,
            probe=exists().where(ticket_tags.c.ticket_id == Ticket.id,
                                 ticket_tags.c.tag_id == tag_id)
            if alone and query.page <= PROBED_PAGES else None,
        )
        conditions.append(matches.condition)
    if query.q:
        condition, matches = _search_condition(query.q, narrowed, in_order)
        conditions.append(condition)
    return stmt.where(*conditions), matches if alone else None


def _ordering(sort: str, view: str) -> tuple:
    # SLA due: tickets without a due time go last (see _parts).
    return tuple(key.desc() if descending else key for key, descending in
                 zip(_sort_keys(sort, view), _directions(sort, view), strict=True))


def _parts(query: QueueQuery) -> list[tuple] | None:
    """The order of the page as parts, each read in order from an index and only as far as
    the page reaches, then put one after the other: (condition, order) pairs; None when the
    order is one sort.

    Sorted as one key ("no due time", due, id), every matching ticket is read and sorted (the
    unsolved tickets of the whole history). In SLA-due order the parts are the tickets with a
    due time (ix_tickets_open_due / ix_tickets_open_assignee_due, ix_tickets_due for all
    tickets) and those without; by priority, the same two for each priority in turn, from
    ix_tickets_open_due, which carries the priority (the unsolved views only)."""
    dated = (Ticket.resolution_due_at.is_not(None), (Ticket.resolution_due_at, Ticket.id))
    undated = (Ticket.resolution_due_at.is_(None), (Ticket.id,))
    # The stale view's tickets are few and flagged in an index of their own (stale_at): they
    # are picked there and sorted. Walked in due order, every ticket of the history was read
    # to find them (an empty view: 0.96 s at 100,000 tickets, 6.4 s at 1,000,000).
    if query.sort == "due" and query.view not in ("solved", "stale"):
        return [dated, undated]
    if query.sort == "priority" and query.view in WALKING_VIEWS:
        return [(and_(broad(Ticket.priority == priority), condition), order)
                for priority in PRIORITIES_IN_ORDER if query.priority in ("", priority)
                for condition, order in (dated, undated)]
    return None


PRIORITIES_IN_ORDER = (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW)


def _listed(stmt: Select, query: QueueQuery, limit: int):
    """The first `limit` tickets in page order: a select of their ids and sort keys (k0, k1...),
    and the keys' order."""
    keys = _sort_keys(query.sort, query.view)
    columns = (Ticket.id, *(key.label(f"k{i}") for i, key in enumerate(keys)))
    parts = _parts(query)
    if parts is None:
        listed = stmt.with_only_columns(*columns).order_by(
            *_ordering(query.sort, query.view)).limit(limit)
    else:
        listed = union_all(*(
            select(stmt.with_only_columns(*columns).where(condition).order_by(*order)
                   .limit(limit).subquery())
            for condition, order in parts
        ))
    return listed, list(zip(range(len(keys)), _directions(query.sort, query.view), strict=True))


def _in_order(selectable, directions) -> list:
    return [selectable.c[f"k{i}"].desc() if descending else selectable.c[f"k{i}"]
            for i, descending in directions]


def _page_ids(stmt: Select, query: QueueQuery, ordering, offset: int) -> Select:
    if _parts(query) is None:
        return (stmt.with_only_columns(Ticket.id).order_by(*ordering).limit(PAGE_SIZE)
                .offset(offset))
    listed, directions = _listed(stmt, query, offset + PAGE_SIZE)
    listed = listed.subquery()
    return (select(listed.c.id).order_by(*_in_order(listed, directions))
            .limit(PAGE_SIZE).offset(offset))


def fetch_page(
    query: QueueQuery, agent: User, now: datetime | None = None, counts: dict | None = None
) -> QueuePage:
    """The page in one statement: the ids are picked (and sorted) inside an index in a
    subquery, so only the page's rows are read and joined.

    A view with no filter has the count of its tab: taken from `counts` (or view_counts'
    cache) instead of counted again, since counting grows with the tickets in the view (the
    open tickets of a million-ticket history: 15-90 ms a page). A filtered view is counted,
    with the count riding along as a scalar subquery (a round trip less on PostgreSQL),
    up to COUNT_CAP tickets (or the current page's end): "1000+" costs the same at any size
    of history, where an exact count of a common word or filter read every match. Its
    tickets are picked once (see _candidates) and both the count and the page are read from
    that list. A page past the end (no rows) asks for the count alone to clamp."""
    known_total = None
    if not query.filtered and query.view in COUNTED_VIEWS:
        known_total = (counts or view_counts(agent, now))[query.view]
    page = max(query.page, 1)
    if known_total is not None:
        page = min(page, max(1, -(-known_total // PAGE_SIZE)))
    reach = max(COUNT_CAP, page * PAGE_SIZE)
    statement, count, counted = _page_statements(query, agent, now, page,
                                                 with_count=known_total is None)
    rows = db.session.execute(statement).all()
    if not rows and page > 1:
        total = counted if counted is not None else db.session.scalar(count) or 0
        last = max(1, -(-total // PAGE_SIZE))
        return fetch_page(replace(query, page=last), agent, now) if total else QueuePage(
            tickets=[], total=0, page=1, pages=1)
    if known_total is not None:
        total = known_total
    else:
        total = counted if counted is not None else (rows[0][-1] if rows else 0)
    more = known_total is None and total > reach
    total = min(total, reach) if more else total
    return QueuePage(tickets=_with_tags(rows), total=total, page=page,
                     pages=max(1, -(-total // PAGE_SIZE)), more=more)


def _candidates(stmt: Select, query: QueueQuery, limit: int):
    """The first `limit` tickets of a filtered view in page order, as a materialised CTE
    (id and sort keys) with the order to read it in; the count and the page both read it.

    Counting and paging separately evaluated the filters twice, or three times with the two
    halves of the due order: for a common word, the text index's list of matches (185,000
    tickets for "printer" at a million, 28 ms each time) was built once for each."""
    listed, directions = _listed(stmt, query, limit)
    candidates = listed.cte("candidates").prefix_with("MATERIALIZED")
    return candidates, _in_order(candidates, directions)


def _sort_keys(sort: str, view: str) -> tuple:
    """The values _ordering sorts by, as plain columns (its direction in _directions)."""
    if sort == "priority":
        return (PRIORITY_RANK, Ticket.resolution_due_at.is_(None), Ticket.resolution_due_at,
                Ticket.id)
    if sort == "updated":
        return (Ticket.last_activity_at, Ticket.id)
    if sort == "created":
        # Stale tickets are few, picked through the stale_at index and sorted: as a bare
        # column the id made SQLite walk every ticket newest first (450 ms at 1,000,000).
        return (Ticket.id + 0,) if view == "stale" else (Ticket.id,)
    if view == "solved":
        return (Ticket.solved_at, Ticket.id)
    return (Ticket.resolution_due_at.is_(None), Ticket.resolution_due_at, Ticket.id)


def _directions(sort: str, view: str) -> tuple[bool, ...]:
    """Per sort key: descending?"""
    if sort in ("updated", "created") or (sort == "due" and view == "solved"):
        return (True,) * len(_sort_keys(sort, view))
    return (False,) * len(_sort_keys(sort, view))


CLOCK_VIEWS = ("due", "solved")  # their conditions hold the time of the request
STATEMENTS_CACHE_SIZE = 256


def _page_statements(query: QueueQuery, agent: User, now: datetime | None, page: int,
                     with_count: bool) -> tuple[Select, Select, int | None]:
    """The page's statement and its count, built once per process for each view, sort,
    filter and page that neither the clock nor a tag or text search goes into (those read
    their matches while the statement is built: search.ids_condition): building them, and
    SQLAlchemy's cache key of a new statement object, was a sixth of the queue page; a reused
    statement object keeps its key.

    Third, the view's count when a tag's or search's matches alone are the view's tickets and
    were read far enough (as a count statement would give it: up to the page's reach, and
    one more when there are more). The page then walks its order only as far as the page
    goes, as an unfiltered one: picking the first thousand matches for the count read 20
    times as many tickets (a tag on 2% of them), and counting them costs nothing more."""
    key = None
    if not query.q and not query.tag and query.view not in CLOCK_VIEWS:
        key = (tuple(query.args.items()), page, with_count,
               agent.id if query.view == "mine" else None)
        cache: OrderedDict = current_app.extensions.setdefault("agent_queue_statements",
                                                               OrderedDict())
        with _statements_lock:
            hit = cache.get(key)
            if hit is not None:
                cache.move_to_end(key)
                return (*hit, None)
    stmt, matches = build_query(query, agent, now)
    ordering = _ordering(query.sort, query.view)
    reach = max(COUNT_CAP, page * PAGE_SIZE)
    offset = (page - 1) * PAGE_SIZE
    counted = None
    if matches is not None and (not matches.more or matches.count >= reach):
        counted = reach + 1 if matches.more else matches.count
    if query.filtered and counted is None:
        candidates, order = _candidates(stmt, query, reach + 1)
        count = select(func.count()).select_from(candidates)
        page_ids = select(candidates.c.id).order_by(*order).limit(PAGE_SIZE).offset(offset)
    else:
        count = select(func.count()).select_from(
            stmt.with_only_columns(Ticket.id).order_by(None).limit(reach + 1).subquery())
        page_ids = _page_ids(stmt, query, ordering, offset)
    columns = (*_ROW_COLUMNS, _ROW_TAGS) if _tags_in_rows() else _ROW_COLUMNS
    if with_count and counted is None:
        columns = (*columns, count.scalar_subquery())
    statement = (
        select(*columns)
        .outerjoin(_Assignee, _Assignee.id == Ticket.assignee_id)
        .outerjoin(Group, Group.id == Ticket.group_id)
        .outerjoin(TicketCategory, TicketCategory.id == Ticket.category_id)
        .where(Ticket.id.in_(page_ids.scalar_subquery()))
        .order_by(*ordering)
    )
    if key is not None:
        with _statements_lock:
            cache[key] = (statement, count)
            while len(cache) > STATEMENTS_CACHE_SIZE:
                cache.popitem(last=False)
    return statement, count, counted


def view_counts(agent: User, now: datetime | None = None) -> dict[str, int]:
    """Ticket counts for the view tabs.

    Five are sums over the few dozen rows the database keeps (QueueCount, migration
    scale5_0002): exact at every moment, the same cost at any size of history (counted from
    the tickets they grew with the backlog), as is most of "Due soon" (see _due_parts).
    No count is cached: they are exact on every page."""
    now = now or utcnow()
    soon = now + DUE_SOON
    statement = current_app.extensions.get("agent_view_counts")
    if statement is None:  # built once: building it cost more than running it
        statement = current_app.extensions["agent_view_counts"] = _view_counts_statement()
    row = db.session.execute(statement, {
        "agent_id": agent.id if agent.id is not None else -1, "soon": soon,
        "midnight": datetime.combine(soon.date(), datetime.min.time()), "today": soon.date(),
    }).one()
    counts = {view: int(row._mapping[view]) for view in COUNTED_VIEWS if view != "due"}
    counts["due"] = sum(int(row._mapping[f"due_{i}"]) for i in range(3))
    return counts


def warm_up() -> None:
    """Build and compile the tab counts and each view's first page, in every order, reading
    them once (gunicorn's master, before forking; see portal.agent.warm_up): building and
    compiling them was most of a worker's first queue page after the sweep (20 of 27 ms).
    `agent` is no one (id 0): "My open tickets" compiles the same for every agent."""
    agent = User(id=0)
    counts = view_counts(agent)
    for view in VIEWS:
        fetch_page(QueueQuery.from_args({"view": view}), agent, counts=counts)
    for sort in SORTS:
        fetch_page(QueueQuery.from_args({"sort": sort}), agent, counts=counts)


def _view_counts_statement() -> Select:
    """The tab counts in one statement, for the parameters agent_id, soon, midnight (that of
    the day of soon) and today (the day of soon)."""
    n = func.sum(QueueCount.tickets)
    kept = select(
        func.coalesce(n, 0).label("open"),
        func.coalesce(n.filter(QueueCount.assignee_id == 0), 0).label("unassigned"),
        func.coalesce(n.filter(QueueCount.assignee_id == bindparam("agent_id")), 0).label("mine"),
        func.coalesce(n.filter(QueueCount.status == Status.PENDING.value), 0).label("pending"),
        func.coalesce(n.filter(QueueCount.stale == 1), 0).label("stale"),
    ).subquery()
    due = _due_parts(bindparam("soon", type_=DateTime()), bindparam("midnight", type_=DateTime()),
                     bindparam("today", type_=Date()))
    return select(*kept.c, *(part.scalar_subquery().label(f"due_{i}")
                             for i, part in enumerate(due)))


COUNTED_VIEWS = ("unassigned", "mine", "open", "pending", "stale", "due")


def _due_parts(soon, midnight, today) -> tuple[Select, ...]:
    """The "Due soon or breached" count, as three counts to add up: the waiting tickets due
    on the days before the day of "soon", from the rows the database keeps (QueueDueDay,
    migration scale5_0003), and those due from that midnight to "soon", counted from the
    tickets (a day's worth at most) in two parts. Counting them all read every breached
    ticket of the backlog (20 ms at 1,000,000 tickets, growing with it).

    A waiting ticket is due at its first response's target while it is unanswered and that
    comes first, else at its resolution's: today's are counted in those two parts, the first
    inside ix_tickets_open_due (which carries every column it checks), the second from
    ix_tickets_status_first_due (the few unanswered tickets whose first reply is due today)."""
    waiting = Ticket.status.in_((Status.NEW, Status.OPEN, Status.ON_HOLD))
    first_comes_first = and_(
        Ticket.first_response_at.is_(None), Ticket.first_response_due_at.is_not(None),
        Ticket.first_response_due_at < Ticket.resolution_due_at)
    earlier = select(func.coalesce(func.sum(QueueDueDay.tickets), 0)).where(
        QueueDueDay.day < today)
    by_resolution = select(func.count(Ticket.id)).where(
        broad(is_open()), broad(waiting),
        Ticket.resolution_due_at >= midnight, Ticket.resolution_due_at <= soon,
        not_(first_comes_first))
    by_first_response = select(func.count(Ticket.id)).where(
        waiting, Ticket.first_response_at.is_(None),
        Ticket.first_response_due_at >= midnight, Ticket.first_response_due_at <= soon,
        or_(Ticket.resolution_due_at.is_(None),
            Ticket.first_response_due_at < Ticket.resolution_due_at))
    return earlier, by_resolution, by_first_response


@dataclass
class SlaState:
    kind: str  # breached | soon | running | paused | met | ""
    label: str
    due: datetime | None


def sla_state(ticket: Ticket | QueueTicket, now: datetime) -> SlaState:
    """The next SLA target as the queue and ticket page show it."""
    if ticket.status in (Status.SOLVED, Status.CLOSED):
        breached = ticket.first_response_breached or ticket.resolution_breached
        return SlaState("breached" if breached else "met",
                        "Missed" if breached else "Met", None)
    waiting_first = ticket.first_response_at is None and ticket.first_response_due_at
    due = ticket.first_response_due_at if waiting_first else ticket.resolution_due_at
    label = "First reply" if waiting_first else "Resolution"
    if due is None:
        return SlaState("", "", None)
    if ticket.sla_paused_at is not None:
        return SlaState("paused", "Paused (awaiting customer)", None)
    if due <= now or ticket.first_response_breached or ticket.resolution_breached:
        return SlaState("breached", f"{label} breached", due)
    if due <= now + DUE_SOON:
        return SlaState("soon", f"{label} due soon", due)
    return SlaState("running", label, due)


def due_in(due: datetime | None, now: datetime) -> str:
    """"in 3 h 20 min" / "2 d 4 h ago"."""
    if due is None:
        return ""
    seconds = int((due - now).total_seconds())
    minutes = abs(seconds) // 60
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {mins} min"
    else:
        text = f"{mins} min"
    return f"in {text}" if seconds >= 0 else f"{text} ago"
