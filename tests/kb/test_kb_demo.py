from sqlalchemy import func, select

from portal.extensions import db
from portal.kb.demo import seed_kb
from portal.kb.models import Article, ArticleStatus, IndexQueue, Visibility
from portal.search import Audience, search_articles


def test_demo_content_is_seeded_and_searchable_once_the_worker_ran(app, agent, run_jobs):
    seed_kb(agent)
    db.session.commit()
    assert db.session.scalar(select(func.count(IndexQueue.article_id))) > 0  # queued, not run
    run_jobs()
    count = db.session.scalar(select(func.count(Article.id)))
    assert count >= 22
    assert db.session.scalar(select(func.count(IndexQueue.article_id))) == 0
    statuses = set(db.session.execute(select(Article.status, Article.visibility)).all())
    assert (ArticleStatus.DRAFT, Visibility.PUBLIC) in statuses
    assert (ArticleStatus.PUBLISHED, Visibility.INTERNAL) in statuses
    results = search_articles("reset password", Audience.PUBLIC)
    assert results.hits[0].title == "Reset your password"
    internal = "Refund exceptions: how support decides"
    assert internal not in [h.title for h in search_articles("refund", Audience.PUBLIC).hits]
    assert search_articles("refund exceptions", Audience.AGENTS).hits[0].title == internal
