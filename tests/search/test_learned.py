"""Suggestions that learn from the questions customers said were answered, with the real
model, job worker and both search backends (bench/data/README.md, eleventh round)."""

import html
import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.kb.models import Article, LearnedConfirmation, LearnedQuestion, Visibility
from portal.kb.services import ArticleInput, update_article
from portal.search import Audience, learned, search_articles, semantic, suggest_articles
from portal.tickets.models import SuggestionEvent

SEMANTIC = pytest.mark.parametrize("app", [{"SEMANTIC_SEARCH": True}], indirect=True)
BOTH_BACKENDS = pytest.mark.parametrize("search_backend", ["whoosh", "postgres"], indirect=True)
HTMX = {"HX-Request": "true"}


def ids(hits):
    return [h.article_id for h in getattr(hits, "hits", hits)]


@pytest.fixture
def corpus(make_article):
    return {
        "offline": make_article(
            "Printer shows offline",
            "Check the cable or Wi-Fi connection, then restart the print spooler service."),
        "driver": make_article(
            "Installing the printer driver",
            "Download the driver for your printer model from the support site and run the "
            "installer; restart the computer when it asks."),
        "refund": make_article(
            "Refunds for duplicate charges",
            "If a payment was taken twice, we return the extra charge to your card within "
            "five working days. No action is needed on your side."),
        "internal": make_article(
            "Printer fleet maintenance runbook",
            "Agents: printers that stay offline after a spooler restart go to the facilities "
            "team with the asset number.", visibility=Visibility.INTERNAL),
    }


def _answered_token(client, question: str, article_id: int, form_key: str) -> str:
    """Through the pages, as a customer's browser: the suggestion panel, the opened
    suggestion, and the token its "This answered my question" form carries ("" if none)."""
    panel = client.get("/tickets/new/suggestions", headers=HTMX, query_string={
        "subject": question, "description": "", "form_key": form_key}).get_data(as_text=True)
    link = re.search(rf'href="(/tickets/new/suggestions/{article_id}\?[^"]*)"', panel)
    assert link, f"article {article_id} was not suggested for {question!r}"
    opened = client.get(html.unescape(link.group(1)), headers=HTMX).get_data(as_text=True)
    token = re.search(r'name="answered" value="([^"]*)"', opened)
    return html.unescape(token.group(1)) if token else ""


def _answer(client, article_id: int, form_key: str, token: str):
    return client.post(f"/tickets/new/suggestions/{article_id}/answered",
                       data={"form_key": form_key, "answered": token})


def _teach(users, question: str, article, form_key: str = "fk-teach") -> None:
    """A pair as each user's deflection would keep it (the token made by the app); its vector
    is computed by the job."""
    for user in users:
        token = learned.answer_token(user, question, [article.id], form_key)
        learned.learn(user, token, article, form_key)
        db.session.commit()


@pytest.fixture
def customers(customer, make_user):
    """Enough customers for a learned question to act (semantic.LEARNED_MIN_CUSTOMERS)."""
    return [customer, *(make_user() for _ in range(semantic.LEARNED_MIN_CUSTOMERS - 1))]


@SEMANTIC
def test_a_confirmed_deflection_teaches_its_question_once_per_customer(
        app, client, auth, make_user, corpus, run_jobs):
    question = "my printer says it is offline"
    article = corpus["offline"]
    first, second = make_user(), make_user()
    auth.login(first.email)
    token = _answered_token(client, question, article.id, "fk1")
    assert token
    assert _answer(client, article.id, "fk1", token).status_code == 200
    assert _answer(client, article.id, "fk1", token).status_code == 200  # double submit
    auth.logout()
    auth.login(second.email)
    token = _answered_token(client, question.upper() + "  ", article.id, "fk2")
    assert _answer(client, article.id, "fk2", token).status_code == 200

    row = db.session.scalars(select(LearnedQuestion)).one()
    assert (row.question, row.article_id, row.customers) == (question, article.id, 2)
    assert {c.user_id for c in db.session.scalars(select(LearnedConfirmation))} \
        == {first.id, second.id}
    assert len(db.session.scalars(select(SuggestionEvent).where(
        SuggestionEvent.kind == "deflected")).all()) == 3
    assert row.vector is None  # never computed in the request
    run_jobs()  # the job enqueued with the first confirmation
    db.session.expire_all()
    row = db.session.get(LearnedQuestion, row.id)
    assert row.vector is not None and row.model == semantic.MODEL_ID


@SEMANTIC
def test_without_javascript_the_checked_answers_teach_too(app, customer_client, customer, corpus):
    article = corpus["offline"]
    page = customer_client.post("/tickets/new", data={
        "subject": "my printer says it is offline", "description": "", "check": "1",
        "type": "incident", "form_key": "fk-nojs"}).get_data(as_text=True)
    link = re.search(rf'href="(/tickets/new/suggestions/{article.id}\?[^"]*)"', page)
    opened = customer_client.get(html.unescape(link.group(1))).get_data(as_text=True)
    assert "<html" in opened
    token = html.unescape(re.search(r'name="answered" value="([^"]*)"', opened).group(1))
    assert _answer(customer_client, article.id, "fk-nojs", token).status_code == 200
    row = db.session.scalars(select(LearnedQuestion)).one()
    assert (row.question, row.article_id, row.customers) == (
        "my printer says it is offline", article.id, 1)


@SEMANTIC
def test_a_forged_or_stale_token_learns_nothing_and_still_records_the_deflection(
        app, client, auth, make_user, customer, corpus, monkeypatch):
    question = "my printer says it is offline"
    offline, refund = corpus["offline"], corpus["refund"]
    auth.login(customer.email)
    token = _answered_token(client, question, offline.id, "fk1")
    forged = learned.answer_token(customer, "free money", [offline.id], "fk1")
    forged = forged[:-4] + ("AAAA" if not forged.endswith("AAAA") else "BBBB")
    other = make_user()
    someone_elses = learned.answer_token(other, question, [offline.id], "fk1")
    for article, form_key, sent in [
        (offline, "fk1", forged),  # the signature does not match
        (offline, "fk1", "not a token at all"),
        (refund, "fk1", token),  # signed for another article
        (offline, "fk9", token),  # ... for another form
        (offline, "fk1", someone_elses),  # ... for another customer
        (offline, "fk1", ""),
    ]:
        assert _answer(client, article.id, form_key, sent).status_code == 200
    monkeypatch.setattr(learned, "TOKEN_MAX_AGE", -1)  # a day later
    assert _answer(client, offline.id, "fk1", token).status_code == 200
    assert db.session.scalars(select(LearnedQuestion)).all() == []
    assert len(db.session.scalars(select(SuggestionEvent).where(
        SuggestionEvent.kind == "deflected")).all()) == 7
    # A visitor's panel carries no token: a visitor counts for no one; nor does staff's.
    auth.logout()
    assert _answered_token(client, question, offline.id, "fk3") == ""
    auth.login(make_user("agent").email)
    assert _answered_token(client, question, offline.id, "fk4") == ""


@SEMANTIC
@BOTH_BACKENDS
def test_a_learned_question_lifts_its_candidate_article_to_first(
        app, customers, corpus, run_jobs):
    question = "printer offline after installing new driver"
    other = "how do i get the printer back online"
    before = ids(suggest_articles(question, Audience.CUSTOMERS))
    other_before = ids(suggest_articles(other, Audience.CUSTOMERS))
    assert len(before) >= 2
    lifted = before[1]
    _teach(customers, question, db.session.get(Article, lifted))
    run_jobs()
    assert ids(suggest_articles(question, Audience.CUSTOMERS))[0] == lifted
    assert ids(search_articles(question, Audience.PUBLIC))[0] == lifted
    # The same question in other words is not a repeat: ranked as before.
    assert ids(suggest_articles(other, Audience.CUSTOMERS)) == other_before


@SEMANTIC
@BOTH_BACKENDS
def test_one_customer_alone_does_not_choose_what_everyone_sees_first(
        app, customer, make_user, corpus, run_jobs):
    question = "printer offline after installing new driver"
    before = ids(suggest_articles(question, Audience.CUSTOMERS))
    lifted = db.session.get(Article, before[1])
    _teach([customer], question, lifted)
    run_jobs()  # its vector is there: it waits for a second customer
    assert ids(suggest_articles(question, Audience.CUSTOMERS)) == before
    _teach([make_user()], question, lifted)  # no new vector: the confirmation is the change
    assert ids(suggest_articles(question, Audience.CUSTOMERS))[0] == lifted.id


@SEMANTIC
@BOTH_BACKENDS
def test_a_learned_question_never_adds_an_article_nor_answers_the_unrelated(
        app, customers, corpus, run_jobs):
    question = "my printer says it is offline"
    before = ids(suggest_articles(question, Audience.CUSTOMERS))
    assert corpus["refund"].id not in before
    _teach(customers, question, corpus["refund"])
    unrelated = "best lasagne recipe with spinach"
    _teach(customers, unrelated, corpus["refund"], "fk-2")
    run_jobs()
    assert corpus["refund"].id not in ids(suggest_articles(question, Audience.CUSTOMERS))
    assert suggest_articles(unrelated, Audience.CUSTOMERS) == []
    assert search_articles(unrelated, Audience.PUBLIC).hits == []


@SEMANTIC
@BOTH_BACKENDS
def test_a_learned_question_never_shows_an_article_made_internal_since(
        app, customers, agent, corpus, run_jobs):
    question = "printer offline after installing new driver"
    lifted = ids(suggest_articles(question, Audience.CUSTOMERS))[1]
    article = db.session.get(Article, lifted)
    _teach(customers, question, article)
    run_jobs()
    assert ids(suggest_articles(question, Audience.CUSTOMERS))[0] == lifted
    update_article(article, ArticleInput(
        title=article.title, body=article.body, section_id=article.section_id,
        visibility=Visibility.INTERNAL), agent, expected_version=article.version)
    db.session.commit()
    run_jobs()
    for audience in (Audience.PUBLIC, Audience.CUSTOMERS):
        assert lifted not in ids(suggest_articles(question, audience, limit=10))
        assert lifted not in ids(search_articles(question, audience))
    assert ids(suggest_articles(question, Audience.AGENTS))[0] == lifted


@SEMANTIC
def test_an_admin_sees_and_forgets_a_learned_question(
        app, client, auth, admin, customers, corpus, run_jobs):
    question = "printer offline after installing new driver"
    before = ids(suggest_articles(question, Audience.CUSTOMERS))
    lifted = before[1]
    _teach(customers, question, db.session.get(Article, lifted))
    run_jobs()
    assert ids(suggest_articles(question, Audience.CUSTOMERS))[0] == lifted
    auth.login(admin.email)
    app.config["WTF_CSRF_ENABLED"] = True
    status = client.get("/admin/search-status").get_data(as_text=True)
    assert "/admin/search-status/learned" in status and "0.85" in status
    page = client.get("/admin/search-status/learned").get_data(as_text=True)
    assert question in page and f'data-label="Customers">{len(customers)}</td>' in page
    row = db.session.scalars(select(LearnedQuestion)).one()
    url = f"/admin/search-status/learned/{row.id}/forget"
    assert client.post(url).status_code == 400  # no CSRF token
    assert db.session.get(LearnedQuestion, row.id).forgotten_at is None
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    done = client.post(url, data={"csrf_token": token}, follow_redirects=True)
    assert done.status_code == 200 and question not in done.get_data(as_text=True)
    assert ids(suggest_articles(question, Audience.CUSTOMERS)) == before
    # The same pair is never learned again.
    _teach(customers, question, db.session.get(Article, lifted), "fk-again")
    db.session.expire_all()
    assert db.session.get(LearnedQuestion, row.id).customers == len(customers)
    assert learned.count() == 0


@SEMANTIC
def test_a_deleted_articles_learned_questions_go(app, customers, corpus, run_jobs):
    _teach(customers, "my printer says it is offline", corpus["offline"])
    run_jobs()
    db.session.delete(corpus["offline"])
    db.session.commit()
    assert db.session.scalars(select(LearnedQuestion)).all() == []
    assert db.session.scalars(select(LearnedConfirmation)).all() == []
