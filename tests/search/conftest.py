import os

import pytest
from sqlalchemy import create_engine, text

from portal.extensions import db
from portal.kb.models import ArticleStatus, Visibility
from portal.kb.services import ArticleInput, create_article, create_category, create_section

POSTGRES_URL = os.environ.get("PORTAL_TEST_POSTGRES_URL")





@pytest.fixture(scope="session")
def postgres_search_schema():
    """A migrated PostgreSQL database for the search tests (tables emptied per test)."""
    if not POSTGRES_URL:
        pytest.skip("POSTGRES SEARCH TESTS SKIPPED: set PORTAL_TEST_POSTGRES_URL (CI does)")
    return POSTGRES_URL


def _reset_postgres(app_factory) -> None:
    from portal.db import Base

    engine = create_engine(POSTGRES_URL)
    tables = [t.name for t in Base.metadata.sorted_tables] + ["fts_articles", "fts_vocabulary"]
    try:
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        return
    except Exception:  # another test dropped the schema, or it was never migrated
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    from portal.migrate import upgrade

    fresh = app_factory(DATABASE_URL=POSTGRES_URL)
    with fresh.app_context():
        upgrade(fresh)


@pytest.fixture
def search_backend(request):
    return getattr(request, "param", "whoosh")


@pytest.fixture
def app(app_factory, request, search_backend):
    overrides = getattr(request, "param", None) or {}
    if search_backend == "postgres":
        request.getfixturevalue("postgres_search_schema")
        _reset_postgres(app_factory)
        overrides = {**overrides, "DATABASE_URL": POSTGRES_URL}
    app = app_factory(**overrides)
    with app.app_context():
        yield app


@pytest.fixture
def make_article(app, agent, run_jobs):
    """make_article(title, body, visibility=..., status=..., labels=...) -> committed + indexed."""
    category = create_category("Account & sign-in")
    section = create_section(category, "Passwords")
    db.session.commit()

    def factory(title, body="", *, visibility=Visibility.PUBLIC,
                status=ArticleStatus.PUBLISHED, labels="", section_id=None, index=True):
        article = create_article(
            ArticleInput(title=title, body=body, section_id=section_id or section.id,
                         labels=labels, visibility=visibility),
            agent, status=status,
        )
        db.session.commit()
        if index:
            run_jobs()
        return article

    factory.section = section
    factory.category = category
    return factory
