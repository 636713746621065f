from sqlalchemy import select

from portal.extensions import db
from portal.kb.models import ArticleStatus, Visibility
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
    assert [e.form_key for e in _events("open")] == ["fk2", "fk2"]
    assert [(e.article_id, e.form_key) for e in _events("deflected")] == [(article.id, "fk2")]
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


def test_impressions_are_one_statement_compiled_once(client, kb_article):
    """However many articles were shown, the impressions are one INSERT of one row's
    parameters, run for each row (rows written into the SQL made a new statement to compile
    on every suggestion request)."""
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
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(inserts) == 3 and len({statement for statement, _many in inserts}) == 1
    assert inserts[0][0].count("?") == 5  # one row's values: kind, article, key, query, time
    assert len(_events("impression")) >= 4
