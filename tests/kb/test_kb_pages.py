from sqlalchemy import select, update

from portal.extensions import db
from portal.kb.models import Article, ArticleView, SearchLog, Visibility
from portal.kb.view_counts import flush_views
from tests.conftest import PASSWORD
from tests.kb.conftest import url


def test_home_lists_categories_promoted_and_popular(client, kb):
    """The home page shows topics as cards (name, description, article count), then featured
    and most viewed; the sections and their articles are one click away on /kb/."""
    page = client.get("/").get_data(as_text=True)
    assert "How can we help?" in page
    assert "Billing" in page and 'class="category-count"' in page
    assert "Featured articles" in page and "Download an invoice" in page
    overview = client.get("/kb/").get_data(as_text=True)
    assert "Invoices" in overview and "Download an invoice" in overview
    for hidden in ("Refund playbook", "Draft invoice notes", "Old invoice portal",
                   "Change the billing email"):
        assert hidden not in page and hidden not in overview


def test_category_section_and_article_urls(client, kb):
    cat, sec, art = kb["category"], kb["section"], kb["public"]
    assert client.get(f"/kb/categories/{cat.id}-{cat.slug}").status_code == 200
    assert client.get(f"/kb/sections/{sec.id}-{sec.slug}").status_code == 200
    page = client.get(url(art)).get_data(as_text=True)
    assert 'id="h-where"' in page and "<strong>Billing</strong>" in page
    assert "Was this article helpful?" in page


def test_old_slug_redirects_permanently(client, kb, agent):
    from portal.kb.services import ArticleInput, update_article

    art = kb["public"]
    old = url(art)
    update_article(art, ArticleInput(title="Get your invoices", body=art.body,
                                     section_id=art.section_id), agent, art.version)
    db.session.commit()
    response = client.get(old + "?from_search=1")
    assert response.status_code == 301
    assert response.location.endswith(f"/kb/articles/{art.id}-get-your-invoices?from_search=1")


def test_hidden_articles_are_404_for_visitors_and_customers(client, auth, customer, kb):
    for key in ("customers", "internal", "draft", "archived"):
        assert client.get(url(kb[key])).status_code == 404
    auth.login(customer.email)
    assert client.get(url(kb["customers"])).status_code == 200
    for key in ("internal", "draft", "archived"):
        assert client.get(url(kb[key])).status_code == 404


def test_agents_see_internal_articles(agent_client, kb):
    assert agent_client.get(url(kb["internal"])).status_code == 200
    assert agent_client.get(url(kb["draft"])).status_code == 404


def test_views_are_counted_with_a_visitor_cookie_without_a_write_per_view(app, client, kb):
    def stored_views():
        return db.session.scalars(
            select(ArticleView).where(ArticleView.article_id == art.id)).all()

    art = kb["public"]
    client.get(url(art))
    cookie = client.get_cookie("portal_vid")
    assert cookie is not None and cookie.http_only
    client.get(url(art))
    assert stored_views() == []  # counted in memory: the page took no write lock
    assert flush_views() == 2
    views = stored_views()
    assert len(views) == 2 and {v.viewer_key for v in views} == {f"v:{cookie.value}"}
    db.session.refresh(art)
    assert art.view_count == 2
    assert flush_views() == 0  # nothing is counted twice
    # A view that finds the buffer old enough writes it, its own view included.
    app.config["VIEW_FLUSH_SECONDS"] = 0
    client.get(url(art))
    db.session.refresh(art)
    assert art.view_count == 3 and len(stored_views()) == 3


def test_article_html_is_rendered_when_saved_not_per_view(client, kb, agent):
    from portal.kb.services import ArticleInput, update_article

    art = kb["public"]
    update_article(art, ArticleInput(title=art.title, body="## Steps\n\n<script>x</script>Go",
                                     section_id=art.section_id), agent, art.version)
    db.session.commit()
    assert art.body_html.split() == ['<h2', 'id="h-steps">Steps</h2>', '<p>Go</p>']
    assert art.body_toc == [{"id": "h-steps", "name": "Steps", "level": 2}]
    db.session.execute(update(Article).where(Article.id == art.id)
                       .values(body_html=art.body_html.replace("Go", "Stored")))
    db.session.commit()
    assert "Stored" in client.get(url(art)).text  # the page shows what was stored


def test_search_page_logs_and_links_open_article(client, kb):
    page = client.get("/kb/search?q=invoice").get_data(as_text=True)
    entry = db.session.scalars(select(SearchLog)).one()
    assert entry.query == "invoice" and entry.result_count == 1 and entry.source == "search"
    link = f"{url(kb['public'])}?from_search={entry.id}"
    assert link in page and "invoice</mark>" in page
    client.get(link)
    flush_views()
    db.session.refresh(entry)
    assert entry.opened_article_id == kb["public"].id


def test_search_page_without_query_and_with_nasty_input(client, kb):
    assert client.get("/kb/search").status_code == 200
    for q in ['"unbalanced', "*", "AND OR NOT", "x" * 5000, "🙂🙂", "((", "a*"]:
        response = client.get("/kb/search", query_string={"q": q})
        assert response.status_code == 200, q


def test_instant_partial_and_js_off_redirect(client, kb):
    headers = {"HX-Request": "true", "HX-Target": "instant-results"}
    partial = client.get("/kb/search/instant?q=invoi", headers=headers).get_data(as_text=True)
    assert "Download an invoice" in partial and "<html" not in partial
    response = client.get("/kb/search/instant?q=invoi")
    assert response.status_code == 302 and response.location.endswith("/kb/search?q=invoi")


def test_vote_without_js_then_reason_then_change(client, kb):
    from portal.kb.models import ArticleVote

    art = kb["public"]
    client.get(url(art))
    response = client.post(f"/kb/articles/{art.id}/vote", data={"helpful": "no"})
    assert response.status_code == 302 and response.location.endswith("#article-feedback")
    page = client.get(url(art)).get_data(as_text=True)
    assert "What was wrong?" in page
    client.post(f"/kb/articles/{art.id}/vote",
                data={"helpful": "no", "reason": "outdated", "comment": "Menu moved"})
    vote = db.session.scalars(select(ArticleVote)).one()
    assert (vote.helpful, vote.reason, vote.comment) == (False, "outdated", "Menu moved")
    client.post(f"/kb/articles/{art.id}/vote", data={"helpful": "yes"})
    db.session.refresh(art)
    assert (art.helpful_yes, art.helpful_no) == (1, 0)
    assert len(db.session.scalars(select(ArticleVote)).all()) == 1


def test_vote_with_htmx_returns_the_feedback_partial(client, kb):
    art = kb["public"]
    headers = {"HX-Request": "true", "HX-Target": "article-feedback"}
    body = client.post(f"/kb/articles/{art.id}/vote", data={"helpful": "no"},
                       headers=headers).get_data(as_text=True)
    assert body.lstrip().startswith('<section id="article-feedback"')
    assert "What was wrong?" in body


def test_cannot_vote_on_hidden_article(client, kb):
    assert client.post(f"/kb/articles/{kb['internal'].id}/vote",
                       data={"helpful": "yes"}).status_code == 404


def test_the_home_page_reads_the_kb_once_until_it_changes(client, kb, agent):
    from portal.kb.services import ArticleInput, update_article
    from tests.test_query_counts import count_queries

    first = count_queries(client, "/")
    # BEGIN, the KB stamp and the known-issues banner (surges).
    assert count_queries(client, "/") <= 3 < first
    art = kb["public"]
    update_article(art, ArticleInput(title="Fetch your invoices", body=art.body,
                                     section_id=art.section_id), agent, art.version)
    db.session.commit()
    assert "Fetch your invoices" in client.get("/").text


def test_category_and_section_pages_read_the_kb_once_until_it_changes(client, kb, agent):
    """The category, its sections and a section's list are kept per process; a change to the
    KB (here: a section renamed, an article retitled) shows at once."""
    from portal.kb.models import KbSection
    from portal.kb.services import ArticleInput, update_article
    from tests.test_query_counts import count_queries

    cat, sec, art = kb["category"], kb["section"], kb["public"]
    category_url = f"/kb/categories/{cat.id}-{cat.slug}"
    section_url = f"/kb/sections/{sec.id}-{sec.slug}"
    for page in (category_url, section_url):
        first = count_queries(client, page)
        assert count_queries(client, page) < first, page
        # BEGIN and the change feed's poll at most: no category, section or article read.
        assert count_queries(client, page) <= 2, page
    db.session.get(KbSection, sec.id).name = "Invoices and receipts"
    db.session.commit()
    assert "Invoices and receipts" in client.get(category_url).text
    assert "Invoices and receipts" in client.get(section_url).text
    update_article(art, ArticleInput(title="Fetch your invoices", body=art.body,
                                     section_id=art.section_id), agent, art.version)
    db.session.commit()
    assert "Fetch your invoices" in client.get(section_url).text
    assert client.get("/kb/sections/999999-nothing").status_code == 404


def test_a_new_visitor_is_not_asked_for_a_vote_it_cannot_have(client, kb):
    """The article page of a visitor without a cookie skips the vote lookup; with its cookie
    the lookup comes back (and finds the vote). The article itself is kept per process."""
    from tests.test_query_counts import statements

    art = kb["public"]
    client.get(url(art))  # warm: the article and its related articles are kept
    fresh = client.__class__(client.application)
    assert not [s for s in statements(fresh, url(art)) if s.startswith("SELECT")]
    assert client.get_cookie("portal_vid") is not None
    returning = [s for s in statements(client, url(art)) if s.startswith("SELECT")]
    assert len(returning) == 1 and "FROM article_votes" in returning[0], returning
    client.post(f"/kb/articles/{art.id}/vote", data={"helpful": "yes"})
    assert "Thanks for letting us know!" in client.get(url(art)).text


def test_the_kept_article_follows_edits_visibility_and_votes(client, kb, agent):
    """The article page keeps its article per process until the knowledge base changes:
    an edit, a move out of the audience's sight and a vote all show on the next view."""
    from portal.kb.services import ArticleInput, update_article

    art = kb["public"]
    assert "Download an invoice" in client.get(url(art)).text
    update_article(art, ArticleInput(title="Download any invoice", body="Pick **one** of them.",
                                     section_id=art.section_id), agent, art.version)
    db.session.commit()
    page = client.get(url(art), follow_redirects=True).text
    assert "Download any invoice" in page and "<strong>one</strong>" in page
    staff = client.__class__(client.application)
    assert staff.post("/auth/login", data={"email": agent.email, "password": PASSWORD}
                      ).status_code == 303
    assert "0 found it helpful" in staff.get(url(art), follow_redirects=True).text
    client.post(f"/kb/articles/{art.id}/vote", data={"helpful": "yes"})
    assert "Thanks for letting us know!" in client.get(url(art), follow_redirects=True).text
    assert "1 found it helpful" in staff.get(url(art), follow_redirects=True).text
    update_article(art, ArticleInput(title=art.title, body=art.body, section_id=art.section_id,
                                     visibility=Visibility.INTERNAL), agent, art.version)
    db.session.commit()
    assert client.get(url(art), follow_redirects=True).status_code == 404
    assert staff.get(url(art), follow_redirects=True).status_code == 200


def test_warm_up_compiles_the_article_page_statements(app, client, kb):
    """gunicorn's master warms the article page up before forking (kb queries.warm_up,
    through the functions the page calls): a worker's first article page then compiles
    none of its reads."""
    from sqlalchemy import event
    from sqlalchemy.engine import default

    from portal.kb import queries

    queries.warm_up(app)
    page = url(kb["public"])
    misses = []

    def listener(_conn, _cursor, statement, _parameters, context, _many):
        if context is not None and context.cache_hit is default.CACHE_MISS:
            misses.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert client.get(page).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert [s for s in misses if s.startswith("SELECT")] == []
