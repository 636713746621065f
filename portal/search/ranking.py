"""Ranking: the one place that turns a bounded query into ordered hits.

Keyword ranking is Whoosh BM25F over title/labels/section/body with the field boosts of
`schema.FIELD_BOOSTS`. Meaning-based ranking plugs in here (`rank` gets the candidates and
may re-order them) so callers never change.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape
from whoosh import query as wq
from whoosh.analysis import Token
from whoosh.highlight import (
    FIRST,
    BasicFragmentScorer,
    HtmlFormatter,
    PinpointFragmenter,
    top_fragments,
)
from whoosh.reading import TermNotFound
from whoosh.searching import Searcher

from portal.search.audience import VISIBLE_TO, Audience

SNIPPET_CHARS = 220
_FORMATTER = HtmlFormatter(tagname="mark", between=" … ")
_FRAGMENTER = PinpointFragmenter(maxchars=SNIPPET_CHARS, surround=70, autotrim=True)
_SCORER = BasicFragmentScorer()


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


def body_words(q: wq.Query) -> set[str]:
    """The (analysed) words the query looks for in the body."""
    words = set()
    for fieldname, text in q.iter_all_terms():
        if fieldname == "body":
            words.add(text.decode("utf-8") if isinstance(text, bytes) else text)
    return words


def char_offsets(searcher: Searcher, docnums: list[int], words: set[str]
                 ) -> dict[int, list[Token]]:
    """Matched words' character offsets per document, read from the index postings.

    One pass per word over its posting list, documents in ascending order, instead of
    re-analysing each body. (Whoosh's own pinpoint highlighting needs `terms=True`, whose
    collector miscounts totals when a filter is set.)
    """
    found: dict[int, list[Token]] = {docnum: [] for docnum in docnums}
    ordered = sorted(docnums)
    for word in words:
        try:
            matcher = searcher.postings("body", word)
        except TermNotFound:
            continue
        for docnum in ordered:
            if not matcher.is_active():
                break
            if matcher.id() < docnum:
                matcher.skip_to(docnum)
            if matcher.is_active() and matcher.id() == docnum:
                found[docnum].extend(
                    Token(text=word, pos=pos, startchar=start, endchar=end)
                    for pos, start, end in matcher.value_as("characters")
                )
    return found


def snippet(body: str, tokens: list[Token]) -> Markup:
    """The best fragments of the body around the matched words, words marked."""
    if not tokens:
        return _fallback_snippet(body)
    tokens.sort(key=lambda t: t.startchar)
    fragments = top_fragments(_FRAGMENTER.fragment_matches(body, tokens), 2, _SCORER, FIRST)
    return Markup(_FORMATTER.format(fragments)) or _fallback_snippet(body)  # noqa: S704


def rank(searcher: Searcher, q: wq.Query, allowed: set[int], *, page: int, per_page: int,
         snippets: bool) -> tuple[list[RankedDoc], int]:
    """One page of hits for `q` among `allowed` docs, and the total number of matches."""
    if not allowed:  # Whoosh reads an empty filter set as "no filter"
        return [], 0
    # optimize=False: with block-quality skipping, Whoosh counts the total without the filter.
    results = searcher.search_page(q, page, pagelen=per_page, filter=allowed, optimize=False)
    hits = list(results)
    offsets = char_offsets(searcher, [h.docnum for h in hits], body_words(q)) if snippets \
        else {}
    docs = []
    for hit in hits:
        fields = hit.fields()
        text = snippet(fields.get("body", ""), offsets[hit.docnum]) if snippets else Markup("")
        docs.append(RankedDoc(hit.docnum, hit.score or 0.0, fields, text))
    return docs, results.total
