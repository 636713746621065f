"""Turning what a person typed into a bounded Whoosh query.

The Whoosh parser slows sharply on long input and wildcard expansion can touch every term in
the index, so: input is cut to MAX_QUERY_CHARS and MAX_QUERY_WORDS, field/range/boost/"every"
syntax is off, each wildcard needs MIN_PREFIX literal characters and expands to at most
MAX_EXPANSIONS of the most frequent matching terms (scanning at most MAX_SCAN), and any parser
error falls back to the plain words.
"""

from __future__ import annotations

import copy
import fnmatch
import heapq
import logging
import re
import threading
import unicodedata
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import islice

from whoosh import query as wq
from whoosh.qparser import AndGroup, MultifieldParser, OrGroup, plugins
from whoosh.reading import IndexReader
from whoosh.searching import Searcher

from portal.search.schema import FIELD_BOOSTS, INSTANT_FIELDS, SEARCH_FIELDS

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 200
# What the sentence encoder reads of a question: whole sentences, punctuation and numbers
# kept ("0.1 + 0.2 is not 0.3"); a ticket's subject and the start of its description.
MAX_MEANING_CHARS = 400
MAX_QUERY_WORDS = 12
MIN_PREFIX = 2
MAX_EXPANSIONS = 12
MAX_SCAN = 1000

_DISABLED_PLUGINS = (
    plugins.SingleQuotePlugin,  # apostrophes in "don't" are not quotes
    plugins.FieldsPlugin,  # no "status:draft" games
    plugins.RangePlugin,
    plugins.BoostPlugin,
    plugins.EveryPlugin,
)
_WORDS = re.compile(r"\w+(?:[*?]\w*)*\*?|\*", re.UNICODE)
_SPACES = re.compile(r"\s+")
# "Why is it slow?": a question mark ending a word is punctuation, not a one-letter wildcard.
_QUESTION_MARK = re.compile(r"(?<=\w)\?+(?=\s|$)")


@dataclass
class ParsedQuery:
    text: str  # what will be searched for (cleaned, possibly shortened)
    query: wq.Query | None  # None when nothing searchable is left
    notes: list[str] = field(default_factory=list)


def normalize(text: str) -> str:
    """The form searches are grouped by in reports: NFKC, lowercased, single spaces."""
    text = unicodedata.normalize("NFKC", text or "")
    return _SPACES.sub(" ", text).strip().lower()[:MAX_QUERY_CHARS]


def printable(raw: str) -> str:
    """NFKC, control and format characters dropped, whitespace runs as single spaces."""
    text = "".join(ch for ch in unicodedata.normalize("NFKC", raw or "")
                   if unicodedata.category(ch)[0] != "C" or ch in " \t\n")
    return _SPACES.sub(" ", text).strip()


def meaning_text(raw: str) -> str:
    """The question for the sentence encoder: as typed (no word is dropped, reordered or
    deduplicated, punctuation stays), bounded to MAX_MEANING_CHARS at a word boundary."""
    text = printable(raw)
    if len(text) > MAX_MEANING_CHARS:
        text = text[:MAX_MEANING_CHARS].rsplit(" ", 1)[0] or text[:MAX_MEANING_CHARS]
    return text


def clean_input(raw: str) -> tuple[str, list[str]]:
    notes: list[str] = []
    text = printable(raw)
    if len(text) > MAX_QUERY_CHARS:
        text = text[:MAX_QUERY_CHARS].rsplit(" ", 1)[0] or text[:MAX_QUERY_CHARS]
        notes.append(f"Your search was long, so only its first {MAX_QUERY_CHARS} characters "
                     "were used.")
    words = text.split(" ")
    if len(words) > MAX_QUERY_WORDS:
        text = " ".join(words[:MAX_QUERY_WORDS])
        notes.append(f"Only the first {MAX_QUERY_WORDS} words of your search were used.")
    return text, notes


_parsers: dict[tuple, MultifieldParser] = {}


def cached_parser(schema, any_word: bool, fields: tuple[str, ...]) -> MultifieldParser:
    """Parsers hold no per-query state; building one costs more than a short parse."""
    key = (id(schema), any_word, fields)
    parser = _parsers.get(key)
    if parser is None or parser.schema is not schema:
        parser = _parsers[key] = make_parser(schema, any_word, fields)
    return parser


def make_parser(schema, any_word: bool, fields: tuple[str, ...] = SEARCH_FIELDS
                ) -> MultifieldParser:
    # OR with a coordination bonus ranks articles with more of the words first; instant
    # results skip it (scoring every match defeats Whoosh's top-N block skipping).
    any_group = OrGroup.factory(0.9) if fields == SEARCH_FIELDS else OrGroup
    parser = MultifieldParser(
        list(fields), schema, fieldboosts={f: FIELD_BOOSTS[f] for f in fields},
        group=any_group if any_word else AndGroup,
    )
    for plugin in _DISABLED_PLUGINS:
        parser.remove_plugin_class(plugin)
    return parser


def plain_words(text: str) -> str:
    """The query without syntax: words and trailing-* prefixes only."""
    return " ".join(_WORDS.findall(text))


def with_corrections(text: str, fixes: dict[str, str]) -> str:
    """`text` with the corrected words replaced in place (punctuation and all else kept)."""
    if not fixes:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, fixes)) + r")\b", re.IGNORECASE)
    return pattern.sub(lambda m: fixes[m.group(0).lower()], text)


def parse(raw: str, searcher: Searcher, *, any_word: bool = False,
          prefix_last: bool = False) -> ParsedQuery:
    """Parse and bound a user query. Never raises for any input.

    `prefix_last` (instant results): the last word may be unfinished, so it matches as a
    prefix, and only the short fields are searched.
    """
    text, notes = clean_input(raw)
    source = _QUESTION_MARK.sub("", text)
    if prefix_last and source and not source.endswith((" ", "*", '"')):
        last = source.rsplit(" ", 1)[-1]
        if len(last) >= MIN_PREFIX and last.isalnum():
            source = source + "*"
    parser = cached_parser(searcher.schema, any_word,
                           INSTANT_FIELDS if prefix_last else SEARCH_FIELDS)
    try:
        parsed = _parse_words(parser, source) or parser.parse(source)
    except Exception:  # the parser has many failure modes on odd input; words always work
        log.info("query parser failed on %r; using plain words", source, exc_info=True)
        try:
            parsed = parser.parse(plain_words(source))
        except Exception:
            log.warning("query parser failed twice on %r", source, exc_info=True)
            parsed = wq.NullQuery
    bounded = bound_query(parsed, searcher.reader(), notes)
    if bounded is wq.NullQuery or bounded is None:
        return ParsedQuery(text, None, notes)
    return ParsedQuery(text, bounded, notes)


# Plain words (what nearly every search and every new-request text is): no quotes, brackets,
# wildcards or operators, so each word parses the same alone as in the sentence.
_PLAIN_WORDS = re.compile(r"\w+(?: \w+)*")
_OPERATORS = frozenset({"AND", "OR", "NOT", "ANDNOT", "ANDMAYBE"})
# Per process, least recently used first out. ~1.2 KB each (a query over every searched
# field): 20,000 would hold 23 MB of each worker once people type enough distinct words and
# misspellings; the common words that make most texts stay recent in 4,096 (~5 MB).
WORD_QUERIES = 4_096
# Keyed by the parser itself (held here), not its id(): a parser dropped for a new schema
# (an index opened again) could leave its id to a parser of other fields, whose words would
# then get the old parser's queries.
_word_queries: OrderedDict[tuple[MultifieldParser, str], wq.Query | None] = OrderedDict()
_word_lock = threading.Lock()


def _parse_words(parser: MultifieldParser, source: str) -> wq.Query | None:
    """The parser's query for plain words, built from each word's query (parsed once per
    process: a 12-word request text cost the parser 900 tagger calls, a fifth of a
    suggestion's time). None when `source` is not plain words: the parser reads it whole.
    Queries are shared between requests: never changed in place (bound_query copies)."""
    if not _PLAIN_WORDS.fullmatch(source):
        return None
    words = source.split(" ")
    if not _OPERATORS.isdisjoint(words):
        return None
    group = parser.group()
    subqueries = []
    for word in words:
        key = (parser, word)
        with _word_lock:
            known = key in _word_queries
            if known:
                _word_queries.move_to_end(key)
                subquery = _word_queries[key]
        if not known:
            nodes = parser.process(word)
            subquery = nodes[0].query(parser) if len(nodes) == 1 else None
            subquery = subquery.normalize() if subquery is not None else None
            with _word_lock:
                _word_queries[key] = subquery
                while len(_word_queries) > WORD_QUERIES:
                    _word_queries.popitem(last=False)
        if subquery is None:
            continue
        if isinstance(subquery, group.qclass) and subquery.boost == 1.0:
            # What normalize() would merge, merged without its copy of every term (the
            # parser's normalize deep-copies each one to give it the same boost).
            subqueries.extend(subquery.subqueries)
        else:
            subqueries.append(subquery)
    return group.qclass(subqueries, boost=group.boost, **group.kwargs).normalize() or wq.NullQuery


def bound_query(q: wq.Query, reader: IndexReader, notes: list[str]) -> wq.Query:
    """Replace every wildcard/prefix by a small OR of real terms; drop the hopeless ones."""
    if isinstance(q, wq.PatternQuery):
        return _expand(q, reader, notes)
    if isinstance(q, wq.Every):  # a bare "*": everything is no answer
        _note(notes, _SHORT_WILDCARD)
        return wq.NullQuery
    if q.is_leaf():
        return q
    originals = list(q.children())
    children = [bound_query(sub, reader, notes) for sub in originals]
    if all(new is old for new, old in zip(children, originals, strict=True)):
        return q
    children = [c for c in children if c is not wq.NullQuery]
    if not children:
        return wq.NullQuery
    if len(children) != len(originals) and isinstance(q, wq.Not | wq.AndNot):
        return wq.NullQuery  # "x NOT *" must not turn into "x"
    return _rebuild(q, children)


def _rebuild(q: wq.Query, children: list[wq.Query]) -> wq.Query:
    """`q` with new children (a shallow copy: Query.copy() deep-copies the whole tree)."""
    if isinstance(q, wq.CompoundQuery):
        clone = copy.copy(q)
        clone.subqueries = children
        return clone.normalize()
    if isinstance(q, wq.BinaryQuery):
        if len(children) == 2:
            clone = copy.copy(q)
            clone.a, clone.b = children
            return clone.normalize()
        return children[0] if not isinstance(q, wq.AndNot) else wq.NullQuery
    if isinstance(q, wq.Not):
        return wq.Not(children[0], boost=q.boost)
    if isinstance(q, wq.WrappingQuery):
        clone = copy.copy(q)
        clone.child = children[0]
        return clone
    return q


_SHORT_WILDCARD = (f"Put at least {MIN_PREFIX} letters before a * to search by the start of "
                   "a word.")


def _note(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


def _expand(q: wq.PatternQuery, reader: IndexReader, notes: list[str]) -> wq.Query:
    pattern = q.text
    literal = re.split(r"[*?]", pattern, maxsplit=1)[0]
    if len(literal) < MIN_PREFIX:
        _note(notes, _SHORT_WILDCARD)
        return wq.NullQuery
    words = _expansions(reader, q.fieldname, pattern, literal,
                        isinstance(q, wq.Wildcard) and pattern.rstrip("*") != literal)
    if not words:
        return wq.NullQuery
    return wq.Or([wq.Term(q.fieldname, w, boost=q.boost) for w in words])


# Expansions depend only on the reader (one index generation): typing "passw", "passwo"...
# repeats them, so they are kept per reader, up to MAX_EXPANSION_ENTRIES (~170 bytes each;
# every prefix and misspelling typed added one until the index changed: 5,500 after 3,000
# searches of the demo KB), then forgotten all at once.
_expansion_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
MAX_EXPANSION_ENTRIES = 8_192


def _expansions(reader: IndexReader, fieldname: str, pattern: str, literal: str,
                glob: bool) -> tuple[str, ...]:
    cache = _expansion_cache.setdefault(reader, {})
    key = (fieldname, pattern)
    expansions = cache.get(key)
    if expansions is None:
        matcher = re.compile(fnmatch.translate(pattern)).match if glob else None
        try:
            candidates = islice(reader.expand_prefix(fieldname, literal), MAX_SCAN)
            words = [w.decode("utf-8") if isinstance(w, bytes) else w for w in candidates]
        except (KeyError, ValueError):
            words = []
        words = [w for w in words if matcher is None or matcher(w)]
        expansions = tuple(heapq.nlargest(MAX_EXPANSIONS, words,
                                          key=lambda w: reader.doc_frequency(fieldname, w)))
        if len(cache) >= MAX_EXPANSION_ENTRIES:
            cache.clear()
        cache[key] = expansions
    return expansions
