"""The queue's pages against a plain reference computed in Python, on SQLite and PostgreSQL.

The queue reads its pages in several ways depending on the view, the filters and how many
tickets a tag or a search matches (walking a due-order index, a list of matches built once,
ids looked up one by one); whichever it takes, every page must hold the same tickets in the
same order, with the same count, as the definition of the view says. The thresholds are
lowered so that a few dozen tickets take every path.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import event

from portal.agent import queue, search
from portal.agent.queue import QueueQuery, fetch_page
from portal.auth.models import Role
from portal.auth.services import create_user
from portal.db import utcnow
from portal.extensions import db
from portal.tickets.models import Group, Priority, Status, Tag, Ticket, TicketType
from portal.tickets.sla import DUE_SOON

RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}
OPEN = (Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD)
WORDS = ("printer", "invoice", "timeout", "export")


def _history(now):
    """Seventy tickets of every status, priority, group and assignee; some without due
    times; words and a tag spread so that some match many tickets and some few."""
    rng = random.Random(4)
    agent = create_user("queue-agent@example.com", "Queue Agent", "a long password 1",
                        Role.AGENT, confirmed=True)
    other = create_user("other-agent@example.com", "Other Agent", "a long password 1",
                        Role.AGENT, confirmed=True)
    groups = [Group(name="Tier 1"), Group(name="Tier 2")]
    printer = Tag(name="printer")
    db.session.add_all([*groups, printer])
    db.session.flush()
    for i in range(70):
        created = now - timedelta(hours=rng.randint(1, 500))
        status = rng.choice(list(Status))
        answered = rng.random() < 0.6
        due = None if rng.random() < 0.2 else now + timedelta(hours=rng.randint(-100, 100))
        words = [w for w in WORDS if rng.random() < (0.7 if w == "printer" else 0.15)]
        ticket = Ticket(
            subject=" ".join(["Help", *words, f"case{i}"]),
            requester_name="Val", requester_email=f"val{i % 7}@example.com",
            status=status, priority=rng.choice(list(Priority)),
            type=rng.choice(list(TicketType)), group_id=rng.choice([None, *(g.id for g in groups)]),
            assignee_id=rng.choice([None, agent.id, other.id]),
            created_at=created, updated_at=created,
            last_activity_at=created + timedelta(minutes=rng.randint(0, 3000)),
            first_response_at=created + timedelta(minutes=30) if answered else None,
            first_response_due_at=None if due is None else created + timedelta(hours=4),
            resolution_due_at=due,
            solved_at=now - timedelta(days=rng.randint(0, 12))
            if status in (Status.SOLVED, Status.CLOSED) else None,
        )
        if rng.random() < 0.6:
            ticket.tags.append(printer)
        db.session.add(ticket)
    db.session.commit()
    return agent, groups


def _reference(query: QueueQuery, agent, now) -> list[Ticket]:
    """The view's tickets in its order, from the definitions, in Python."""
    soon = now + DUE_SOON

    def in_view(t: Ticket) -> bool:
        return {
            "open": t.status in OPEN,
            "unassigned": t.status in OPEN and t.assignee_id is None,
            "mine": t.status in OPEN and t.assignee_id == agent.id,
            "pending": t.status == Status.PENDING,
            "due": t.status in (Status.NEW, Status.OPEN, Status.ON_HOLD) and (
                (t.resolution_due_at is not None and t.resolution_due_at <= soon)
                or (t.first_response_at is None and t.first_response_due_at is not None
                    and t.first_response_due_at <= soon)),
            "solved": t.status in (Status.SOLVED, Status.CLOSED)
            and t.solved_at >= now - queue.RECENTLY_SOLVED,
            "all": True,
        }[query.view]

    def matches(t: Ticket) -> bool:
        words = t.subject.lower().split()
        return (in_view(t)
                and (not query.priority or t.priority == Priority(query.priority))
                and (query.group_id is None or t.group_id == query.group_id)
                and (query.assignee_id is None or t.assignee_id == query.assignee_id)
                and (not query.tag or query.tag in [tag.name for tag in t.tags])
                and all(any(w.startswith(term) if n == len(query.q.split()) - 1 else w == term
                            for w in words)
                        for n, term in enumerate(query.q.lower().split())))

    def due_key(t: Ticket):
        return (t.resolution_due_at is None, t.resolution_due_at or now, t.id)

    keys = {
        "due": (lambda t: (-t.solved_at.timestamp(), -t.id)) if query.view == "solved"
        else due_key,
        "priority": lambda t: (RANK[t.priority], *due_key(t)),
        "updated": lambda t: (-t.last_activity_at.timestamp(), -t.id),
        "created": lambda t: -t.id,
    }
    return sorted((t for t in db.session.query(Ticket) if matches(t)), key=keys[query.sort])


def _check_every_view(monkeypatch):
    monkeypatch.setattr(queue, "PAGE_SIZE", 4)
    monkeypatch.setattr(queue, "COUNT_CAP", 9)
    monkeypatch.setattr(search, "FEW_MATCHES", 3)
    monkeypatch.setattr(search, "MANY_MATCHES", 12)
    now = utcnow()
    agent, groups = _history(now)
    queries = [
        {"view": view, "sort": sort, **filters}
        for view in ("open", "unassigned", "mine", "pending", "due", "solved", "all")
        for sort in ("due", "priority", "updated", "created")
        for filters in ({}, {"priority": "urgent"}, {"group": str(groups[0].id)},
                        {"priority": "high", "group": str(groups[1].id)}, {"tag": "printer"},
                        {"q": "printer"}, {"q": "invoice"}, {"q": "invoice print"},
                        {"q": "timeout", "tag": "printer"}, {"assignee": str(agent.id)})
    ]
    checked = 0
    for args in queries:
        for page in (1, 2, 3):
            query = QueueQuery.from_args({**args, "page": str(page)})
            expected = _reference(query, agent, now)
            result = fetch_page(query, agent, now)
            reach = max(queue.COUNT_CAP, result.page * queue.PAGE_SIZE)
            counted = query.filtered or query.view not in queue.COUNTED_VIEWS
            assert result.total == (min(len(expected), reach) if counted else len(expected)), (
                args, page)
            assert result.more == (counted and len(expected) > reach), (args, page)
            start = (result.page - 1) * queue.PAGE_SIZE
            assert [t.id for t in result.tickets] == [
                t.id for t in expected[start:start + queue.PAGE_SIZE]], (args, page)
            checked += bool(result.tickets)
    assert checked > len(queries)  # the history gives most views something to show


def test_every_view_filter_and_sort_pages_as_defined(app, monkeypatch):
    _check_every_view(monkeypatch)


def test_every_view_filter_and_sort_pages_as_defined_on_postgres(pg_app, monkeypatch):
    _check_every_view(monkeypatch)


@pytest.mark.parametrize("matches", [2, 8, 20])
def test_a_tag_is_checked_the_way_its_number_of_tickets_asks(app, monkeypatch, matches):
    """Few tickets: their ids are listed; more: a subquery (walked in due order over all
    tickets beyond MANY_MATCHES on SQLite); the page is the same."""
    monkeypatch.setattr(search, "FEW_MATCHES", 3)
    monkeypatch.setattr(search, "MANY_MATCHES", 10)
    tag = Tag(name="vip")
    now = utcnow()
    tickets = [Ticket(subject=f"T{i}", requester_name="V", requester_email="v@example.com",
                      resolution_due_at=now + timedelta(hours=20 - i)) for i in range(25)]
    for ticket in tickets[:matches]:
        ticket.tags.append(tag)
    db.session.add_all(tickets)
    db.session.commit()
    agent = create_user("tag-agent@example.com", "Tag Agent", "a long password 1", Role.AGENT,
                        confirmed=True)
    page = fetch_page(QueueQuery.from_args({"view": "all", "tag": "vip"}), agent)
    expected = sorted(tickets[:matches], key=lambda t: t.resolution_due_at)
    assert [t.id for t in page.tickets] == [t.id for t in expected[:queue.PAGE_SIZE]]
    assert page.total == matches


def _check_a_common_tag_or_word_of_all_tickets(monkeypatch, args: dict, expected_ids):
    statements = []

    def listener(_conn, _cursor, statement, *_args):
        statements.append(" ".join(statement.split()))

    agent = create_user(f"walk-agent-{'-'.join(args.values())}@example.com", "Walk Agent",
                        "a long password 1", Role.AGENT, confirmed=True)
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        pages = [fetch_page(QueueQuery.from_args({**args, "page": str(n)}), agent)
                 for n in (1, 2, 3)]
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    size = queue.PAGE_SIZE
    for number, page in enumerate(pages):
        assert [t.id for t in page.tickets] == expected_ids[number * size:(number + 1) * size]
        reach = max(queue.COUNT_CAP, (number + 1) * size)  # fewer than the matches
        assert (page.total, page.more) == (reach, True)
    page_statements = [s for s in statements if s.startswith(("SELECT tickets.id, tickets.subject",
                                                              "WITH"))]
    assert len(page_statements) == 3
    # The page walks the due order as far as it goes (the first pages checking the tag
    # ticket by ticket); the first COUNT_CAP + 1 matches are not picked for a count.
    assert not any("candidates" in s for s in page_statements), page_statements
    return page_statements


def _check_common_tag_or_word(monkeypatch):
    """In "all tickets", a tag's or a search's matches are the view's tickets: their count,
    capped, is what deciding how to check them read, and the page walks its order only as far
    as the page goes (picking the first thousand matches for the count read 20 times as many
    tickets at a million, for a tag on 2% of them)."""
    monkeypatch.setattr(queue, "PAGE_SIZE", 3)
    monkeypatch.setattr(queue, "COUNT_CAP", 5)
    monkeypatch.setattr(search, "FEW_MATCHES", 2)
    monkeypatch.setattr(search, "MANY_MATCHES", 12)  # past this, all tickets are walked
    tag = Tag(name="vip")
    now = utcnow()
    tickets = [Ticket(subject=f"Printer {i}" if i % 3 else f"Other {i}", requester_name="V",
                      requester_email="v@example.com",
                      resolution_due_at=now + timedelta(hours=(i * 7) % 30)) for i in range(30)]
    for ticket in tickets[::2]:
        ticket.tags.append(tag)
    db.session.add_all(tickets)
    db.session.commit()

    def in_due_order(chosen):
        return [t.id for t in sorted(chosen, key=lambda t: (t.resolution_due_at, t.id))]

    tagged = _check_a_common_tag_or_word_of_all_tickets(
        monkeypatch, {"view": "all", "tag": "vip"}, in_due_order(tickets[::2]))
    assert ["EXISTS" in s for s in tagged] == [True, True, False]  # pages 1-2: probed
    _check_a_common_tag_or_word_of_all_tickets(
        monkeypatch, {"view": "all", "q": "printer"},
        in_due_order([t for t in tickets if t.subject.startswith("Printer")]))


def test_a_common_tag_or_word_of_all_tickets_reads_only_as_far_as_the_page(app, monkeypatch):
    _check_common_tag_or_word(monkeypatch)


def test_a_common_tag_or_word_of_all_tickets_reads_only_as_far_as_the_page_on_postgres(
        pg_app, monkeypatch):
    _check_common_tag_or_word(monkeypatch)
