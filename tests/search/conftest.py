import pytest

from portal.extensions import db
from portal.kb.models import ArticleStatus, Visibility
from portal.kb.services import ArticleInput, create_article, create_category, create_section


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
