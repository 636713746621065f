"""Ranking: the one place that turns a bounded query into ordered hits.

Keyword ranking is Whoosh BM25F over title/labels/section/body with the field boosts of
`schema.FIELD_BOOSTS`. Hybrid ranking (`rank_hybrid`) fuses Whoosh's any-word candidates with
the articles nearest in meaning (`semantic`); snippets still come from Whoosh where it matched.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape
from whoosh import query as wq
from whoosh.highlight import HtmlFormatter, PinpointFragmenter
from whoosh.searching import Searcher

from portal.search import semantic
from portal.search.audience import VISIBLE_TO, Audience

SNIPPET_CHARS = 220
_FORMATTER = HtmlFormatter(tagname="mark", between=" … ")
_FRAGMENTER = PinpointFragmenter(maxchars=SNIPPET_CHARS, surround=70, autotrim=True)


@dataclass
class RankedDoc:
    docnum: int
    score: float
    fields: dict
    snippet: Markup


def visibility_filter(audience: Audience, category_id: int | None) -> wq.Query:
    """Published articles this audience may see (optionally in one category)."""
    parts: list[wq.Query] = [
        wq.Term("status", "published"),
        wq.Or([wq.Term("visibility", v) for v in VISIBLE_TO[audience]]),
    ]
    if category_id is not None:
        parts.append(wq.Term("category_id", category_id))
    return wq.And(parts)


def allowed_docs(store, audience: Audience, category_id: int | None) -> set[int]:
    """The doc numbers an audience may see, computed once per index generation."""
    return store.memo(
        ("allowed", audience, category_id),
        lambda searcher: set(searcher.docs_for_query(visibility_filter(audience, category_id))),
    )


def _fallback_snippet(body: str) -> Markup:
    if len(body) <= SNIPPET_CHARS:
        return escape(body)
    return escape(body[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …")


def rank(searcher: Searcher, q: wq.Query, allowed: set[int], *, page: int, per_page: int,
         snippets: bool) -> tuple[list[RankedDoc], int]:
    """One page of hits for `q` among `allowed` docs, and the total number of matches."""
    results = searcher.search_page(q, page, pagelen=per_page, filter=allowed, terms=snippets)
    total = results.total
    if snippets:
        results.results.fragmenter = _FRAGMENTER
        results.results.formatter = _FORMATTER
    docs = []
    for hit in results:
        fields = hit.fields()
        snippet = Markup("")
        if snippets:
            snippet = Markup(hit.highlights("body", top=2) or "") or _fallback_snippet(  # noqa: S704
                fields.get("body", ""))
        docs.append(RankedDoc(hit.docnum, hit.score or 0.0, fields, snippet))
    return docs, total


def rank_hybrid(searcher: Searcher, any_word_query: wq.Query | None, text: str,
                audience: Audience, allowed: set[int], *, page: int, per_page: int,
                snippets: bool) -> tuple[list[RankedDoc], int] | None:
    """Keyword and meaning candidates fused; None when meaning-based ranking is unavailable."""
    nearest = semantic.nearest_articles(text, audience, searcher.reader().generation(),
                                        semantic.CANDIDATES)
    if nearest is None:
        return None
    keyword_hits = {}
    if any_word_query is not None and semantic.mode() != "semantic":
        results = searcher.search(any_word_query, limit=semantic.CANDIDATES, filter=allowed,
                                  terms=snippets)
        results.fragmenter, results.formatter = _FRAGMENTER, _FORMATTER
        keyword_hits = {int(hit["id"]): hit for hit in results}
    order = semantic.fuse(list(keyword_hits), nearest)
    docs = []
    for article_id in order:
        hit = keyword_hits.get(article_id)
        if hit is not None:
            fields, docnum = hit.fields(), hit.docnum
            snippet = Markup(hit.highlights("body", top=2) or "") if snippets else Markup("")  # noqa: S704
        else:
            docnum = searcher.document_number(id=str(article_id))
            if docnum is None or docnum not in allowed:  # e.g. another category
                continue
            fields = searcher.stored_fields(docnum)
            snippet = Markup("")
        if snippets and not snippet:
            snippet = _fallback_snippet(fields.get("body", ""))
        docs.append(RankedDoc(docnum, 1.0 / (len(docs) + 1), fields, snippet))
    start = (page - 1) * per_page
    return docs[start:start + per_page], len(docs)
