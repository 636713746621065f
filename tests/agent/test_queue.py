import re
from datetime import timedelta

from sqlalchemy import event, text

from portal.agent.queue import QueueQuery, fetch_page
from portal.db import refresh_planner_statistics, utcnow
from portal.extensions import db
from portal.tickets.models import Group, Priority, Status, Tag


def test_views_filters_and_search(agent_client, agent, customer, make_user, make_ticket):
    other = make_user("customer", email="olga@example.com", name="Olga Other")
    mine = make_ticket(customer, subject="Printer on fire", assignee_id=agent.id)
    unassigned = make_ticket(other, subject="Refund please", priority=Priority.URGENT,
                             body="Order 5521 arrived broken")
    pending = make_ticket(customer, subject="Waiting on you", status=Status.PENDING)
    solved = make_ticket(customer, subject="All good now", status=Status.SOLVED,
                         solved_at=utcnow() - timedelta(days=1))

    def listed(**args):
        page = agent_client.get("/agent/", query_string=args)
        assert page.status_code == 200
        everything = (mine, unassigned, pending, solved)
        return {t.reference for t in everything if t.reference in page.text}

    assert listed(view="mine") == {mine.reference}
    assert listed(view="unassigned") == {unassigned.reference, pending.reference}
    assert listed(view="open") == {mine.reference, unassigned.reference, pending.reference}
    assert listed(view="pending") == {pending.reference}
    assert listed(view="solved") == {solved.reference}
    assert listed(view="all", priority="urgent") == {unassigned.reference}
    assert listed(view="all", q="olga@example") == {unassigned.reference}
    assert listed(view="all", q="Olga@Example.com") == {unassigned.reference}
    assert listed(view="all", q="5521") == {unassigned.reference}  # message text
    assert listed(view="all", q=mine.reference) == {mine.reference}
    assert listed(view="all", q="printer") == {mine.reference}
    assert listed(view="open", q="printer fire") == {mine.reference}  # within a view
    assert listed(view="pending", q="printer") == set()
    assert listed(view="all", q="100%_") == set()  # LIKE wildcards are literal
    assert listed(view="all", status="bogus", sort="nonsense") == {
        mine.reference, unassigned.reference, pending.reference, solved.reference}


def test_search_index_follows_tickets_and_messages(agent_client, customer, make_ticket):
    """The full-text index is kept in step with every insert, update and delete."""
    from portal.tickets.models import Message

    printer = make_ticket(customer, subject="Printer jams on tray two", body="Model LX-200")
    other = make_ticket(customer, subject="Invoice question", body="Where is my invoice?")

    def found(q):
        page = agent_client.get("/agent/", query_string={"view": "all", "q": q})
        return {t.reference for t in (printer, other) if t.reference in page.text}

    assert found("tray jams") == {printer.reference}  # every word, any order
    assert found("print") == {printer.reference}  # the beginning of a word
    assert found("lx 200") == {printer.reference}  # message text, punctuation ignored
    assert found("printer invoice") == set()  # not one ticket has both
    assert found("jams lx") == {printer.reference}  # subject and message words together
    # Words joined by punctuation are a phrase: in that order, the last one as a beginning.
    assert found("LX-2") == {printer.reference}
    assert found("200-lx") == set()
    assert found("%_") == set()  # no words at all finds nothing

    note = Message(ticket=printer, author_name="Agent", body="Replaced the fuser unit",
                   internal=True)
    db.session.add(note)
    db.session.commit()
    assert found("fuser") == {printer.reference}  # internal notes: agents search them
    note.body = "Replaced the roller"
    printer.subject = "Paper feed problem"
    db.session.commit()
    assert found("fuser") == set() and found("roller") == {printer.reference}
    assert found("tray") == set() and found("paper feed") == {printer.reference}
    db.session.delete(note)
    db.session.commit()
    assert found("roller") == set()
    db.session.execute(text("DELETE FROM tickets WHERE id = :id"), {"id": other.id})  # cascades
    db.session.commit()
    assert found("invoice") == set()
    # The index matches its content exactly (FTS5 compares every document with the view).
    db.session.execute(text(
        "INSERT INTO fts_tickets(fts_tickets, rank) VALUES ('integrity-check', 1)"))


def test_due_view_and_tags_filter(agent_client, customer, make_ticket):
    late = make_ticket(customer, subject="Overdue", created_at=utcnow() - timedelta(hours=10))
    fresh = make_ticket(customer, subject="Fresh", priority=Priority.LOW)
    late.tags = [Tag(name="vip")]
    db.session.commit()
    page = agent_client.get("/agent/?view=due")
    assert late.reference in page.text and fresh.reference not in page.text
    assert "First reply breached" in page.text
    page = agent_client.get("/agent/?view=all&tag=vip")
    assert late.reference in page.text and fresh.reference not in page.text
    assert '<span class="badge badge-tag">vip</span>' in page.text


def test_a_tag_filter_shows_a_ticket_tagged_after_the_page_was_first_read(
        agent_client, customer, make_ticket):
    """A tag's few matches are written into the statement as ids; such a statement is never
    kept for reuse, or a later page would miss the newly tagged ticket."""
    first = make_ticket(customer, subject="Tagged first")
    later = make_ticket(customer, subject="Tagged later")
    first.tags = [Tag(name="vip")]
    db.session.commit()
    page = agent_client.get("/agent/?view=open&tag=vip")
    assert first.reference in page.text and later.reference not in page.text
    later.tags = list(first.tags)
    db.session.commit()
    page = agent_client.get("/agent/?view=open&tag=vip")
    assert first.reference in page.text and later.reference in page.text


def test_queue_is_a_fixed_number_of_queries(app, agent, customer, make_ticket):
    group = Group(name="Support")
    db.session.add(group)
    for i in range(30):
        make_ticket(customer, subject=f"Ticket {i}", group=group, assignee_id=agent.id)
    db.session.expunge_all()
    statements = []
    def listener(_conn, _cursor, statement, *_args):
        if statement.startswith("SELECT"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        page = fetch_page(QueueQuery.from_args({"view": "all"}), agent)
        names = {(t.assignee_name, t.group_name, t.category_name) for t in page.tickets}
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert len(page.tickets) == 30
    assert page.total == 30
    assert names == {(agent.name, "Support", None)}
    # The page with its assignee, group and category joined and the count as a scalar
    # subquery; then the page's tags (joined, SQLite would materialize every tag link).
    assert len(statements) == 2, statements
    assert "count(" in statements[0].lower() and "ticket_tags" in statements[1]


def test_unfiltered_view_takes_its_total_from_the_tab_counts(app, agent, customer, make_ticket):
    """Counting a view grows with its tickets (the open tickets of a long history): a view with
    no filter reuses its tab's count; a filtered one still counts."""
    from portal.agent.queue import view_counts

    for i in range(3):
        make_ticket(customer, subject=f"Open {i}")
    counts = view_counts(agent)
    statements = []

    def listener(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        page = fetch_page(QueueQuery.from_args({"view": "open"}), agent, counts=counts)
        assert not any("count(" in s for s in statements), statements
        filtered = fetch_page(QueueQuery.from_args({"view": "open", "q": "Open 1"}), agent,
                              counts=counts)
        assert any("count(" in s for s in statements), statements
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert page.total == counts["open"] == 3
    assert filtered.total == 1


def test_unfiltered_view_total_follows_new_tickets(agent_client, customer, make_ticket):
    for i in range(45):
        make_ticket(customer, subject=f"Bulk {i}")
    assert "45 tickets" in agent_client.get("/agent/?view=open").text
    for i in range(10):
        make_ticket(customer, subject=f"More {i}")
    assert "55 tickets · page 1 of 2" in agent_client.get("/agent/?view=open").text
    second = agent_client.get("/agent/?view=open&page=2", headers={
        "HX-Request": "true", "HX-Target": "queue-results"})
    assert "page 2 of 2" in second.text and len(set(re.findall(r"TKT-\d+", second.text))) == 5


def test_paging(agent_client, customer, make_ticket):
    for i in range(55):
        make_ticket(customer, subject=f"Bulk {i}")
    first = agent_client.get("/agent/?view=all")
    assert "page 1 of 2" in first.text and 'rel="next"' in first.text
    second = agent_client.get("/agent/?view=all&page=2")
    assert "page 2 of 2" in second.text
    past = agent_client.get("/agent/?view=all&page=999")
    assert past.status_code == 200 and "page 2 of 2" in past.text
    assert past.text.count("Bulk ") == second.text.count("Bulk ") > 0


def test_htmx_filter_returns_the_results_partial(agent_client, customer, make_ticket):
    make_ticket(customer)
    response = agent_client.get("/agent/?view=all", headers={
        "HX-Request": "true", "HX-Target": "queue-results"})
    assert "<html" not in response.text and "queue-summary" in response.text


def test_bulk_actions(agent_client, agent, customer, make_ticket):
    a = make_ticket(customer, subject="One")
    b = make_ticket(customer, subject="Two")
    c = make_ticket(customer, subject="Three")
    response = agent_client.post("/agent/bulk", data={
        "ticket": [str(a.id), str(b.id)], "assignee": str(agent.id), "status": "open",
        "priority": "high", "add_tags": "billing, vip", "back": "/agent/?view=all"})
    assert response.status_code == 302 and response.location.endswith("/agent/?view=all")
    for t in (a, b):
        db.session.refresh(t)
        assert (t.assignee_id, t.status, t.priority) == (agent.id, Status.OPEN, Priority.HIGH)
        assert sorted(tag.name for tag in t.tags) == ["billing", "vip"]
    db.session.refresh(c)
    assert c.assignee_id is None and c.status == Status.NEW

    # A closed ticket cannot be reopened: it is skipped and reported, the rest still change.
    c.status = Status.CLOSED
    db.session.commit()
    page = agent_client.post("/agent/bulk", data={
        "ticket": [str(a.id), str(c.id)], "status": "pending", "remove_tags": "vip"},
        follow_redirects=True)
    assert "Updated 1 ticket." in page.text and "cannot become pending" in page.text
    db.session.refresh(a)
    assert a.status == Status.PENDING and [t.name for t in a.tags] == ["billing"]

    # A bad tag: the queue comes back with the error, what was typed and the ticks kept.
    bad = agent_client.post("/agent/bulk", data={
        "ticket": [str(a.id)], "add_tags": "no way!", "status": "solved",
        "remove_tags": "billing", "back": "/agent/?view=all&sort=created"})
    assert bad.status_code == 422 and "is not a valid tag" in bad.text
    assert 'value="no way!"' in bad.text and 'value="billing"' in bad.text
    assert '<option selected value="solved">' in bad.text
    assert f'name="ticket" value="{a.id}" checked' in bad.text
    assert f'name="ticket" value="{b.id}">' in bad.text  # not ticked
    back = re.search(r'name="back" value="([^"]*)"', bad.text).group(1)
    assert "sort=created" in back and "view=all" in back  # the same queue page
    db.session.refresh(a)
    assert a.status == Status.PENDING and [t.name for t in a.tags] == ["billing"]
    whole_page = agent_client.post("/agent/bulk", data={
        "on_page": [str(b.id), str(c.id)], "scope": "page", "add_tags": "paged"})
    assert whole_page.status_code == 302
    db.session.refresh(b)
    db.session.refresh(c)
    assert "paged" in [t.name for t in b.tags] and "paged" in [t.name for t in c.tags]
    none = agent_client.post("/agent/bulk", data={"status": "open", "add_tags": "kept"})
    assert none.status_code == 422 and "Select at least one ticket" in none.text
    assert 'value="kept"' in none.text


def test_customers_get_404(customer_client, customer, make_ticket):
    ticket = make_ticket(customer)
    assert customer_client.get("/agent/").status_code == 404
    assert customer_client.get(f"/agent/tickets/{ticket.id}").status_code == 404
    assert customer_client.post("/agent/bulk", data={"ticket": [str(ticket.id)],
                                                     "status": "solved"}).status_code == 404


def test_a_common_whole_word_decides_many_matches_without_reading_the_prefix(
        agent, customer, make_ticket, monkeypatch):
    """A word's beginning builds its whole list of matches before the first is read; when
    the whole words alone match many tickets, the search is known to, and its matches are
    read only by the page's statement. Longer words still match."""
    from portal.agent import search

    monkeypatch.setattr(search, "FEW_MATCHES", 2)
    for subject in ("Printer jams", "Printer offline", "Printer noise", "Printers gone"):
        make_ticket(customer, subject=subject)
    make_ticket(customer, subject="Invoice question")
    statements = []

    def listener(_conn, _cursor, statement, parameters, *_args):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        page = fetch_page(QueueQuery.from_args({"view": "open", "q": "printer"}), agent)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert sorted(t.subject for t in page.tickets) == [
        "Printer jams", "Printer noise", "Printer offline", "Printers gone"]
    probes = [parameters for statement, parameters in statements
              if "fts_tickets MATCH" in statement and "LIMIT" in statement
              and "tickets.id" not in statement]
    assert probes == [('"printer"', 3, 0)], statements  # the whole word, three ids read


def test_many_matches_are_searched_in_a_subquery(agent_client, customer, make_ticket,
                                                 monkeypatch):
    from portal.agent import search

    monkeypatch.setattr(search, "FEW_MATCHES", 0)  # every search counts as "many matches"
    printer = make_ticket(customer, subject="Printer jams", body="Model LX-200")
    make_ticket(customer, subject="Invoice question")
    for q, expected in (("jams lx", {printer.reference}), ("LX-2", {printer.reference}),
                        ("200-lx", set())):
        page = agent_client.get("/agent/", query_string={"view": "open", "q": q})
        assert set(re.findall(r"TKT-\d+", page.text)) == expected, q


def test_tab_counts_follow_new_and_changed_tickets(agent, customer, make_ticket):
    from portal.agent.queue import view_counts
    from portal.tickets.lifecycle import change_status

    before = view_counts(agent)
    ticket = make_ticket(customer, subject="Counted")
    assert view_counts(agent)["unassigned"] == before["unassigned"] + 1
    change_status(ticket, Status.PENDING, agent)
    db.session.commit()
    after = view_counts(agent)
    assert after["pending"] == before["pending"] + 1
    assert after["unassigned"] == before["unassigned"] + 1  # pending stays unassigned


def test_sla_due_order_puts_tickets_without_a_due_time_last_on_every_page(
        app, agent, customer, make_ticket):
    """The default order is read in two parts (with a due time, then without); the pages still
    follow one order: due time, then id, tickets without a due time last."""
    tickets = [make_ticket(customer, subject=f"Due {i}", assignee_id=agent.id)
               for i in range(70)]
    now = utcnow()
    for i, ticket in enumerate(tickets):
        # Every third ticket has no due time; the others are due in a shuffled order.
        ticket.resolution_due_at = None if i % 3 == 0 else now + timedelta(hours=(i * 37) % 61)
    db.session.commit()
    expected = sorted(tickets, key=lambda t: (t.resolution_due_at is None,
                                              t.resolution_due_at or now, t.id))
    for view in ("open", "mine"):
        listed = []
        for page in (1, 2):
            result = fetch_page(QueueQuery.from_args({"view": view, "page": str(page)}), agent)
            listed += [t.id for t in result.tickets]
        assert listed == [t.id for t in expected], view


def test_sla_due_order_of_unsolved_tickets_is_read_from_an_index(app, agent, customer,
                                                                  make_ticket):
    """About one ticket in eight is unsolved: sorting them all for each page grew with history.
    The page's ids come in order from the open-ticket due index, with no sort of the view
    (on a database with statistics, as the planner has them once ANALYZE has run)."""
    if db.engine.dialect.name != "sqlite":
        return
    for i in range(40):
        make_ticket(customer, subject=f"Ticket {i}", assignee_id=agent.id if i % 2 else None,
                    status=Status.OPEN if i % 8 == 0 else Status.CLOSED)
    refresh_planner_statistics(db.session)  # what the scheduled job and `db upgrade` run
    statements = []

    def listener(_conn, _cursor, statement, parameters, *_args):
        if statement.startswith("SELECT") and "LIMIT" in statement:
            statements.append((statement, parameters))

    # Either open-ticket due index: both carry the assignee (ix_tickets_open_due also every
    # other queue filter, checked while walking it).
    indexes = ("ix_tickets_open_due", "ix_tickets_open_assignee_due")
    for view in ("open", "unassigned", "mine"):
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            fetch_page(QueueQuery.from_args({"view": view}), agent)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        statement, parameters = statements[0]
        plan = [row[3] for row in db.session.connection().exec_driver_sql(
            "EXPLAIN QUERY PLAN " + statement, parameters)]
        # How the page's ids are picked (then its rows are read by id).
        picking = plan[plan.index("CO-ROUTINE anon_1"):]
        steps = [step for step in picking if step.startswith(("SEARCH tickets", "SCAN tickets"))]
        assert len(steps) == 2 and all(any(f" INDEX {index} " in s for index in indexes)
                                       for s in steps), (view, plan)


def test_only_the_last_word_of_a_search_may_be_a_beginning(agent_client, customer,
                                                          make_ticket):
    """A beginning reads the postings of every word it starts: only the word being typed (the
    last) is one; earlier words and the words of an address are whole words."""
    printer = make_ticket(customer, subject="Printer jams on tray two", body="Model LX-200")

    def found(q):
        page = agent_client.get("/agent/", query_string={"view": "all", "q": q})
        return printer.reference in page.text

    assert found("tray ja") and found("jams tra")  # the last word may be unfinished
    assert not found("tra jams")  # an earlier one may not
    assert found("casey@example") and found("casey@example.com")  # requester's address
    assert not found("casey@exam")  # an address's words are whole words
    assert not found("LX-2 tray") and found("tray LX-2")


def test_a_filtered_count_stops_at_the_cap(agent_client, customer, make_ticket, monkeypatch):
    """Counting every match of a common word or filter grew with history: the count stops at
    COUNT_CAP tickets, or at the end of the page asked for."""
    from portal.agent import queue

    monkeypatch.setattr(queue, "COUNT_CAP", 60)
    for i in range(130):
        make_ticket(customer, subject=f"Capped {i}")
    first = agent_client.get("/agent/?view=all&q=capped")
    assert "60+ tickets · page 1 of 2+" in first.text and 'rel="next"' in first.text
    second = agent_client.get("/agent/?view=all&q=capped&page=2")
    assert "100+ tickets · page 2 of 2+" in second.text and 'rel="next"' in second.text
    last = agent_client.get("/agent/?view=all&q=capped&page=3")
    assert "130 tickets · page 3 of 3" in last.text and 'rel="next"' not in last.text
    assert len(set(re.findall(r"TKT-\d+", last.text))) == 30
    unfiltered = agent_client.get("/agent/?view=open")
    assert "130 tickets · page 1 of 3" in unfiltered.text  # a tab's count is exact


def test_the_planner_statistics_are_kept_by_a_scheduled_job(app, customer, make_ticket,
                                                             run_jobs):
    """SQLite picks indexes from ANALYZE's statistics: without them the open tickets' due
    index loses to the status index at scale (tests/agent/test_queue.py checks the plan)."""
    from portal.jobs.services import run_schedule_now

    if db.engine.dialect.name != "sqlite":
        return
    for _ in range(3):
        make_ticket(customer)
    db.session.execute(text("DELETE FROM sqlite_stat1"))
    db.session.commit()
    run_schedule_now("database.statistics")
    run_jobs()
    tables = set(db.session.scalars(text("SELECT tbl FROM sqlite_stat1")))
    assert "tickets" in tables


def test_the_bulk_form_kept_per_process_follows_the_agent_list(agent_client, agent, customer,
                                                                make_user, make_ticket):
    """The untouched bulk form is rendered once per process: a new agent must still appear in
    its assignee list at once, and a bulk action shown again keeps what was typed."""
    make_ticket(customer, subject="Printer on fire")

    def assignees() -> set[str]:
        page = agent_client.get("/agent/").text
        select = re.search(r'<select id="assignee" name="assignee">(.*?)</select>', page).group(1)
        return set(re.findall(r">([^<]+)</option>", select))

    before = assignees()
    assert agent.name in before
    make_user("agent", email="nina@example.com", name="Nina Newagent")
    assert assignees() == before | {"Nina Newagent"}
    again = agent_client.post("/agent/bulk", data={"add_tags": "bad tag!", "back": "/agent/"})
    assert again.status_code == 422
    assert 'name="add_tags" type="text" value="bad tag!"' in again.text


def test_reused_page_statements_keep_each_agent_and_page_apart(app, agent, customer,
                                                                make_user, make_ticket):
    """A view's statement is built once per process and reused: it still reads the tickets
    as they are now, and "My open tickets" and each page stay the asking agent's own."""
    other = make_user("agent", email="olga@example.com", name="Olga Other")
    mine = make_ticket(customer, subject="Assigned to the first agent", assignee_id=agent.id)
    theirs = make_ticket(customer, subject="Assigned to the other agent", assignee_id=other.id)

    def ids(who, **args):
        return [t.id for t in fetch_page(QueueQuery.from_args({"view": "mine", **args}),
                                         who).tickets]

    for _ in range(2):  # built, then reused
        assert ids(agent) == [mine.id] and ids(other) == [theirs.id]
    later = make_ticket(customer, subject="Assigned later", assignee_id=agent.id)
    assert sorted(ids(agent, sort="created")) == sorted([mine.id, later.id])
    assert sorted(ids(agent, sort="created")) == sorted([mine.id, later.id])
    for i in range(55):
        make_ticket(customer, subject=f"Bulk {i}", assignee_id=agent.id)
    first = ids(agent, sort="created")
    second = ids(agent, sort="created", page="2")
    assert len(first) == 50 and len(second) == 7 and not set(first) & set(second)
    assert ids(agent, sort="created", page="2") == second


def test_updated_order_of_unsolved_tickets_is_read_from_an_index(app, agent, customer,
                                                                 make_ticket):
    """Sorted by last activity, the page's ids come in order from the open tickets' activity
    index: through the status index every unsolved ticket of the history was sorted for each
    page (23 ms at 100,000 tickets)."""
    if db.engine.dialect.name != "sqlite":
        return
    for i in range(40):
        make_ticket(customer, subject=f"Ticket {i}", assignee_id=agent.id if i % 2 else None,
                    status=Status.OPEN if i % 8 in (0, 1) else Status.CLOSED)
    refresh_planner_statistics(db.session)
    statements = []

    def listener(_conn, _cursor, statement, parameters, *_args):
        if statement.startswith("SELECT") and "LIMIT" in statement:
            statements.append((statement, parameters))

    for view in ("open", "unassigned", "mine"):
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            page = fetch_page(QueueQuery.from_args({"view": view, "sort": "updated"}), agent)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        assert page.tickets
        statement, parameters = statements[0]
        plan = [row[3] for row in db.session.connection().exec_driver_sql(
            "EXPLAIN QUERY PLAN " + statement, parameters)]
        subquery = plan.index("LIST SUBQUERY 1") if "LIST SUBQUERY 1" in plan else 0
        picking = plan[subquery:subquery + 3]
        assert any("ix_tickets_open_activity" in step for step in picking), (view, plan)
        assert not any("TEMP B-TREE" in step for step in picking[:2]), (view, plan)


def test_the_stale_view_picks_its_tickets_from_the_stale_index_in_every_order(
        app, agent, customer, make_ticket):
    """Its tickets are few and flagged in an index of their own: they are picked there and
    sorted. Walking the due or id order instead read every ticket of the history to find
    them (an empty view: 0.96 s at 100,000 tickets, 6.4 s at 1,000,000)."""
    if db.engine.dialect.name != "sqlite":
        return
    from datetime import timedelta

    from portal.db import utcnow

    for i in range(40):
        make_ticket(customer, subject=f"Ticket {i}", status=Status.OPEN if i % 4 else
                    Status.CLOSED, stale_at=utcnow() - timedelta(hours=i) if i % 10 == 1
                    else None)
    refresh_planner_statistics(db.session)
    statements = []

    def listener(_conn, _cursor, statement, parameters, *_args):
        if statement.startswith("SELECT") and "LIMIT" in statement:
            statements.append((statement, parameters))

    for sort in ("due", "priority", "updated", "created"):
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            page = fetch_page(QueueQuery.from_args({"view": "stale", "sort": sort}), agent)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        assert sorted(t.subject for t in page.tickets) == [
            "Ticket 1", "Ticket 11", "Ticket 21", "Ticket 31"], sort
        statement, parameters = statements[0]
        plan = [row[3] for row in db.session.connection().exec_driver_sql(
            "EXPLAIN QUERY PLAN " + statement, parameters)]
        # How the page's ids are picked (then its rows are read by id).
        picking = plan[next(i for i, step in enumerate(plan) if step.startswith("LIST SUBQUERY")):]
        reads = [step for step in picking if step.startswith(("SEARCH tickets", "SCAN tickets"))]
        assert reads and all("ix_tickets_stale_at" in step for step in reads), (sort, plan)
