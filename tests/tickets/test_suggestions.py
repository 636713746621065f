import re
import time
from datetime import timedelta

from sqlalchemy import select, text

from portal import write_buffer
from portal.db import utcnow
from portal.extensions import db
from portal.kb.models import Article, ArticleStatus, Visibility
from portal.tickets import suggestions
from portal.tickets.models import SuggestionEvent, Ticket

HTMX = {"HX-Request": "true"}


def _events(kind):
    return db.session.scalars(select(SuggestionEvent).where(SuggestionEvent.kind == kind)).all()


def test_suggestions_show_only_what_the_person_may_read(client, auth, customer, kb_article):
    public = kb_article("Reset your password", "Use the forgot password link.")
    members = kb_article("Password rules for customers", visibility=Visibility.CUSTOMERS)
    internal = kb_article("Password override procedure", visibility=Visibility.INTERNAL)
    draft = kb_article("Password draft notes", status=ArticleStatus.DRAFT)
    params = {"subject": "forgot my password", "description": "", "form_key": "fk1"}

    visitor = client.get("/tickets/new/suggestions", query_string=params,
                         headers=HTMX).get_data(as_text=True)
    assert public.title in visitor
    assert members.title not in visitor and internal.title not in visitor
    assert draft.title not in visitor

    auth.login(customer.email)
    signed_in = client.get("/tickets/new/suggestions", query_string=params,
                           headers=HTMX).get_data(as_text=True)
    assert public.title in signed_in and members.title in signed_in
    assert internal.title not in signed_in and draft.title not in signed_in
    write_buffer.flush(suggestions.BUFFER)
    assert {e.article_id for e in _events("impression")} == {public.id, members.id}
    assert client.get(f"/tickets/new/suggestions/{internal.id}?form_key=fk1").status_code == 404


def test_open_and_deflect_are_recorded_and_no_ticket_is_made(customer_client, kb_article):
    article = kb_article("Reset your password", "Use the forgot password link on sign-in.")
    inline = customer_client.get(f"/tickets/new/suggestions/{article.id}?form_key=fk2",
                                 headers={"HX-Request": "true"})
    assert b"This answered my question" in inline.data and b"<html" not in inline.data
    page = customer_client.get(f"/tickets/new/suggestions/{article.id}?form_key=fk2")
    assert b"<html" in page.data and b"forgot password link" in page.data
    done = customer_client.post(f"/tickets/new/suggestions/{article.id}/answered",
                                data={"form_key": "fk2"})
    assert done.status_code == 200 and b"Glad that helped" in done.data
    # The deflection is written with its POST; the opens (GETs) once the buffer is flushed.
    assert [(e.article_id, e.form_key) for e in _events("deflected")] == [(article.id, "fk2")]
    assert _events("open") == []
    write_buffer.flush(suggestions.BUFFER)
    assert [e.form_key for e in _events("open")] == ["fk2", "fk2"]
    assert db.session.scalar(select(Ticket)) is None


def test_check_for_answers_without_js_keeps_everything_typed(customer_client, kb_article):
    article = kb_article("Reset your password")
    response = customer_client.post("/tickets/new", data={
        "subject": "password reset broken", "description": "My typed words", "check": "1",
        "type": "incident", "cc": "pat@example.com", "form_key": "fk3",
    })
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and article.title in html
    assert "My typed words" in html and 'value="pat@example.com"' in html
    assert '<option selected value="incident">' in html and 'value="fk3"' in html
    assert db.session.scalar(select(Ticket)) is None


def test_impressions_are_counted_in_memory_and_written_in_one_statement(client, kb_article):
    """A suggestions request (a GET, typed at speed) writes nothing: no write lock per request.
    The flush writes every buffered impression in one INSERT of one row's parameters, run for
    each row (rows written into the SQL made a new statement to compile every time)."""
    from sqlalchemy import event

    kb_article("Reset your password", "Use the forgot password link.")
    kb_article("Password rules", "Twelve characters at least.")
    inserts: list[tuple[str, bool]] = []

    def record(_conn, _cursor, statement, _parameters, _context, executemany):
        if statement.startswith("INSERT INTO suggestion_events"):
            inserts.append((statement, executemany))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        for subject in ("forgot my password", "password rules", "reset password rules"):
            client.get("/tickets/new/suggestions", headers=HTMX,
                       query_string={"subject": subject, "description": "", "form_key": "k"})
        assert inserts == []
        assert write_buffer.flush(suggestions.BUFFER) >= 4
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(inserts) == 1 and inserts[0][1]  # one statement, executemany
    assert inserts[0][0].count("?") == 5  # one row's values: kind, article, key, query, time
    assert len(_events("impression")) >= 4
    assert write_buffer.flush(suggestions.BUFFER) == 0  # nothing is written twice


def test_impressions_reach_the_deflection_report(app, client, auth, agent, kb_article):
    """The report writes this process's buffered impressions before it reads; an impression
    keeps the time it was shown."""
    kb_article("Reset your password", "Use the forgot password link.")
    before = utcnow()
    shown = client.get("/tickets/new/suggestions", headers=HTMX, query_string={
        "subject": "forgot my password", "description": "", "form_key": "fk5"})
    assert "Reset your password" in shown.text
    assert _events("impression") == []  # not written by the request
    auth.login(agent.email)
    page = client.get("/agent/reports")
    shown_count = re.search(r"<dt>Suggestions shown</dt><dd>(\d+)</dd>", page.text)
    assert shown_count and shown_count.group(1) == "1"
    (impression,) = _events("impression")
    assert before <= impression.created_at <= before + timedelta(seconds=5)


def test_a_request_writes_the_buffer_once_it_is_old_enough(app, client, kb_article):
    """A request that finds the oldest buffered event VIEW_FLUSH_SECONDS old writes them all
    (its own too); with 0, every request writes its own, as before."""
    kb_article("Reset your password", "Use the forgot password link.")

    def suggest(form_key):
        client.get("/tickets/new/suggestions", headers=HTMX, query_string={
            "subject": "forgot my password", "description": "", "form_key": form_key})

    suggest("fk6")
    assert _events("impression") == []
    app.config["VIEW_FLUSH_SECONDS"] = 0.01
    time.sleep(0.02)  # the first impression is now older than that
    suggest("fk7")
    assert sorted(e.form_key for e in _events("impression")) == ["fk6", "fk7"]
    app.config["VIEW_FLUSH_SECONDS"] = 0
    suggest("fk8")
    assert sorted(e.form_key for e in _events("impression")) == ["fk6", "fk7", "fk8"]


def test_an_impression_of_an_article_deleted_before_the_flush_is_kept(client, kb_article):
    """Nothing is lost: the event stays, without its article (as deleting it does to the
    events already stored)."""
    article = kb_article("Reset your password", "Use the forgot password link.")
    client.get("/tickets/new/suggestions", headers=HTMX, query_string={
        "subject": "forgot my password", "description": "", "form_key": "fk9"})
    db.session.delete(db.session.get(Article, article.id))
    db.session.commit()
    assert write_buffer.flush(suggestions.BUFFER) == 1
    assert [(e.article_id, e.form_key) for e in _events("impression")] == [(None, "fk9")]


def test_a_failed_write_of_the_buffer_keeps_the_rows_and_the_page(app, client, kb_article):
    """The database refusing the write (here: its table gone for a moment) is no error of the
    suggestion request: the page answers, the rows stay buffered, the next due request writes
    them all."""
    kb_article("Reset your password", "Use the forgot password link.")

    def suggest(form_key):
        return client.get("/tickets/new/suggestions", headers=HTMX, query_string={
            "subject": "forgot my password", "description": "", "form_key": form_key})

    app.config["VIEW_FLUSH_SECONDS"] = 0.01
    table = SuggestionEvent.__tablename__
    db.session.execute(text(f"ALTER TABLE {table} RENAME TO away"))
    db.session.commit()
    try:
        suggest("fk10")
        time.sleep(0.02)
        refused = suggest("fk11")  # due: its write fails
        assert refused.status_code == 200 and "Reset your password" in refused.text
    finally:
        db.session.rollback()
        db.session.execute(text(f"ALTER TABLE away RENAME TO {table}"))
        db.session.commit()
    time.sleep(0.02)
    suggest("fk12")
    assert sorted(e.form_key for e in _events("impression")) == ["fk10", "fk11", "fk12"]
