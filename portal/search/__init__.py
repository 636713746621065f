"""Knowledge-base search: the shared API (other domains call only what is exported here).

Visibility is enforced inside: every query is filtered to published articles the audience
may see. Index writes happen after the database commit, from the IndexQueue.
"""

from portal.search.audience import Audience, audience_for
from portal.search.queue import enqueue_article, process_index_queue, reindex_all
from portal.search.service import Hit, SearchResults, search_articles, suggest_articles

__all__ = [
    "Audience",
    "Hit",
    "SearchResults",
    "audience_for",
    "enqueue_article",
    "process_index_queue",
    "reindex_all",
    "search_articles",
    "suggest_articles",
]


# Embeddings follow the index: every queue run hands the ids it indexed to `semantic`.
from portal.search import semantic  # noqa: E402
from portal.search.queue import after_index_hooks  # noqa: E402

if semantic.after_index not in after_index_hooks:
    after_index_hooks.append(semantic.after_index)

from portal.search import tasks  # noqa: E402,F401  (registers the index jobs)
