"""KB through the API: the editor's services (revisions, version check), the reader's
visibility rules, and search through the portal's own index."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.extensions import db
from portal.kb.models import ArticleRevision


def test_write_edit_publish_with_revisions_and_conflicts(app, world, bearer, run_jobs):
    agent, customer = bearer(world.agent), bearer(world.stranger)
    category = agent.post("/api/v1/kb/categories", json={"name": "Billing"}).get_json()
    section = agent.post("/api/v1/kb/sections", json={
        "name": "Invoices", "category_id": category["id"]}).get_json()
    created = agent.post("/api/v1/kb/articles", json={
        "title": "Download an invoice", "body": "Open Billing, then Invoices.",
        "section_id": section["id"], "labels": ["billing", "pdf"]})
    assert created.status_code == 201
    article = created.get_json()
    url = f"/api/v1/kb/articles/{article['id']}"
    assert article["status"] == "draft" and article["labels"] == ["billing", "pdf"]
    assert customer.get(url).status_code == 404  # drafts are for staff
    etag = created.headers["ETag"]
    edited = agent.patch(url, json={"title": "Download invoices"}, headers={"If-Match": etag})
    assert edited.status_code == 200 and edited.get_json()["version"] == 2
    stale = agent.patch(url, json={"title": "Lost update"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    published = agent.post(f"{url}/publish", headers={"If-Match": edited.headers["ETag"]})
    assert published.status_code == 200 and published.get_json()["status"] == "published"
    assert customer.get(url).get_json()["title"] == "Download invoices"
    revisions = db.session.scalar(select(func.count(ArticleRevision.id)).where(
        ArticleRevision.article_id == article["id"]))
    assert revisions == 3  # created, edited, published
    run_jobs()  # the search index is updated by a job
    hits = customer.get("/api/v1/search?q=invoices").get_json()["data"]
    assert article["id"] in [h["article_id"] for h in hits]


def test_search_and_lists_follow_the_audience(app, world, bearer):
    customer, agent = bearer(world.stranger), bearer(world.agent)
    for client, sees_internal in ((customer, False), (agent, True)):
        text = client.get("/api/v1/search?q=printer smokes").get_data(as_text=True)
        assert (world.secret in text) is sees_internal
    listing = customer.get("/api/v1/kb/articles?limit=100").get_data(as_text=True)
    assert world.secret not in listing
    assert customer.post("/api/v1/kb/articles", json={
        "title": "x", "body": "y", "section_id": world.public_article.section_id,
    }).status_code == 403
