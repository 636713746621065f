"""Lists do a fixed number of queries, however many rows they show (no N+1)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from portal.extensions import db
from portal.tickets import services
from portal.tickets.models import TicketType


def statements(client, url: str) -> list[str]:
    engine = db.engine
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if "change_feed" not in statement:  # the change feed's poll, at most once a second
            seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def count_queries(client, url: str) -> int:
    return len(statements(client, url))


def add_tickets(user, n: int) -> None:
    for i in range(n):
        services.create_ticket(services.NewTicket(
            subject=f"Extra ticket {i}", description="More trouble.", type=TicketType.QUESTION,
            name=user.name, email=user.email, requester=user, ccs=["cc@example.com"],
        ))
    db.session.commit()


@pytest.mark.parametrize("role,url", [
    ("owner", "/tickets/"),
    ("colleague", "/tickets/?scope=organization"),
    ("owner", "/tickets/?q=trouble"),
    ("agent", "/agent/"),
    ("agent", "/agent/kb/"),
    ("admin", "/admin/users"),
])
def test_lists_do_not_query_per_row(app, world, role, url):
    client = world.client_for(getattr(world, role))
    add_tickets(world.owner, 2)
    few = count_queries(client, url)
    add_tickets(world.owner, 15)
    many = count_queries(client, url)
    assert many <= few, f"{url}: {few} queries for a few rows, {many} for many"


@pytest.mark.parametrize("role,url", [
    ("owner", "/tickets/TKT-{number}"),
    ("agent", "/agent/tickets/{id}"),
])
def test_ticket_pages_join_the_small_collections(app, world, role, url):
    """Attachments and the user's organization come with the rows that own them: on
    PostgreSQL each statement is a round trip to a server sharing the CPU. (Tags are read
    on their own: joined through their link table, SQLite materializes every tag link.)"""
    client = world.client_for(getattr(world, role))
    page = url.format(number=world.ticket.id + 1000, id=world.ticket.id)
    client.get(page)
    seen = statements(client, page)
    assert world.public_attachment.filename in client.get(page).text
    for table in ("attachments", "organizations"):
        assert not [s for s in seen if s.startswith(f"SELECT {table}.")], (table, seen)


def test_my_requests_reads_its_page_and_total_in_one_statement(app, world):
    """The window count replaces the separate count; a page past the end shows the last."""
    from portal.tickets.services import PAGE_SIZE, customer_tickets

    add_tickets(world.owner, PAGE_SIZE + 3)
    client = world.client_for(world.owner)
    client.get("/tickets/")
    seen = statements(client, "/tickets/")
    assert not [s for s in seen if "count(*)" in s and "OVER" not in s], seen
    first = customer_tickets(world.owner)
    total = first.total
    assert len(first.tickets) == PAGE_SIZE and first.pages == 2 and total > PAGE_SIZE
    last = customer_tickets(world.owner, page=2)
    assert last.page == 2 and len(last.tickets) == total - PAGE_SIZE and last.total == total
    past = customer_tickets(world.owner, page=99)
    assert (past.page, past.total, [t.id for t in past.tickets]) == (
        2, total, [t.id for t in last.tickets])
    assert {t.id for t in first.tickets}.isdisjoint(t.id for t in last.tickets)
    nothing = customer_tickets(world.owner, query="no such words anywhere", page=3)
    assert (nothing.tickets, nothing.total, nothing.page, nothing.pages) == ([], 0, 1, 1)
