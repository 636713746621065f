import os

import pytest
from sqlalchemy import create_engine, text

from portal.extensions import db
from portal.kb.models import ArticleStatus, Visibility
from portal.kb.services import ArticleInput, create_article, create_category, create_section

POSTGRES_URL = os.environ.get("PORTAL_TEST_POSTGRES_URL")





@pytest.fixture(scope="session")
def postgres_search_schema(tmp_path_factory):
    """The PostgreSQL test database migrated afresh once per session (emptied per test)."""
    if not POSTGRES_URL:
        pytest.skip("POSTGRES SEARCH TESTS SKIPPED: set PORTAL_TEST_POSTGRES_URL (CI does)")
    _migrate_afresh(tmp_path_factory.mktemp("pg-search"))
    return POSTGRES_URL


def _migrate_afresh(instance) -> None:
    from portal import create_app
    from portal.migrate import upgrade

    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance), "SECRET_KEY": "x",
                      "DATABASE_URL": POSTGRES_URL})
    with app.app_context():
        upgrade(app)
        db.engine.dispose()


def _reset_postgres(instance) -> None:
    from portal.db import Base

    engine = create_engine(POSTGRES_URL)
    tables = [t.name for t in Base.metadata.sorted_tables] + [
        "fts_articles", "fts_short", "fts_vocabulary"]
    try:
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    except Exception:  # another test dropped the schema (tests/test_postgres.py does)
        _migrate_afresh(instance)
    finally:
        engine.dispose()


@pytest.fixture
def search_backend(request):
    return getattr(request, "param", "whoosh")


@pytest.fixture
def app(app_factory, request, search_backend):
    overrides = getattr(request, "param", None) or {}
    if search_backend == "postgres":
        request.getfixturevalue("postgres_search_schema")
        _reset_postgres(request.getfixturevalue("tmp_path") / "pg-migrate")
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
