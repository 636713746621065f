"""Ranking: the one place that turns a bounded query into ordered hits.

Keyword ranking is BM25 over title/labels/section/body with the field boosts of
`schema.FIELD_BOOSTS`: `rank_in_memory` evaluates word/prefix/AND/OR queries on posting
arrays (arrays.py), `rank` runs everything else (phrases, NOT) through Whoosh. Both return
`RankedDoc`s and a total. Hybrid ranking (`rank_hybrid`) fuses the any-word keyword candidates
with the articles nearest in meaning (`semantic`); snippets still come from the keyword match.
"""

from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
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

from portal.search import semantic
from portal.search.arrays import ArrayPostings, evaluate_words, top
from portal.search.audience import VISIBLE_TO, Audience
from portal.search.schema import TEXT_ANALYZER

SNIPPET_CHARS = 220
_FORMATTER = HtmlFormatter(tagname="mark", between=" … ")
_FRAGMENTER = PinpointFragmenter(maxchars=SNIPPET_CHARS, surround=70, autotrim=True)
_SCORER = BasicFragmentScorer()
# A snippet starts where its sentence starts when that is this close before the match.
SENTENCE_REACH = 90
SENTENCE_BREAK = re.compile(r"[.!?…]\s+")  # also trims PostgreSQL headlines (pg.py)


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


def allowed_mask(store, audience: Audience, category_id: int | None) -> np.ndarray:
    """`allowed_docs` as a boolean array indexed by doc number."""
    def compute(searcher):
        mask = np.zeros(searcher.reader().doc_count_all(), dtype=bool)
        mask[list(allowed_docs(store, audience, category_id))] = True
        return mask

    return store.memo(("allowed_mask", audience, category_id), compute)


def array_postings(store) -> ArrayPostings:
    """The store's in-memory posting arrays for its current index generation."""
    return store.memo("array_postings", lambda s: ArrayPostings(s.reader()))


def rank_in_memory(store, q: wq.Query, audience: Audience, category_id: int | None, *,
                   page: int, per_page: int, snippets: bool, fields: bool = True
                   ) -> tuple[list[RankedDoc], int] | None:
    """Rank with in-memory posting arrays (see arrays.py); None if `q` needs Whoosh.

    `fields=False` leaves the documents' stored fields unread (empty; `with_fields` reads
    them): candidates for hybrid ranking, of which only a page is shown."""
    postings = array_postings(store)
    found = evaluate_words(postings, q)
    if found is None:
        return None
    best, total = top(found, allowed_mask(store, audience, category_id),
                      (page - 1) * per_page, per_page)
    stored = dict.fromkeys((docnum for docnum, _score in best), {})
    if fields or snippets:
        stored = stored_fields(store, list(stored))
    texts = page_snippets(store, {d: f.get("body", "") for d, f in stored.items()},
                          body_words(q)) if snippets else {}
    docs = [RankedDoc(docnum, score, stored[docnum], texts.get(docnum, Markup("")))
            for docnum, score in best]
    return docs, total


def with_fields(store, docs: list[RankedDoc]) -> list[RankedDoc]:
    """`docs` with their stored fields read where they were left unread."""
    unread = stored_fields(store, [doc.docnum for doc in docs if not doc.fields])
    for doc in docs:
        if not doc.fields:
            doc.fields = unread[doc.docnum]
    return docs


def stored_fields(store, docnums: list[int]) -> dict[int, dict]:
    """The stored fields of these documents (shared: never change them), each read once per
    index generation while it is among the MAX_STORED_FIELDS last read: the articles shown
    come back request after request, and reading one (decompressing and unpickling its
    stored fields) was ~30 us, five times per suggestion request."""
    if not docnums:
        return {}
    known = store.memo("stored_fields", lambda _searcher: OrderedDict())
    found = {}
    searcher = None
    for docnum in docnums:
        # Taken out and put back last, each step one operation on the OrderedDict: a thread
        # of a threaded server (`flask run`) may be doing the same with the same memo.
        fields = known.pop(docnum, None)
        if fields is None:
            searcher = searcher or store.searcher()
            fields = searcher.stored_fields(docnum)
        known[docnum] = fields
        while len(known) > MAX_STORED_FIELDS:
            with contextlib.suppress(KeyError):
                known.popitem(last=False)
        found[docnum] = fields
    return found


# Stored fields kept per index generation: an article's title, labels, names and body.
MAX_STORED_FIELDS = 512


def article_ids_of(store, searcher: Searcher, docnums) -> list[int]:
    """The articles of these document numbers (each document's stored fields read once per
    index generation: the same candidates come back request after request). The memo is
    looked up once for all: each look-up checks the searcher is current."""
    known = store.memo("article_ids", lambda _searcher: {})
    ids = []
    for docnum in docnums:
        article_id = known.get(docnum)
        if article_id is None:
            article_id = known[docnum] = int(searcher.stored_fields(docnum)["id"])
        ids.append(article_id)
    return ids


def docnum_of(store, searcher: Searcher, article_id: int) -> int | None:
    """The document number of an article in this index generation, or None."""
    known = store.memo("docnums", lambda _searcher: {})
    if article_id not in known:
        known[article_id] = _live_docnum(searcher.reader(), str(article_id))
    return known[article_id]


def _live_docnum(reader, article_id: str) -> int | None:
    """What `searcher.document_number(id=...)` answers, without opening a posting list when
    the id's entry in a segment's term table names its one document (its lowest document
    number): opening a matcher per lookup was most of looking up the ~30 articles a search
    page's fusion finds by meaning alone (1.4 of 17 ms CPU at 100,000 articles). An id in
    several documents of a segment (re-indexed before a merge) is read as before."""
    for leaf, offset in reader.leaf_readers():
        try:
            info = leaf.term_info("id", article_id)
        except TermNotFound:
            continue
        if info.doc_frequency() == 1:
            docnum = info.min_id()
            if not leaf.is_deleted(docnum):
                return offset + docnum
            continue
        try:
            return offset + leaf.first_id("id", article_id)  # deleted documents skipped
        except TermNotFound:
            continue
    return None


def _fallback_snippet(body: str) -> Markup:
    if len(body) <= SNIPPET_CHARS:
        return escape(body)
    return escape(body[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …")


def query_terms(q: wq.Query) -> list[tuple[str, str]]:
    """(field, word) of every term of `q`, in the order of `q.iter_all_terms()`, which walks
    the tree through nested generators: a suggestion's 20 words in four fields are 80 terms,
    walked twice per request (a fifth of a millisecond). ANDs and ORs of words are read
    directly; anything else is asked of Whoosh."""
    if type(q) is wq.Term:
        return [(q.fieldname, q.text)] if q.fieldname else []
    if type(q) in (wq.Or, wq.And):
        return [term for sub in q.subqueries for term in query_terms(sub)]
    return list(q.iter_all_terms())


def body_words(q: wq.Query) -> set[str]:
    """The (analysed) words the query looks for in the body."""
    words = set()
    for fieldname, text in query_terms(q):
        if fieldname == "body":
            words.add(text.decode("utf-8") if isinstance(text, bytes) else text)
    return words


def char_offsets(bodies: dict[int, str], words: set[str], known: dict | None = None
                 ) -> dict[int, list[Token]]:
    """The matched words' tokens (position, character offsets) in each document's body
    (`word_offsets` as the highlighter's tokens)."""
    return {docnum: _tokens(offsets)
            for docnum, offsets in word_offsets(bodies, words, known).items()}


def _tokens(offsets: dict[str, tuple]) -> list[Token]:
    return [Token(text=word, pos=pos, startchar=start, endchar=end)
            for word, found in offsets.items() for pos, start, end in found]


def word_offsets(bodies: dict[int, str], words: set[str], known: dict | None = None
                 ) -> dict[int, dict[str, tuple]]:
    """(position, start, end) of each query word in each document's body.

    Found by reading the stored body (which is what was indexed) as the body's analyser
    does, and keeping the tokens that are query words: the same positions and offsets the
    index holds. Reading them from the index instead meant decoding a whole posting block
    (128 postings' offsets, unpickled and decompressed) per word and document shown, and
    walking the block headers before it: 2-9 ms of a search page at 100,000 articles.
    Each distinct word of a body is analysed once per process (`_term`), so a body costs a
    regular-expression pass and a dictionary lookup per word.

    `known` (one per index generation, `offsets_memo`) keeps what was found per word and
    document: the articles shown for the common words come back request after request, and
    a body is read again only for a word not asked of it yet."""
    found: dict[int, dict[str, tuple]] = {docnum: {} for docnum in bodies}
    if not words:
        return found
    for docnum, body in bodies.items():
        if known is not None and all((word, docnum) in known for word in words):
            offsets = {word: known[(word, docnum)] for word in words}
        else:
            offsets = _body_offsets(body, words)
            if known is not None:
                if len(known) > MAX_KNOWN_OFFSETS:
                    known.clear()
                known.update(((word, docnum), offsets[word]) for word in words)
        found[docnum] = offsets
    return found


def page_snippets(store, bodies: dict[int, str], words: set[str]) -> dict[int, Markup]:
    """The snippet of each body for the query's (body) words.

    A snippet depends only on the document and which of the words its body holds, and the
    articles shown come back with the same few of them request after request (a request
    text typed word after word, the common questions): each is made once per index
    generation (`snippets_memo`), where choosing, escaping and marking the fragments of five
    hits was a fifth of a suggestion request's Python."""
    memo = snippets_memo(store)
    snippets = {}
    for docnum, offsets in word_offsets(bodies, words, offsets_memo(store)).items():
        held = {word: found for word, found in offsets.items() if found}
        key = (docnum, frozenset(held))
        text = memo.get(key)
        if text is None:
            if len(memo) >= MAX_SNIPPETS:
                memo.clear()
            text = memo[key] = snippet(bodies[docnum], _tokens(held))
        snippets[docnum] = text
    return snippets


# Snippets kept per index generation: ~0.5 KB each.
MAX_SNIPPETS = 4_096


def snippets_memo(store) -> dict:
    return store.memo("snippets", lambda _searcher: {})


# (word, document) offsets kept per index generation: ~200 bytes each.
MAX_KNOWN_OFFSETS = 20_000


def offsets_memo(store) -> dict:
    """The `known` offsets of `word_offsets` for the store's current index generation."""
    return store.memo("char_offsets", lambda _searcher: {})


def _body_offsets(body: str, words: set[str]) -> dict[str, tuple]:
    """(position, start, end) of each of `words` in `body`, as the index holds them."""
    offsets: dict[str, list] = {word: [] for word in words}
    position = None
    for index, match in enumerate(_BODY_WORD.finditer(body)):
        term = _term(match.group(0))
        if term is None:  # a stop word: no position of its own
            continue
        # The stop filter's numbering: the first word kept keeps its place in the text,
        # each later one follows the previous one.
        position = index if position is None else position + 1
        if term in offsets:
            offsets[term].append((position, match.start(), match.end()))
    return {word: tuple(found) for word, found in offsets.items()}


_BODY_WORD = TEXT_ANALYZER.items[0].expression  # the analyser's tokenizer
_terms: dict[str, str | None] = {}
MAX_TERMS = 200_000  # distinct raw words remembered per process (~100 bytes each)


def _term(raw: str) -> str | None:
    """What the analyser makes of one word of a body (lowercased, stemmed, folded), or None
    for a stop word. Each filter after the tokenizer reads one token at a time, so a word
    analysed alone gives what it gives inside the text."""
    term = _terms.get(raw, _UNKNOWN)
    if term is _UNKNOWN:
        if len(_terms) >= MAX_TERMS:
            _terms.clear()
        analysed = [token.text for token in TEXT_ANALYZER(raw)]
        term = _terms[raw] = analysed[0] if analysed else None
    return term


_UNKNOWN = object()


def snippet(body: str, tokens: list[Token]) -> Markup:
    """The best fragments of the body around the matched words, words marked."""
    if not tokens:
        return _fallback_snippet(body)
    tokens.sort(key=lambda t: t.startchar)
    fragments = top_fragments(_FRAGMENTER.fragment_matches(body, tokens), 2, _SCORER, FIRST)
    floor = 0
    for fragment in fragments:
        fragment.startchar = _sentence_start(fragment, floor)
        floor = fragment.endchar
    text = _FORMATTER.format(fragments)
    end = fragments[-1].endchar if fragments else len(body)
    if text and end < len(body.rstrip()) and body[end - 1] not in ".!?":
        text += " …"  # the text goes on mid-sentence
    return Markup(text) or _fallback_snippet(body)  # noqa: S704


def _sentence_start(fragment, floor: int) -> int:
    """Where a fragment should start: at the start of the sentence holding its first match
    when that is near (and after the previous fragment), else at a word, never mid-word."""
    body, start = fragment.text, fragment.startchar
    anchor = min((m.startchar for m in fragment.matches), default=start)
    reach = max(floor, anchor - SENTENCE_REACH)
    breaks = [m.end() for m in SENTENCE_BREAK.finditer(body, reach, anchor)]
    if breaks:
        return breaks[-1]
    if reach == 0:  # the match is in the body's first sentence
        return 0
    if start > 0 and not body[start - 1].isspace():
        space = body.find(" ", start, anchor)
        return space + 1 if space >= 0 else start
    return start


def rank(store, q: wq.Query, allowed: set[int], *, page: int, per_page: int,
         snippets: bool) -> tuple[list[RankedDoc], int]:
    """One page of hits for `q` among `allowed` docs, and the total number of matches."""
    if not allowed:  # Whoosh reads an empty filter set as "no filter"
        return [], 0
    # optimize=False: with block skipping Whoosh counts the total ignoring the filter.
    results = store.searcher().search_page(q, page, pagelen=per_page, filter=allowed,
                                           optimize=False)
    hits, total = list(results), results.total
    stored = {hit.docnum: hit.fields() for hit in hits}
    texts = page_snippets(store, {d: f.get("body", "") for d, f in stored.items()},
                          body_words(q)) if snippets else {}
    docs = [RankedDoc(hit.docnum, hit.score or 0.0, stored[hit.docnum],
                      texts.get(hit.docnum, Markup(""))) for hit in hits]
    return docs, total


def keyword_shares(store, q: wq.Query | None, docnums: list[int]) -> dict[int, float]:
    """How much of `q` (idf-weighted analysed words, any field) each of `docnums` holds.

    A word no article has weighs the most, so a question about something the knowledge base
    never mentions ("car insurance quote") stays low even when one common word matches; an
    article matching only a common word ("install") holds little of a specific question.
    Read from the in-memory posting arrays (arrays.py) the keyword ranking just used.
    """
    shares = dict.fromkeys(docnums, 0.0)
    if q is None or not docnums:
        return shares
    fields: dict[str, list[str]] = {}
    for fieldname, text in query_terms(q):
        word = text.decode("utf-8") if isinstance(text, bytes) else text
        fields.setdefault(word, []).append(fieldname)
    if not fields:
        return shares
    postings = array_postings(store)
    documents = max(store.searcher().reader().doc_count(), 1)
    wanted = np.asarray(docnums, dtype=np.int64)
    total = 0.0
    held = np.zeros(len(wanted))
    for word, names in fields.items():
        # Each field's list as it is (cached by `array_postings`), one binary search per
        # candidate in each: merging a common word's lists into one (np.unique) cost more at
        # 100,000 articles than all the searches it saved (bench/kb_search.py: 4 ms a page).
        lists = [postings.term(name, word)[0] for name in names]
        frequency = max(len(ids) for ids in lists)
        weight = float(np.log1p(documents / (frequency + 0.5)))
        total += weight
        if frequency:
            holds = np.zeros(len(wanted), dtype=bool)
            for ids in lists:  # doc numbers ascending
                if len(ids):
                    at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
                    holds |= ids[at] == wanted
            held += weight * holds
    return {docnum: float(h / total) for docnum, h in zip(docnums, held, strict=True)}


def rank_hybrid(store, keyword_query: wq.Query | None, typed_query: wq.Query | None, text: str,
                audience: Audience, category_id: int | None, *, page: int, per_page: int,
                instant: bool, corrected: bool = False) -> tuple[list[RankedDoc], int] | None:
    """Keyword and meaning candidates fused; None when meaning-based ranking is unavailable.

    `text` is what the encoder reads (the question as typed, cleaned, misspelt words
    replaced when `corrected`); `keyword_query` the any-word query with spelling corrected,
    `typed_query` the same before correction. A corrected question must clear a higher
    cosine floor, and keyword coverage counts only what was typed, so a correction never
    turns an unrelated question into results. Each keyword candidate goes to the fusion with
    the share of the (corrected) question's words it holds. Keyword candidates are Whoosh's any-word
    matches (for instant results, the in-memory short-field postings); snippets come from
    Whoosh's offsets where it matched.
    """
    searcher = store.searcher()
    nearest = semantic.nearest_articles(text, audience, searcher.reader().generation(),
                                        semantic.CANDIDATES)
    if nearest is None:
        return None
    allowed = allowed_docs(store, audience, category_id)
    if not allowed:  # Whoosh reads an empty filter set as "no filter"
        return [], 0
    keyword = _keyword_candidates(store, searcher, keyword_query, audience, category_id,
                                  allowed)
    titles = semantic.title_cosines(text, [a for a, _s in nearest] + list(keyword))
    coverage = 0.0
    # Only a question under the floors of meaning needs the typed words' coverage.
    if typed_query is not None and not instant \
            and not semantic.clears_floor(nearest, corrected, titles):
        typed = keyword if typed_query is keyword_query else _keyword_candidates(
            store, searcher, typed_query, audience, category_id, allowed)
        if typed:
            top_docnum = next(iter(typed.values())).docnum
            coverage = keyword_shares(store, typed_query, [top_docnum])[top_docnum]
    held = keyword_shares(store, keyword_query, [doc.docnum for doc in keyword.values()])
    shares = {article_id: held[doc.docnum] for article_id, doc in keyword.items()}
    ranked_keyword = [(article_id, doc.score) for article_id, doc in keyword.items()]
    docs = []
    learned = {} if instant else semantic.learned_cosines(  # whole questions only
        text, [a for a, _s in nearest] + list(keyword))
    for article_id in semantic.fuse(ranked_keyword, nearest, coverage, corrected=corrected,
                                    shares=shares, titles=titles, learned=learned):
        doc = keyword.get(article_id)
        if doc is None:
            docnum = docnum_of(store, searcher, article_id)
            if docnum is None or docnum not in allowed:  # e.g. another category
                continue
            doc = RankedDoc(docnum, 0.0, {}, Markup(""))
        docs.append(RankedDoc(doc.docnum, 1.0 / (len(docs) + 1), doc.fields, Markup("")))
    start = (page - 1) * per_page
    page_docs = with_fields(store, docs[start:start + per_page])  # only the shown ones
    if not instant and page_docs:
        words = body_words(keyword_query) if keyword_query is not None else set()
        texts = page_snippets(store, {d.docnum: d.fields.get("body", "") for d in page_docs},
                              words)
        for doc in page_docs:
            doc.snippet = texts[doc.docnum]
    return page_docs, len(docs)


def _keyword_candidates(store, searcher: Searcher, q: wq.Query | None, audience: Audience,
                        category_id: int | None, allowed: set[int]) -> dict[int, RankedDoc]:
    """The best any-word keyword matches by article id, best first."""
    if q is None:
        return {}
    found = rank_in_memory(store, q, audience, category_id, page=1,
                           per_page=semantic.CANDIDATES, snippets=False, fields=False)
    if found is None:
        # Only the top candidates are needed, not a total: block skipping may stay on.
        hits = searcher.search(q, limit=semantic.CANDIDATES, filter=allowed)
        found = [RankedDoc(h.docnum, h.score or 0.0, {}, Markup("")) for h in hits], 0
    docs = found[0]
    return dict(zip(article_ids_of(store, searcher, [doc.docnum for doc in docs]), docs,
                    strict=True))
