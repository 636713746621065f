"""Ranking: the one place that turns a bounded query into ordered hits.

Keyword ranking is Whoosh BM25F over title/labels/section/body with the field boosts of
`schema.FIELD_BOOSTS`. Meaning-based ranking plugs in here (`rank` gets the candidates and
may re-order them) so callers never change.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape
from whoosh import query as wq
from whoosh.highlight import HtmlFormatter, PinpointFragmenter
from whoosh.searching import Searcher

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
