"""Article rows -> index documents."""

from __future__ import annotations

from portal.kb.markdown import plain_text
from portal.kb.models import Article, ArticleStatus, Visibility

# Body text beyond this is not indexed: it keeps documents and snippets bounded.
MAX_BODY_CHARS = 60_000


def is_customer_visible(article: Article) -> bool:
    return article.status == ArticleStatus.PUBLISHED and article.visibility in (
        Visibility.PUBLIC, Visibility.CUSTOMERS,
    )


def article_document(article: Article) -> dict:
    section = article.section
    category = section.category
    body = plain_text(article.body)[:MAX_BODY_CHARS]
    labels = " ".join(article.label_list)
    # "Did you mean" ranks words by how many articles have them: each word once is enough.
    spell = " ".join(dict.fromkeys(f"{article.title} {labels} {body}".split())) \
        if is_customer_visible(article) else ""
    return {
        "id": str(article.id),
        "title": article.title,
        "body": body,
        "labels": labels,
        "section": f"{section.name} {category.name}",
        "spell": spell,
        "status": article.status.value,
        "visibility": article.visibility.value,
        "category_id": category.id,
        "slug": article.slug,
        "section_name": section.name,
        "category_name": category.name,
        "promoted": "yes" if article.promoted else "no",
    }
