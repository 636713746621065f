import re

from sqlalchemy import select

from portal.extensions import db
from portal.kb.models import Article, ArticleRevision, ArticleStatus, KbCategory, KbSection
from portal.search.queue import enqueue_article
from portal.tickets.models import (
    CannedReply,
    Group,
    Message,
    Priority,
    Status,
    Tag,
    TicketCC,
    TicketEvent,
)


def kinds(ticket):
    return [e.kind for e in db.session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id))]


def test_thread_shows_internal_notes_apart(agent_client, agent, customer, make_ticket):
    ticket = make_ticket(customer, body="My <b>printer</b> is on fire")
    response = agent_client.post(f"/agent/tickets/{ticket.id}/reply",
                                 data={"body": "Checked the logs", "internal": "y"})
    assert response.status_code == 302
    page = agent_client.get(f"/agent/tickets/{ticket.id}")
    assert "message-internal" in page.text and "Internal note" in page.text
    assert "My &lt;b&gt;printer&lt;/b&gt;" in page.text  # escaped
    db.session.refresh(ticket)
    # A note is not a response: the first-response clock still runs, status unchanged.
    assert ticket.first_response_at is None and ticket.status == Status.NEW
    assert ticket.public_reply_count == 0 and kinds(ticket)[-1] == "note"


def test_public_reply_opens_and_answers(agent_client, agent, customer, make_ticket):
    ticket = make_ticket(customer)
    agent_client.post(f"/agent/tickets/{ticket.id}/reply",
                      data={"body": "Try resetting it", "status_after": "pending"})
    db.session.refresh(ticket)
    assert ticket.status == Status.PENDING and ticket.first_response_at is not None
    assert ticket.public_reply_count == 1 and ticket.assignee_id == agent.id
    assert ticket.sla_paused_at is not None  # awaiting the customer
    assert {"reply", "status", "assignee"} <= set(kinds(ticket))
    message = db.session.scalars(select(Message).where(Message.ticket_id == ticket.id)
                                 .order_by(Message.id.desc())).first()
    assert message.from_agent and not message.internal


def test_empty_reply_keeps_the_page(agent_client, customer, make_ticket):
    ticket = make_ticket(customer)
    response = agent_client.post(f"/agent/tickets/{ticket.id}/reply", data={"body": "  "})
    assert response.status_code == 422 and "Write a reply" in response.text


def test_properties_change_and_timeline(agent_client, agent, customer, make_ticket):
    ticket = make_ticket(customer)
    group = Group(name="Billing")
    db.session.add(group)
    db.session.commit()
    old_due = ticket.resolution_due_at
    response = agent_client.post(f"/agent/tickets/{ticket.id}/properties", data={
        "status": "open", "priority": "urgent", "type": "incident", "category": "0",
        "group": str(group.id), "assignee": str(agent.id), "tags": "Outage, vip"})
    assert response.status_code == 302
    db.session.refresh(ticket)
    assert ticket.priority == Priority.URGENT and ticket.group_id == group.id
    assert ticket.resolution_due_at < old_due  # urgent targets are shorter
    assert sorted(t.name for t in ticket.tags) == ["outage", "vip"]
    page = agent_client.get(f"/agent/tickets/{ticket.id}")
    for text in ("changed priority from", "changed group from", "changed tags from",
                 "changed status from", "changed assignee from"):
        assert text in page.text


def test_invalid_transition_is_refused(agent_client, customer, make_ticket):
    ticket = make_ticket(customer, status=Status.CLOSED)
    response = agent_client.post(f"/agent/tickets/{ticket.id}/properties", data={
        "status": "open", "priority": "normal", "type": "question", "category": "0",
        "group": "0", "assignee": "0", "tags": ""})
    assert response.status_code == 422 and "cannot become open" in response.text
    db.session.refresh(ticket)
    assert ticket.status == Status.CLOSED


def test_canned_reply_placeholders_with_and_without_htmx(agent_client, agent, customer,
                                                         make_ticket):
    ticket = make_ticket(customer)
    canned = CannedReply(title="Hello", body="Hi {{requester.first_name}}, about "
                         "{{ticket.reference}}. {{agent.name}}")
    db.session.add(canned)
    db.session.commit()
    expected = f"Hi Casey, about {ticket.reference}. {agent.name}"
    partial = agent_client.get(f"/agent/tickets/{ticket.id}/compose",
                               query_string={"canned": canned.id, "body": "Thanks!"},
                               headers={"HX-Request": "true", "HX-Target": "reply-editor"})
    assert "<html" not in partial.text
    assert f"Thanks!\n\n{expected}" in partial.text
    # Without JavaScript the button submits the reply form by GET to the page itself.
    page = agent_client.get(f"/agent/tickets/{ticket.id}",
                            query_string={"canned": canned.id, "body": "Thanks!"})
    assert f"Thanks!\n\n{expected}" in page.text
    leaked = agent_client.get(f"/agent/tickets/{ticket.id}?csrf_token=abc&body=x")
    assert leaked.status_code == 302 and "csrf_token" not in leaked.location


def kb_article(title="Reset your password", status=ArticleStatus.PUBLISHED):
    category = KbCategory(name="Accounts", slug="accounts")
    section = KbSection(category=category, name="Sign-in", slug="sign-in")
    article = Article(section=section, title=title, slug="reset", body="Steps", status=status)
    db.session.add_all([category, section, article])
    db.session.flush()
    enqueue_article(article.id)
    db.session.commit()
    return article


def test_kb_link_search_and_insert(agent_client, customer, make_ticket, run_jobs):
    ticket = make_ticket(customer)
    article = kb_article()
    kb_article("Draft about passwords", ArticleStatus.DRAFT)
    run_jobs()
    found = agent_client.get(f"/agent/tickets/{ticket.id}", query_string={"kb_q": "password"})
    assert "Reset your password" in found.text and "Draft about passwords" not in found.text
    inserted = agent_client.get(f"/agent/tickets/{ticket.id}/compose",
                                query_string={"link": article.id, "body": "See"},
                                headers={"HX-Request": "true", "HX-Target": "reply-editor"})
    assert "See\n\n[Reset your password](http" in inserted.text


def test_turn_into_article(agent_client, agent, customer, make_ticket):
    ticket = make_ticket(customer, subject="How do I export?", body="Where is export?")
    agent_client.post(f"/agent/tickets/{ticket.id}/reply", data={"body": "Use Settings > Export"})
    section = kb_article().section
    form = agent_client.get(f"/agent/tickets/{ticket.id}/article")
    assert "Where is export?" in form.text and "Use Settings &gt; Export" in form.text
    response = agent_client.post(f"/agent/tickets/{ticket.id}/article", data={
        "section": str(section.id), "title": "Exporting data", "body": "## How\n\nSettings"})
    assert response.status_code == 302
    article = db.session.scalar(select(Article).where(Article.title == "Exporting data"))
    assert article.status == ArticleStatus.DRAFT and article.author_id == agent.id
    assert db.session.scalar(select(ArticleRevision).where(
        ArticleRevision.article_id == article.id)).note.endswith(ticket.reference)
    missing = agent_client.post(f"/agent/tickets/{ticket.id}/article", data={
        "section": str(section.id), "title": "", "body": "kept text"})
    assert missing.status_code == 422 and "kept text" in missing.text


def merge_tickets(make_user, make_ticket, customer):
    other = make_user("customer", email="olga@example.com", name="Olga")
    target = make_ticket(customer, subject="Printer broken", body="Our printer is broken")
    duplicate = make_ticket(other, subject="Printer broken too", body="Same here, on floor 2")
    return target, duplicate


def test_merge_across_customers_asks_first_and_defaults_to_no_access(
        agent_client, agent, customer, make_user, make_ticket, mailbox):
    target, duplicate = merge_tickets(make_user, make_ticket, customer)
    url = f"/agent/tickets/{duplicate.id}/merge"
    asked = agent_client.post(url, data={"target": target.reference})
    assert asked.status_code == 200 and "has a different requester" in asked.text
    assert 'value="no" checked' in asked.text or re.search(r'checked[^>]*value="no"', asked.text)
    # The choice is sent back with the target it was asked for.
    assert f'name="confirmed_for" type="hidden" value="{target.reference}"' in asked.text
    db.session.refresh(duplicate)
    assert duplicate.merged_into_id is None  # nothing merged before the choice

    # The choice was made for another target: asked again.
    other_target = make_ticket(customer, subject="Scanner broken")
    again = agent_client.post(url, data={"target": other_target.reference,
                                         "confirmed_for": target.reference,
                                         "requester_access": "no"})
    assert again.status_code == 200 and other_target.reference in again.text
    db.session.refresh(duplicate)
    assert duplicate.merged_into_id is None

    response = agent_client.post(url, data={"target": target.reference,
                                            "confirmed_for": target.reference,
                                            "requester_access": "no"})
    assert response.status_code == 302 and response.location.endswith(f"/tickets/{target.id}")
    db.session.refresh(duplicate)
    assert duplicate.status == Status.CLOSED and duplicate.merged_into_id == target.id
    bodies = [m.body for m in db.session.scalars(
        select(Message).where(Message.ticket_id == target.id))]
    assert "Same here, on floor 2" in bodies
    assert any("was not given access" in body for body in bodies)
    assert db.session.scalar(select(TicketCC).where(TicketCC.ticket_id == target.id)) is None
    assert "merge" in kinds(target) and "merge" in kinds(duplicate)

    (told,) = mailbox.wait_for(1)
    text = mailbox.text(told)
    assert told["X-Envelope-To"] == "olga@example.com"
    assert target.reference not in told["Subject"] + text and "Printer broken\"" not in text
    assert "merged and closed" in told["Subject"]


def test_merge_across_customers_with_cc_shares_the_target(
        agent_client, customer, make_user, make_ticket, mailbox):
    target, duplicate = merge_tickets(make_user, make_ticket, customer)
    response = agent_client.post(f"/agent/tickets/{duplicate.id}/merge", data={
        "target": target.reference, "confirmed_for": target.reference, "requester_access": "cc"})
    assert response.status_code == 302
    assert db.session.scalar(select(TicketCC.email).where(TicketCC.ticket_id == target.id)) == (
        "olga@example.com")
    (told,) = mailbox.wait_for(1)
    assert target.reference in told["Subject"]


def test_merge_of_the_same_requester_needs_no_choice(agent_client, customer, make_ticket):
    target = make_ticket(customer, subject="Printer broken")
    duplicate = make_ticket(customer, subject="Printer still broken")
    response = agent_client.post(f"/agent/tickets/{duplicate.id}/merge",
                                 data={"target": target.reference})
    assert response.status_code == 302
    assert db.session.scalar(select(TicketCC).where(TicketCC.ticket_id == target.id)) is None

    missing = agent_client.post(f"/agent/tickets/{target.id}/merge", data={"target": "TKT-99999"})
    assert missing.status_code == 422 and "No ticket has that reference" in missing.text
    itself = agent_client.post(f"/agent/tickets/{target.id}/merge",
                               data={"target": target.reference})
    assert "cannot be merged into itself" in itself.text


def test_merge_copies_the_attachments(agent_client, customer, make_ticket):
    import io

    from portal.tickets.models import Attachment

    target = make_ticket(customer, subject="Printer broken")
    duplicate = make_ticket(customer, subject="Printer still broken")
    agent_client.post(f"/agent/tickets/{duplicate.id}/reply", data={
        "body": "Log attached", "attachments": [(io.BytesIO(b"paper jam\n"), "log.txt")]},
        content_type="multipart/form-data")
    agent_client.post(f"/agent/tickets/{duplicate.id}/merge", data={"target": target.reference})
    copy = db.session.scalar(select(Attachment).where(Attachment.ticket_id == target.id))
    assert copy is not None and copy.filename == "log.txt" and copy.message.body == "Log attached"
    download = agent_client.get(f"/agent/tickets/{target.id}/attachments/{copy.id}/log.txt")
    assert download.status_code == 200 and download.data == b"paper jam\n"
    download.close()
    original = db.session.scalar(select(Attachment).where(Attachment.ticket_id == duplicate.id))
    assert original.stored_name != copy.stored_name  # each ticket owns its file


def test_requesters_other_tickets(agent_client, customer, make_ticket):
    first = make_ticket(customer, subject="Earlier problem")
    second = make_ticket(customer, subject="New problem")
    page = agent_client.get(f"/agent/tickets/{second.id}")
    assert "Other tickets" in page.text and first.reference in page.text


def test_unknown_ticket_is_404(agent_client):
    assert agent_client.get("/agent/tickets/424242").status_code == 404


def test_customer_is_emailed_replies_but_never_notes(agent_client, mailbox, customer,
                                                     make_ticket):
    ticket = make_ticket(customer)
    agent_client.post(f"/agent/tickets/{ticket.id}/reply",
                      data={"body": "SECRET internal reasoning", "internal": "y"})
    agent_client.post(f"/agent/tickets/{ticket.id}/reply", data={"body": "Please try again"})
    messages = mailbox.wait_for(1)
    assert len(mailbox.to(customer.email)) == 1
    text = mailbox.text(messages[0])
    assert "Please try again" in text and "SECRET" not in text


def test_reply_with_attachment_and_agent_download(agent_client, customer, make_ticket):
    import io

    ticket = make_ticket(customer)
    response = agent_client.post(f"/agent/tickets/{ticket.id}/reply", data={
        "body": "Log attached", "attachments": [(io.BytesIO(b"line one\nline two\n"), "log.txt")]},
        content_type="multipart/form-data")
    assert response.status_code == 302
    page = agent_client.get(f"/agent/tickets/{ticket.id}")
    assert "log.txt" in page.text
    from portal.tickets.models import Attachment

    attachment = db.session.scalar(select(Attachment))
    download = agent_client.get(f"/agent/tickets/{ticket.id}/attachments/{attachment.id}/log.txt")
    assert download.status_code == 200 and download.data == b"line one\nline two\n"
    assert "attachment" in download.headers["Content-Disposition"]
    download.close()
    assert agent_client.get(
        f"/agent/tickets/{ticket.id + 1}/attachments/{attachment.id}/log.txt").status_code == 404
    refused = agent_client.post(f"/agent/tickets/{ticket.id}/reply", data={
        "body": "keep this text", "attachments": [(io.BytesIO(b"MZ\x90\x00" + b"\0" * 64),
                                                   "tool.exe")]},
        content_type="multipart/form-data")
    assert refused.status_code == 422 and "keep this text" in refused.text


def test_untouched_form_fields_are_remembered_by_value_and_follow_changes(
        agent_client, agent, customer, make_ticket):
    """The properties selects of an untouched page are rendered once per value: each ticket
    still shows its own values selected, a renamed agent shows at once, and a form sent back
    with errors shows what was typed."""
    from portal.auth.models import User

    group = Group(name="Billing")
    db.session.add(group)
    db.session.commit()
    first = make_ticket(customer, priority=Priority.URGENT, assignee_id=agent.id)
    second = make_ticket(customer, priority=Priority.LOW, group_id=group.id)
    first.tags = [Tag(name="vip")]
    db.session.commit()
    for _ in range(2):  # the second time from the per-process cache
        one = agent_client.get(f"/agent/tickets/{first.id}").text
        two = agent_client.get(f"/agent/tickets/{second.id}").text
        assert 'name="tags" type="text" value="vip"' in one
        assert 'name="tags" type="text" value=""' in two
        assert '<option selected value="urgent">' in one and '<option selected value="low">' in two
        assert f'<option selected value="{agent.id}">' in one
        assert f'<option selected value="{group.id}">Billing' in two
        assert '<option selected value="0">— unassigned —' in two

    db.session.get(User, agent.id).name = "Alexandra Agent"
    db.session.commit()
    assert f'<option selected value="{agent.id}">Alexandra Agent' in agent_client.get(
        f"/agent/tickets/{first.id}").text

    typed = agent_client.post(f"/agent/tickets/{first.id}/properties", data={
        "status": "open", "priority": "bogus", "type": "question", "category": "0",
        "group": str(group.id), "assignee": "0", "tags": ""})
    assert typed.status_code == 422
    assert f'<option selected value="{group.id}">Billing' in typed.text
    assert '<option selected value="0">— unassigned —' in typed.text


def test_the_page_reads_the_ticket_and_its_lists_in_one_statement(
        app, agent, agent_client, customer, make_ticket):
    """The ticket, its tags, CCs, timeline, conversation (notes and files included) and the
    requester's other tickets come in one statement (six before, a fifth of the page), as
    JSON lists put back in each list's own order; by address for a ticket without an
    account."""
    import io

    from sqlalchemy import event
    from werkzeug.datastructures import FileStorage

    from portal.agent import services
    from portal.tickets.models import Attachment, Ticket

    older = make_ticket(customer, subject="Toner smudges")
    ticket = make_ticket(customer, subject="Printer jams")
    newest = make_ticket(customer, subject="Scanner stripes")
    services.apply_changes(ticket, services.Changes(tags=["tray", "paperjam", "a-first"]), agent)
    db.session.add_all([TicketCC(ticket=ticket, email=email)
                        for email in ("zed@example.com", "boss@example.com")])
    services.reply(ticket, agent, "Which tray?", internal=True, files=[
        FileStorage(io.BytesIO(b"%PDF-1.4 tray map"), filename=name,
                    content_type="application/pdf") for name in ("tray map.pdf", "b.pdf")])
    services.reply(ticket, agent, "Try tray 2.", internal=False)
    db.session.commit()

    found, page = services.ticket_page(ticket.id)
    assert found is ticket
    assert page.tags == ["a-first", "paperjam", "tray"]
    assert page.ccs == ["boss@example.com", "zed@example.com"]
    assert [(m.body, m.internal, m.from_agent, [a.filename for a in m.attachments])
            for m in page.thread] == [
        ("It says my password is wrong.", False, False, []),
        ("Which tray?", True, True, ["tray map.pdf", "b.pdf"]),
        ("Try tray 2.", False, True, [])]
    files = db.session.scalars(select(Attachment).order_by(Attachment.id)).all()
    assert page.thread[1].attachments[0] == (files[0].id, "tray map.pdf", files[0].size)
    events = db.session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                .order_by(TicketEvent.created_at.desc(),
                                          TicketEvent.id.desc())).all()
    assert [(e.kind, e.public, e.created_at, e.new_value) for e in page.timeline] == [
        (e.kind, e.public, e.created_at, e.new_value) for e in events]
    assert page.timeline[-1].actor_name == customer.name
    assert [(o.id, o.subject, o.status) for o in page.other_tickets] == [
        (newest.id, "Scanner stripes", Status.NEW), (older.id, "Toner smudges", Status.NEW)]
    assert page.extras == services.TicketExtras(False, False, False, False)
    assert services.ticket_page(424242) is None

    visitor = make_ticket(None, subject="Visitor's second")
    make_ticket(None, subject="Visitor's first")
    assert [o.subject for o in services.ticket_page(visitor.id)[1].other_tickets] == [
        "Visitor's first"]
    assert [o.subject for o in services.ticket_page(older.id)[1].other_tickets] == [
        "Printer jams", "Scanner stripes"]  # the reply made it the most recently active
    assert isinstance(db.session.get(Ticket, visitor.id), Ticket)

    url = f"/agent/tickets/{ticket.id}"
    agent_client.get(url)  # the choice lists and untouched fields are kept after the first
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if statement.lstrip().startswith("SELECT") and "change_feed" not in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        text = agent_client.get(url).text
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(seen) == 1, seen
    assert "CC: boss@example.com, zed@example.com" in text and "and 2 CCs" in text
    assert 'name="tags" type="text" value="a-first, paperjam, tray"' in text
    assert "tray map.pdf" in text and "Toner smudges" in text and "Internal note" in text


def test_a_typed_reply_or_merge_stays_in_its_own_request(agent_client, customer, make_ticket):
    """The untouched reply and merge forms are shared by a process's requests: what one
    request typed (in the URL, or sent back with an error) never shows in the next."""
    ticket = make_ticket(customer)
    other = make_ticket(customer)
    url = f"/agent/tickets/{ticket.id}"
    blank = agent_client.get(url).text
    typed = agent_client.get(f"{url}?body=Half+written&internal=y&status_after=pending").text
    assert "Half written" in typed and '<option selected value="pending">' in typed
    assert 'value="y" checked' in typed
    refused = agent_client.post(f"{url}/merge", data={"target": "TKT-99999999"})
    assert refused.status_code == 422 and 'value="TKT-99999999"' in refused.text
    again = agent_client.get(url).text
    assert "Half written" not in again and "TKT-99999999" not in again
    assert '<option selected value="pending">' not in again and 'value="y" checked' not in again
    assert again.count("checked") == blank.count("checked") == 1
    assert agent_client.get(f"/agent/tickets/{other.id}").text.count("Half written") == 0


def test_the_parts_every_page_shares_follow_changes_from_any_process(
        app, agent_client, customer, make_ticket, make_user):
    """The canned reply options, the untouched fields and the assignee list are rendered once
    per process: a canned reply added by another process shows within about a second (the
    change feed), an agent added or a canned reply renamed by another request at once."""
    import sqlite3
    import time

    from portal.cluster import changes

    ticket = make_ticket(customer)
    url = f"/agent/tickets/{ticket.id}"
    changes.follower().refresh()
    assert "Refund steps" not in agent_client.get(url).text
    other = sqlite3.connect(app.config["DATABASE_URL"].removeprefix("sqlite:///"))
    other.execute("INSERT INTO canned_replies (title, body, created_at) "
                  "VALUES ('Refund steps', 'Go to billing.', datetime('now'))")
    other.execute("INSERT INTO change_feed (topic, created_at) VALUES ('agent-choices', "
                  "datetime('now'))")  # what the ORM records with that write
    other.commit()
    other.close()
    deadline = time.monotonic() + 3
    while ">Refund steps</option>" not in agent_client.get(url).text:
        assert time.monotonic() < deadline, "another process's canned reply was not seen"
        time.sleep(0.1)

    make_user("agent", email="nia@example.com", name="Nia Newcomer")
    canned = db.session.scalar(select(CannedReply).where(CannedReply.title == "Refund steps"))
    canned.title = "Refund, step by step"
    db.session.commit()
    page = agent_client.get(url).text
    assert ">Nia Newcomer</option>" in page and ">Refund, step by step</option>" in page
    assert "Refund steps" not in page
