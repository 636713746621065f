import pytest

from portal.extensions import db
from portal.kb.models import ArticleStatus, Visibility
from portal.kb.services import ArticleInput, create_article, create_category, create_section


@pytest.fixture
def kb(app, agent, run_jobs):
    """A small published KB: one category, one section, articles of every visibility/status."""
    category = create_category("Billing", "Plans, invoices and payments")
    section = create_section(category, "Invoices")

    def add(title, body, visibility=Visibility.PUBLIC, status=ArticleStatus.PUBLISHED, **kw):
        return create_article(ArticleInput(title=title, body=body, section_id=section.id,
                                           visibility=visibility, **kw), agent, status=status)

    articles = {
        "public": add("Download an invoice", "## Where\n\nOpen **Billing** and pick the invoice.",
                      promoted=True),
        "customers": add("Change the billing email", "Only for customers: update the email.",
                         visibility=Visibility.CUSTOMERS),
        "internal": add("Refund playbook", "Internal refund steps.",
                        visibility=Visibility.INTERNAL),
        "draft": add("Draft invoice notes", "Not yet.", status=ArticleStatus.DRAFT),
        "archived": add("Old invoice portal", "Gone.", status=ArticleStatus.ARCHIVED),
    }
    db.session.commit()
    run_jobs()
    articles["section"] = section
    articles["category"] = category
    return articles


def url(article):
    return f"/kb/articles/{article.id}-{article.slug}"
