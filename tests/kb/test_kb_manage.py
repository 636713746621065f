from sqlalchemy import func, select

from portal.extensions import db
from portal.kb.models import Article, ArticleRevision, ArticleStatus, ArticleVote, SearchLog
from portal.search import Audience, search_articles


def article_form(section, **overrides):
    data = {"title": "Set up single sign-on", "section_id": section.id,
            "body": "## Steps\n\nOpen **Settings**.", "labels": "sso, saml",
            "visibility": "public", "action": "publish"}
    data.update(overrides)
    return data


def test_management_is_for_agents_only(client, customer_client, kb):
    assert client.get("/agent/kb/").status_code == 404
    assert customer_client.get("/agent/kb/").status_code == 404
    assert customer_client.post("/agent/kb/preview", data={"body": "x"}).status_code == 404


def test_list_shows_every_status_with_counts_and_filters(agent_client, kb):
    page = agent_client.get("/agent/kb/").get_data(as_text=True)
    for title in ("Download an invoice", "Refund playbook", "Draft invoice notes",
                  "Old invoice portal"):
        assert title in page
    drafts = agent_client.get("/agent/kb/?status=draft").get_data(as_text=True)
    assert "Draft invoice notes" in drafts and "Refund playbook" not in drafts
    found = agent_client.get("/agent/kb/?q=refund").get_data(as_text=True)
    assert "Refund playbook" in found and "Download an invoice" not in found


def test_create_publish_then_it_is_searchable(agent_client, kb, run_jobs):
    response = agent_client.post("/agent/kb/new", data=article_form(kb["section"]))
    assert response.status_code == 302
    article = db.session.scalars(select(Article).where(Article.title.like("Set up%"))).one()
    assert article.status == ArticleStatus.PUBLISHED and article.labels == "sso, saml"
    # The request only queued the index update; a worker applies it.
    assert search_articles("saml", Audience.PUBLIC).hits == []
    assert run_jobs() == 1
    assert [h.article_id for h in search_articles("saml", Audience.PUBLIC).hits] == [article.id]


def test_invalid_form_keeps_what_was_typed(agent_client, kb):
    response = agent_client.post("/agent/kb/new",
                                 data=article_form(kb["section"], title="", body="Keep me"))
    assert response.status_code == 400
    assert "Keep me" in response.get_data(as_text=True)


def test_preview_renders_sanitised_markdown(agent_client, kb):
    body = agent_client.post("/agent/kb/preview", data={
        "body": "## Hi\n\n<script>alert(1)</script>[x](javascript:alert(1))",
    }).get_data(as_text=True)
    assert 'id="h-hi"' in body and "<script" not in body and "javascript:" not in body


def test_preview_button_without_js_saves_nothing(agent_client, kb):
    before = db.session.scalar(select(func.count(Article.id)))
    response = agent_client.post("/agent/kb/new",
                                 data=article_form(kb["section"], action="preview"))
    assert response.status_code == 200
    assert "<strong>Settings</strong>" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Article.id))) == before


def test_edit_records_revisions_and_stale_save_is_refused(agent_client, kb):
    art = kb["public"]
    version = art.version
    first = article_form(kb["section"], title="Download invoices", version=version,
                         action="save")
    assert agent_client.post(f"/agent/kb/{art.id}/edit", data=first).status_code == 302
    stale = article_form(kb["section"], title="My stale title", body="My careful text",
                         version=version, action="save")
    response = agent_client.post(f"/agent/kb/{art.id}/edit", data=stale)
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "saved a newer version" in page and "My careful text" in page
    db.session.refresh(art)
    assert art.title == "Download invoices" and art.version == version + 1
    numbers = db.session.scalars(select(ArticleRevision.number).where(
        ArticleRevision.article_id == art.id)).all()
    assert sorted(numbers) == [1, 2]


def test_status_changes_reach_search(agent_client, kb, run_jobs):
    art = kb["public"]
    response = agent_client.post(f"/agent/kb/{art.id}/status/unpublish",
                                 data={"version": art.version})
    assert response.status_code == 302
    run_jobs()
    assert search_articles("invoice", Audience.PUBLIC).total == 0
    db.session.refresh(art)
    agent_client.post(f"/agent/kb/{art.id}/status/publish", data={"version": art.version})
    run_jobs()
    assert search_articles("invoice", Audience.PUBLIC).total == 1
    db.session.refresh(art)
    agent_client.post(f"/agent/kb/{art.id}/status/archive", data={"version": art.version})
    run_jobs()
    db.session.refresh(art)
    assert art.status == ArticleStatus.ARCHIVED
    assert art.id not in [h.article_id for h in search_articles("invoice", Audience.AGENTS).hits]


def test_history_diff_and_restore(agent_client, kb, run_jobs):
    art = kb["public"]
    agent_client.post(f"/agent/kb/{art.id}/edit", data=article_form(
        kb["section"], title=art.title, body="Completely new text", version=art.version,
        action="save"))
    page = agent_client.get(f"/agent/kb/{art.id}/history?a=1&b=2").get_data(as_text=True)
    assert "diff-add" in page and "+Completely new text" in page
    db.session.refresh(art)
    response = agent_client.post(f"/agent/kb/{art.id}/revisions/1/restore",
                                 data={"version": art.version})
    assert response.status_code == 302
    db.session.refresh(art)
    assert art.version == 3 and "pick the invoice" in art.body
    run_jobs()
    assert search_articles("pick", Audience.PUBLIC).total == 1


def test_categories_sections_create_rename_reorder_and_move(agent_client, kb, run_jobs):
    from portal.kb.models import KbCategory, KbSection

    agent_client.post("/agent/kb/categories", data={"kind": "category", "cat-name": "Security"})
    security = db.session.scalars(select(KbCategory).where(KbCategory.name == "Security")).one()
    agent_client.post("/agent/kb/categories", data={
        "kind": "section", "sec-category_id": security.id, "sec-name": "Two-factor"})
    twofa = db.session.scalars(select(KbSection).where(KbSection.name == "Two-factor")).one()
    agent_client.post(f"/agent/kb/categories/{security.id}/move/up")
    db.session.refresh(security)
    assert security.position == 0
    agent_client.post(f"/agent/kb/sections/{kb['section'].id}/edit", data={
        "name": "Invoices and receipts", "description": "", "category_id": kb["category"].id})
    run_jobs()
    assert search_articles("receipts", Audience.PUBLIC).total == 1
    agent_client.post("/agent/kb/move", data={"article_ids": [kb["public"].id],
                                               "section_id": twofa.id})
    run_jobs()
    db.session.refresh(kb["public"])
    assert kb["public"].section_id == twofa.id
    hit = search_articles("invoice", Audience.PUBLIC).hits[0]
    assert hit.section == "Two-factor" and hit.category == "Security"


def test_report_and_mark_review_done(agent_client, client, kb):
    from portal.kb.services import cast_vote, log_search

    log_search("refund policy", 0, "search")
    log_search("invoice", 1, "search")
    vote = cast_vote(kb["public"], "v:abc", False, "unclear", "Which menu?")
    db.session.commit()
    page = agent_client.get("/agent/kb/report").get_data(as_text=True)
    assert "refund policy" in page and "Which menu?" in page and "Unclear" in page
    headers = {"HX-Request": "true", "HX-Target": f"review-{vote.id}"}
    response = agent_client.post(f"/agent/kb/reviews/{vote.id}/done", headers=headers)
    assert response.status_code == 200 and response.get_data(as_text=True) == ""
    db.session.refresh(vote)
    assert vote.review_done
    assert db.session.scalar(select(func.count(SearchLog.id))) == 2
    assert db.session.get(ArticleVote, vote.id).review_done


def test_review_done_without_js_redirects_back(agent_client, kb):
    from portal.kb.services import cast_vote

    vote = cast_vote(kb["public"], "v:xyz", False, "outdated")
    db.session.commit()
    response = agent_client.post(f"/agent/kb/reviews/{vote.id}/done")
    assert response.status_code == 302 and response.location.endswith("#needs-review")
    db.session.refresh(vote)
    assert vote.review_done
    assert "Nothing to review." in agent_client.get("/agent/kb/report").get_data(as_text=True)


def test_changing_a_vote_back_to_no_puts_it_back_in_review(agent_client, kb):
    from portal.kb.services import cast_vote

    vote = cast_vote(kb["public"], "v:xyz", False, "unclear")
    vote.review_done = True
    cast_vote(kb["public"], "v:xyz", True)
    cast_vote(kb["public"], "v:xyz", False, "outdated")
    db.session.commit()
    db.session.refresh(kb["public"])
    assert (kb["public"].helpful_yes, kb["public"].helpful_no) == (0, 1)
    assert not vote.review_done and vote.reason == "outdated"
