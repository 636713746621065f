"""Keyword search inside PostgreSQL, for several hosts on one database.

Each article is one `fts_articles` row, written in the transaction that changes the article
(`write_document`), so a committed publish is searchable from every host at once. The row's
generated `tsvector` weighs the title (A), labels and headings (B), section and category names
(C) and the body (D) under `portal_english` (unaccent + English stemming: "Café", "cafe" and
"cafés" meet, as in the Whoosh schema); a GIN index serves `@@`. Phrases use
`phraseto_tsquery`, a trailing `*` (and the word being typed, for instant results) a prefix
match. The body is stored out of line, so the vectors that ranking reads for every matching
row stay inline and uncompressed. Instant results match `tsv_short` (title, labels, headings,
section names) in `fts_short`, a narrow copy written in the same statement as each
`fts_articles` row: a keystroke's prefix query visits a few small pages, not one wide row per
match. `ts_headline` runs on the shown rows only.
Typo correction looks up unknown words in `fts_vocabulary` (the words of customer-visible
articles with their article counts) by `pg_trgm` similarity, then keeps the closest within
one or two edits. Visibility is part of every query's WHERE clause.

Results are cached per process and keyed by the change feed's version of the knowledge base,
so a change committed through another host empties this host's cache within about a second.
So are the facts every query asks about its single words (`WordFacts`: spelling candidates,
article counts), so a search or suggestion whose words were seen before since the last change
sends only its ranking statements.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from flask import current_app
from markupsafe import Markup, escape
from sqlalchemy import text

from portal.cluster import changes
from portal.extensions import db
from portal.kb.models import Article
from portal.search import semantic
from portal.search.audience import VISIBLE_TO, Audience
from portal.search.documents import article_document
from portal.search.queryparse import MIN_PREFIX, clean_input, plain_words, with_corrections
from portal.search.ranking import SENTENCE_BREAK

CONFIG = "portal_english"
MARK_START, MARK_END = "\ue000", "\ue001"  # private-use characters: never in stored text
# ts_rank weights for {D, C, B, A}, in the proportions of schema.FIELD_BOOSTS.
RANK_WEIGHTS = "{0.25, 0.375, 0.625, 1.0}"
HEADLINE_OPTIONS = (f"StartSel={MARK_START}, StopSel={MARK_END}, MaxFragments=2, MaxWords=30, "
                    "MinWords=12, FragmentDelimiter=\" … \"")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# As in the Whoosh parser, only NOT excludes: a minus sign is punctuation ("two-step" is two
# words, both wanted).
_TOKENS = re.compile(r'"([^"]*)"?|(\bNOT\s+)?(\w+)(\*?)|\b(OR)\b', re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)


def active() -> bool:
    """PostgreSQL search unless configured otherwise (SEARCH_BACKEND auto|whoosh|postgres)."""
    choice = current_app.config.get("SEARCH_BACKEND", "auto")
    if choice == "auto":
        return current_app.config["DATABASE_URL"].startswith("postgresql")
    return choice == "postgres"


# --- writing ---------------------------------------------------------------------------------
def fold(word: str) -> str:
    """Lowercase without accents: the form of vocabulary words (as Whoosh's spell field)."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _clean(value: str) -> str:
    return value.replace(MARK_START, " ").replace(MARK_END, " ")


_UPSERT = (
    "INSERT INTO fts_articles (article_id, title, labels, headings, section, body,"
    " status, visibility, category_id, slug, section_name, category_name, spell)"
    " VALUES (:id, :title, :labels, :headings, :section, :body, :status, :visibility,"
    " :category_id, :slug, :section_name, :category_name, :spell)"
    " ON CONFLICT (article_id) DO UPDATE SET title = excluded.title,"
    " labels = excluded.labels, headings = excluded.headings,"
    " section = excluded.section, body = excluded.body, status = excluded.status,"
    " visibility = excluded.visibility, category_id = excluded.category_id,"
    " slug = excluded.slug, section_name = excluded.section_name,"
    " category_name = excluded.category_name, spell = excluded.spell"
)
# The row and its narrow copy for instant results, in one statement (one round trip).
_WRITE = (
    f"WITH written AS ({_UPSERT} RETURNING article_id, status, visibility, category_id,"  # noqa: S608
    " tsv_short)"
    " INSERT INTO fts_short (article_id, status, visibility, category_id, tsv_short)"
    " SELECT * FROM written ON CONFLICT (article_id) DO UPDATE SET status = excluded.status,"
    " visibility = excluded.visibility, category_id = excluded.category_id,"
    " tsv_short = excluded.tsv_short"
)


def document_row(article: Article) -> dict:
    """The `fts_articles` row of an article (`spell`: its words for typo correction, only
    when customers may see it)."""
    doc = article_document(article)
    return {
        "id": article.id, "title": _clean(doc["title"]), "labels": _clean(doc["labels"]),
        "headings": _clean(" ".join(_HEADING.findall(article.body or ""))),
        "section": _clean(doc["section"]), "body": _clean(doc["body"]),
        "status": doc["status"], "visibility": doc["visibility"],
        "category_id": doc["category_id"], "slug": doc["slug"],
        "section_name": doc["section_name"], "category_name": doc["category_name"],
        "spell": sorted({fold(w) for w in _WORD.findall(doc["spell"])
                         if len(w) >= 3 and w.isalpha()}),
    }


def write_document(article_id: int) -> None:
    """Bring the article's search row (and the vocabulary) up to date, in this transaction."""
    session = db.session
    session.flush()
    old_spell = session.execute(
        text("SELECT spell FROM fts_articles WHERE article_id = :id FOR UPDATE"),
        {"id": article_id}).scalar()
    article = session.get(Article, article_id, populate_existing=True)
    new_spell: list[str] = []
    if article is None:
        for table in ("fts_articles", "fts_short"):
            session.execute(text(f"DELETE FROM {table} WHERE article_id = :id"),  # noqa: S608
                            {"id": article_id})
    else:
        row = document_row(article)
        new_spell = row["spell"]
        session.execute(text(_WRITE), row)
    _count_words(set(new_spell) - set(old_spell or ()), +1)
    _count_words(set(old_spell or ()) - set(new_spell), -1)
    changes.record(changes.KB)


def _count_words(words: set[str], delta: int) -> None:
    if not words:
        return
    # Sorted: two transactions touching the same words lock them in one order (no deadlock).
    params = {"words": sorted(words), "delta": delta}
    if delta > 0:
        db.session.execute(text(
            "INSERT INTO fts_vocabulary (word, articles)"
            " SELECT w, 1 FROM unnest(CAST(:words AS text[])) AS w"
            " ON CONFLICT (word) DO UPDATE SET articles = fts_vocabulary.articles + 1"), params)
    else:
        db.session.execute(text(
            "UPDATE fts_vocabulary SET articles = articles + :delta"
            " WHERE word = ANY(CAST(:words AS text[]))"), params)
        db.session.execute(text(
            "DELETE FROM fts_vocabulary WHERE word = ANY(CAST(:words AS text[]))"
            " AND articles <= 0"), params)


def rebuild(article_ids: list[int]) -> int:
    """`flask kb reindex` on PostgreSQL: every row and the vocabulary written afresh, in
    batches (the tables are emptied in the same transaction as the first batch)."""
    from collections import Counter

    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from portal.kb.models import KbSection

    session = db.session
    for table in ("fts_articles", "fts_short", "fts_vocabulary"):
        session.execute(text(f"DELETE FROM {table}"))  # noqa: S608
    vocabulary: Counter = Counter()
    for start in range(0, len(article_ids), 500):
        articles = session.scalars(
            select(Article).where(Article.id.in_(article_ids[start:start + 500]))
            .options(selectinload(Article.section).selectinload(KbSection.category))).all()
        rows = [document_row(article) for article in articles]
        if rows:
            session.execute(text(_WRITE), rows)
        for row in rows:
            vocabulary.update(row["spell"])
        session.flush()
        session.expunge_all()
    words = sorted(vocabulary)
    if words:
        session.execute(text(
            "INSERT INTO fts_vocabulary (word, articles) SELECT * FROM"
            " unnest(CAST(:words AS text[]), CAST(:counts AS integer[]))"),
            {"words": words, "counts": [vocabulary[w] for w in words]})
    changes.record(changes.KB)
    session.commit()
    # Every row is new: without fresh statistics the planner guesses, and until a vacuum
    # every search's first read of a row checks its inserting transaction and writes hint
    # bits (autovacuum comes later). VACUUM runs outside a transaction block.
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM (ANALYZE) fts_articles, fts_short, fts_vocabulary"))
    return len(article_ids)


# --- what the vocabulary says about single words --------------------------------------------
class Candidate(NamedTuple):
    """A vocabulary word near an unknown word; `known`: it has the unknown word's stem."""

    word: str
    articles: int
    known: bool


class WordFacts:
    """Facts about single (folded) words for one version of the knowledge base: the spelling
    candidates of each checked word (none for a word the vocabulary holds), each query word's
    article count as keyword weights read it (-1: a stop word), and the number of articles.
    They change only with the knowledge base, and every search and suggestion asks them for
    its words, so each process keeps them until the change feed's version moves (a change
    committed through any host), and asks the database only for words it has not seen."""

    MAX_WORDS = 50_000  # beyond this (a flood of made-up words) the facts start afresh

    def __init__(self, follower: changes.Follower, version: int) -> None:
        self.follower, self.version = follower, version
        self.spelling: dict[str, list[Candidate]] = {}
        self.counts: dict[str, int] = {}
        self.documents: int | None = None

    def current(self, follower: changes.Follower, version: int) -> bool:
        return (self.follower is follower and self.version == version
                and len(self.spelling) + len(self.counts) <= self.MAX_WORDS)


_facts: dict[str, WordFacts] = {}  # database URL -> the facts of its current version
_facts_lock = threading.Lock()


def kb_version() -> tuple[changes.Follower, int]:
    """What caches of the knowledge base are keyed by: the change feed's version, with the
    follower that counted it. Versions count the changes one follower has seen (a forked
    worker, another app in the same process (tests, benches) starts its own count), so the
    same number from another follower means another state."""
    follower = changes.follower()
    return follower, follower.version(changes.KB)


def word_facts() -> WordFacts:
    """This process's facts for the knowledge base's current version. The version is read
    before any fact is fetched, so a fact is never older than the version it is filed under."""
    url = current_app.config["DATABASE_URL"]
    follower, version = kb_version()
    with _facts_lock:
        facts = _facts.get(url)
        if facts is None or not facts.current(follower, version):
            facts = _facts[url] = WordFacts(follower, version)
    return facts


# --- queries ---------------------------------------------------------------------------------
@dataclass
class PgQuery:
    """A user query as SQL: its parts, each (op, tsquery function, value), joined into a
    tsquery expression with bound parameters."""

    text: str
    notes: list[str] = field(default_factory=list)
    parts: list[tuple[str, str, str]] = field(default_factory=list)  # (op, function, value)

    @property
    def query(self):  # the ParsedQuery interface: None when nothing is searchable
        return self if self.parts else None

    def tsquery(self, any_word: bool) -> tuple[str, dict]:
        """The parts joined: AND (or OR for any-word matching); NOT always excludes."""
        sql, params = "", {}
        for n, (op, function, value) in enumerate(self.parts):
            part = f"{function}('{CONFIG}', :p{n})"
            piece = f"!!{part}" if op == "not" else part
            joiner = " || " if op == "or" or (any_word and op == "and") else " && "
            sql = f"({sql}){joiner}{piece}" if sql else piece
            params[f"p{n}"] = value
        return sql, params

    def any_words(self) -> dict:
        """The `_ANY_WORDS` parameters: the wanted parts, in order (hybrid ranking reads
        plain words: `semantic.applies_to` keeps NOT and OR out of it)."""
        wanted = [(function, value) for op, function, value in self.parts if op != "not"]
        return {"terms": [value for _f, value in wanted],
                "phrases": [function == "phraseto_tsquery" for function, _v in wanted]}


# The query's wanted parts, each as a tsquery computed once (`words`: n, q), and all of them
# OR'ed (`q`: the folded tsqueries joined as text, which reads back as the same tsquery; an
# empty one without lexemes for stop words alone, as `||` gives). One text for any number of
# words: psycopg prepares a statement after a few runs of the same text, and the server then
# keeps its plan. Written as `to_tsquery(:p0) || to_tsquery(:p1)...` each statement had its
# own text and was planned on every run, each word stemmed at every use.
_ANY_WORDS = (
    "words AS MATERIALIZED (SELECT w.n, CASE WHEN w.phrase"  # noqa: S608
    f" THEN phraseto_tsquery('{CONFIG}', w.term) ELSE to_tsquery('{CONFIG}', w.term) END AS q"
    " FROM unnest(CAST(:terms AS text[]), CAST(:phrases AS boolean[])) WITH ORDINALITY"
    " AS w(term, phrase, n)),"
    " q AS MATERIALIZED (SELECT coalesce(CAST(string_agg('(' || CAST(words.q AS text) || ')',"
    " ' | ' ORDER BY words.n) AS tsquery), CAST('' AS tsquery)) AS q"
    " FROM words WHERE numnode(words.q) > 0)"
)


def parse(raw: str, *, prefix_last: bool) -> PgQuery:
    """Words, "phrases", word* prefixes, OR and NOT/-word; never raises."""
    cleaned, notes = clean_input(raw)
    parsed = PgQuery(cleaned, notes)
    tokens = list(_TOKENS.finditer(cleaned))
    op = "and"
    for n, token in enumerate(tokens):
        phrase, negate, word, star, or_word = token.groups()
        if or_word:
            op = "or" if parsed.parts else "and"
            continue
        if phrase is not None:
            words = " ".join(_WORD.findall(phrase))
            if not words:
                continue
            function, value = "phraseto_tsquery", words
        else:
            typing = prefix_last and n == len(tokens) - 1 and not cleaned.endswith(" ")
            prefix = bool(star) or (typing and len(word) >= MIN_PREFIX)
            if star and len(word) < MIN_PREFIX:
                note = (f"Put at least {MIN_PREFIX} letters before a * to search by the start "
                        "of a word.")
                if note not in notes:
                    notes.append(note)
                continue
            function, value = "to_tsquery", f"'{word}'" + (":*" if prefix else "")
        this_op = "not" if negate else op
        parsed.parts.append((this_op, function, value))
        op = "and"
    if parsed.parts and all(p[0] == "not" for p in parsed.parts):
        parsed.parts = []  # "NOT x" alone is no answer
    return parsed


def _visible(audience: Audience, category_id: int | None) -> tuple[str, dict]:
    sql = "d.status = 'published' AND d.visibility = ANY(:visible)"
    params: dict = {"visible": list(VISIBLE_TO[audience])}
    if category_id is not None:
        sql += " AND d.category_id = :category_id"
        params["category_id"] = category_id
    return sql, params


# The SQL below is assembled from constants and the tsquery builder's fixed templates; every
# value a person typed travels as a bound parameter (hence the S608 exemptions).
def _rows(sql: str, params: dict):
    return db.session.execute(text(sql), params).mappings().all()


def _hit(row, snippet: Markup, score: float):
    from portal.search.service import Hit

    return Hit(article_id=row["article_id"], title=row["title"], slug=row["slug"],
               section=row["section_name"], category=row["category_name"],
               snippet_html=snippet, score=score)


def _snippet(headline: str | None) -> Markup:
    """ts_headline's fragment, started at the sentence of its first match (as Whoosh's)."""
    if not headline:
        return Markup("")
    first = headline.find(MARK_START)
    breaks = [m.end() for m in SENTENCE_BREAK.finditer(headline, 0, max(first, 0))]
    if breaks:
        headline = headline[breaks[-1]:]
    marked = str(escape(headline)).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
    return Markup(marked)  # noqa: S704 (escaped above; only our marks are HTML)


_SHOWN = ("d.article_id, d.title, d.slug, d.section_name, d.category_name")


def _source(instant: bool) -> tuple[str, str]:
    """(table, vector column): instant results match the short fields in the narrow table."""
    return ("fts_short", "d.tsv_short") if instant else ("fts_articles", "d.tsv")


def keyword_page(parsed: PgQuery, audience: Audience, category_id: int | None, *, page: int,
                 per_page: int, any_word: bool, snippets: bool, instant: bool):
    """One ranked page and the total: rank and count in the database, headlines for the page.
    Instant results match the short fields and rank articles with every word first."""
    where, params = _visible(audience, category_id)
    table, column = _source(instant)
    tsq, tsq_params = parsed.tsquery(any_word)
    params.update(tsq_params, limit=per_page, offset=(page - 1) * per_page)
    order = "score DESC, d.article_id"
    all_words = ""
    if instant and any_word:
        and_sql, and_params = parsed.tsquery(False)
        params.update(and_params)
        all_words = f", {column} @@ ({and_sql}) AS all_words"
        order = "all_words DESC, " + order
    headline = (f"ts_headline('{CONFIG}', d.body, q.q, :options)" if snippets else "NULL")
    params["options"] = HEADLINE_OPTIONS
    # The ranked rows are fenced (OFFSET 0) before the window count: otherwise the planner
    # computes ts_rank above the WindowAgg, which then buffers every match's vector (a wide
    # any-word match spilled 10 MB to temporary files, most of the statement's time).
    rows = _rows(
        f"WITH q AS (SELECT {tsq} AS q),"  # noqa: S608
        " page AS (SELECT ranked.*, count(*) OVER () AS total FROM"
        f" (SELECT d.article_id, ts_rank('{RANK_WEIGHTS}', {column}, q.q, 1) AS score"
        f"{all_words} FROM {table} d, q WHERE {column} @@ q.q AND {where} OFFSET 0) ranked"
        f" ORDER BY {order.replace('d.', 'ranked.')} LIMIT :limit OFFSET :offset)"
        f" SELECT {_SHOWN}, page.score, page.total, {headline} AS headline"
        f" FROM page JOIN fts_articles d USING (article_id), q"
        f" ORDER BY {order.replace('d.article_id', 'page.article_id')}", params)
    total = rows[0]["total"] if rows else 0
    return [_hit(r, _snippet(r["headline"]), float(r["score"])) for r in rows], total


@dataclass
class KeywordCandidates:
    """Hybrid ranking's keyword side: the best any-word matches by ts_rank, how much of the
    question each holds (`shares`) and its keyword score weighted by rarity (`scores`)."""

    ranked: list[tuple[int, float]]
    shares: dict[int, float]
    scores: dict[int, float]


def keyword_candidates(parsed: PgQuery, audience: Audience, category_id: int | None,
                       limit: int, *, instant: bool) -> KeywordCandidates:
    """One statement (one round trip): the best `limit` any-word matches by ts_rank, each
    with its rank per word. Words weigh by rarity as in `ranking.keyword_shares`, a word's
    article count read from `fts_vocabulary` (the commonest word of the same stem, as Whoosh
    counts stems; a word no article has weighs the most, a stop word nothing); the counts
    come from `word_facts`, and the same statement reads those not seen yet. An article's
    score is each held word's ts_rank times its weight: ts_rank alone knows no rarity, so an
    article repeating a common word outranked the one holding the rare one (BM25, Whoosh's
    score, weighs by rarity)."""
    where, params = _visible(audience, category_id)
    table, column = _source(instant)
    params.update(parsed.any_words(), limit=limit)
    # Each word once, however often it is typed ("line by line"), as in Whoosh's query: its
    # last part ("'w':*" -> "w"), at its first place.
    ranked = {fold(" ".join(_WORD.findall(value))): n
              for n, value in enumerate(params["terms"], 1)}
    params["ranked"] = list(ranked.values())
    held = column.replace("d.", "f.")  # the shown fields' vector of the same article
    folded = list(ranked)
    facts = word_facts()
    unseen = [word for word in folded if word not in facts.counts]
    stats, stats_join = "", ""
    if unseen or facts.documents is None:
        params["unseen"] = unseen
        stats = ", stats.documents, stats.counts"
        stats_join = (
            ", (SELECT (SELECT count(*) FROM fts_short) AS documents,"  # noqa: S608
            " (SELECT json_object_agg(w.word, CASE WHEN length(to_tsvector("
            f"'{CONFIG}', w.word)) = 0 THEN -1 ELSE c.articles END)"
            "  FROM unnest(CAST(:unseen AS text[])) AS w(word), LATERAL"
            "  (SELECT coalesce(max(v.articles), 0) AS articles FROM fts_vocabulary v"
            "  WHERE v.word = w.word OR (v.word LIKE (tsvector_to_array("
            f"  to_tsvector('{CONFIG}', w.word)))[1] || '%' AND to_tsvector('{CONFIG}', v.word)"
            f"  = to_tsvector('{CONFIG}', w.word))) c) AS counts) stats")
    rows = db.session.execute(text(
        f"WITH {_ANY_WORDS}, top AS (SELECT d.article_id,"  # noqa: S608
        f" ts_rank('{RANK_WEIGHTS}', {column}, q.q, 1) AS score"
        f" FROM {table} d, q WHERE {column} @@ q.q AND {where}"
        " ORDER BY score DESC, d.article_id LIMIT :limit)"
        " SELECT top.article_id, top.score, ARRAY(SELECT CASE WHEN"
        f" {held} @@ words.q THEN ts_rank('{RANK_WEIGHTS}', {held}, words.q, 1) ELSE 0 END"
        " FROM unnest(CAST(:ranked AS integer[])) WITH ORDINALITY AS r(n, k)"
        f" JOIN words USING (n) ORDER BY r.k) AS ranks{stats}"
        f" FROM top JOIN fts_articles f USING (article_id){stats_join}"
        " ORDER BY top.score DESC, top.article_id"), params).all()
    if not rows:
        return KeywordCandidates([], {}, {})
    if stats:
        facts.documents = rows[0].documents
        facts.counts.update(rows[0].counts or {})
    documents, counts = max(facts.documents, 1), facts.counts
    # A stop word (-1) is no part of the question, as in Whoosh's analysed query.
    weights = [0.0 if counts.get(word, 0) < 0 else
               float(np.log1p(documents / (counts.get(word, 0) + 0.5))) for word in folded]
    total = sum(weights) or 1.0
    shares, scores = {}, {}
    for row in rows:
        held_ranks = list(zip(weights, row.ranks, strict=True))
        shares[row.article_id] = sum(w for w, rank in held_ranks if rank > 0) / total
        scores[row.article_id] = sum(w * rank for w, rank in held_ranks)
    return KeywordCandidates([(row.article_id, float(row.score)) for row in rows], shares,
                             scores)


def hybrid_page(parsed: PgQuery, audience: Audience, category_id: int | None, *, page: int,
                per_page: int, instant: bool, meaning: str | None = None,
                fixes: dict[str, str] | None = None):
    """Keyword and meaning candidates fused as with Whoosh (`ranking.rank_hybrid`): the
    encoder reads `meaning` (default: the cleaned query) and the keywords are the words, both
    with the misspelt words of `fixes` replaced; the coverage that lets a keyword match under
    the cosine floor through is read from the words as typed. None without the model.
    Two statements: the keyword candidates, then the shown page's rows (visibility checked
    in the same statement); a third for the coverage of a corrected question."""
    typed = parsed
    meaning = meaning or parsed.text
    if fixes:
        parsed = parse(with_corrections(plain_words(parsed.text), fixes),
                       prefix_last=False).query or typed
        meaning = with_corrections(meaning, fixes)
    nearest = semantic.nearest_articles(meaning, audience, changes.version(changes.KB),
                                        semantic.CANDIDATES)
    if nearest is None:
        return None
    candidates = KeywordCandidates([], {}, {})
    if semantic.mode() != "semantic":
        candidates = keyword_candidates(parsed, audience, category_id, semantic.CANDIDATES,
                                        instant=instant)
    keyword = candidates.ranked
    titles = semantic.title_cosines(meaning, [a for a, _s in nearest + keyword])
    coverage = 0.0
    if keyword and not instant and not semantic.clears_floor(nearest, bool(fixes), titles):
        as_typed = candidates if typed is parsed else keyword_candidates(
            typed, audience, category_id, 1, instant=instant)
        if as_typed.ranked:
            coverage = as_typed.shares[as_typed.ranked[0][0]]
    keyword = sorted(((a, candidates.scores[a]) for a, _s in keyword), key=lambda pair: -pair[1])
    learned = {} if instant else semantic.learned_cosines(  # whole questions only
        meaning, [a for a, _s in nearest + keyword])
    fused = semantic.fuse(keyword, nearest, coverage, shares=candidates.shares,
                          corrected=bool(fixes), titles=titles, learned=learned)
    if not fused:
        return [], 0
    where, params = _visible(audience, category_id)
    headline = (f"ts_headline('{CONFIG}', d.body, q.q, :options)" if not instant else "NULL")
    # The fused order filtered by visibility, its total, and the shown page's rows with
    # their headlines (computed on those rows only).
    rows = _rows(
        f"WITH {_ANY_WORDS}, allowed AS (SELECT d.article_id, fused.n,"  # noqa: S608
        " count(*) OVER () AS total, row_number() OVER (ORDER BY fused.n) AS position"
        " FROM unnest(CAST(:ids AS integer[])) WITH ORDINALITY AS fused(article_id, n)"
        f" JOIN fts_articles d USING (article_id) WHERE {where})"
        f" SELECT {_SHOWN}, allowed.total, {headline} AS headline"
        " FROM allowed JOIN fts_articles d USING (article_id), q"
        " WHERE allowed.position > :skip AND allowed.position <= :until"
        " ORDER BY allowed.n",
        {**params, **parsed.any_words(), "ids": fused, "options": HEADLINE_OPTIONS,
         "skip": (page - 1) * per_page, "until": page * per_page})
    if not rows:
        total = db.session.scalar(text(
            "SELECT count(*) FROM fts_articles d"  # noqa: S608
            f" WHERE d.article_id = ANY(:ids) AND {where}"), {**params, "ids": fused})
        return [], total
    hits = [_hit(row, _snippet(row["headline"]), 1.0 / (n + 1)) for n, row in enumerate(rows)]
    return hits, rows[0]["total"]


def run(text_: str, audience: Audience, *, page: int, per_page: int,
        category_id: int | None, instant: bool, any_word: bool, meaning: str | None = None,
        keywords_only: bool = False):
    """service._run on PostgreSQL: (parsed, hits, total, whether meaning-based ranking ran),
    through a per-process cache keyed by the change feed's version of the knowledge base.
    `meaning` and `keywords_only` as in service._run (instant results while typing do not run
    the model)."""
    from portal.search.service import _cache

    hybrid = not keywords_only and semantic.applies_to(text_)
    key = ("pg", current_app.config["DATABASE_URL"], *kb_version(), text_,
           meaning, audience, page, per_page, category_id, instant, any_word,
           hybrid and (semantic.mode(), semantic.signature()))
    cached = _cache.get(key)
    if cached is not None:
        return cached
    parsed = parse(text_, prefix_last=instant)
    hits, total, hybrid_ran = [], 0, False
    if parsed.parts:
        ranked = None
        if hybrid:
            fixes = {} if instant else corrections(parsed.text)
            ranked = hybrid_page(parsed, audience, category_id, page=page, per_page=per_page,
                                 instant=instant, meaning=meaning, fixes=fixes)
            hybrid_ran = ranked is not None
        if ranked is None:
            ranked = keyword_page(parsed, audience, category_id, page=page, per_page=per_page,
                                  any_word=any_word, snippets=not instant, instant=instant)
        hits, total = ranked
    result = (parsed, hits, total, hybrid_ran)
    if semantic.still_ranks_as(key[-1], hybrid):
        _cache.put(key, result)
    return result


def _spelling_candidates(words: list[str]) -> dict[str, list[Candidate]]:
    """Each checkable (folded) word's closest vocabulary words: trigram neighbours, and the
    word with two neighbouring letters swapped (trigrams miss "swtich" -> "switch"). A word
    is known (first, and never corrected) when a vocabulary word has its stem: "step" stays
    when the articles say "steps" (as `service.corrections` for Whoosh). A word the
    vocabulary holds as typed is known without looking for neighbours. Words seen since the
    last change come from `word_facts`; the others in one query, however many."""
    checked = sorted({fold(w) for w in words if _checkable(fold(w))})
    facts = word_facts()
    unseen = [w for w in checked if w not in facts.spelling]
    if unseen:
        found: dict[str, list[Candidate]] = {w: [] for w in unseen}
        swaps = [" ".join(w[:i] + w[i + 1] + w[i] + w[i + 2:] for i in range(len(w) - 1))
                 for w in unseen]
        for row in db.session.execute(text(
                "SELECT w.word AS typed, c.word, c.articles,"  # noqa: S608
                f" to_tsvector('{CONFIG}', c.word) = to_tsvector('{CONFIG}', w.word) AS known"
                " FROM unnest(CAST(:words AS text[]), CAST(:swaps AS text[])) AS w(word, swaps)"
                " CROSS JOIN LATERAL"
                " (SELECT v.word, v.articles, similarity(v.word, w.word) AS sim"
                "  FROM fts_vocabulary v WHERE v.word % w.word"
                "  AND left(v.word, 1) = left(w.word, 1)"
                "  OR v.word = ANY(string_to_array(w.swaps, ' '))"
                "  ORDER BY v.word = w.word DESC, sim DESC LIMIT 12) c"
                " WHERE NOT EXISTS (SELECT FROM fts_vocabulary k WHERE k.word = w.word)"
                " ORDER BY w.word, known DESC, c.sim DESC"),
                {"words": unseen, "swaps": swaps}):
            found[row.typed].append(Candidate(row.word, row.articles, row.known))
        facts.spelling.update(found)
    return {w: facts.spelling[w] for w in checked}


def _closest(found: list, word: str, maxdist: int) -> str | None:
    """The vocabulary word within `maxdist` edits of an unknown `word`, the commonest first."""
    if not found or found[0].known:
        return None
    scored = sorted((_distance(word, c.word), -c.articles, c.word) for c in found)
    return scored[0][2] if scored[0][0] <= maxdist else None


def corrections(text_: str) -> dict[str, str]:
    """Unknown words (lowercased) and the vocabulary word one typing slip away that replaces
    them, for hybrid ranking as `service.corrections` for Whoosh: only one slip, so a correct
    word the articles do not use is not turned into another ("insurance" -> "instance")."""
    words = plain_words(text_).split()
    candidates = _spelling_candidates(words)
    fixes = {}
    for word in {w.lower() for w in words}:
        fixed = _closest(candidates.get(fold(word), []), fold(word), 1)
        if fixed:
            fixes[word] = fixed
    return fixes


def correct_spelling(text_: str) -> str | None:
    """Unknown words replaced by the closest vocabulary word (trigram candidates, then at most
    one edit for short words and two for longer ones, the commonest first), or None.
    Every unknown word's candidates come in one query (one round trip however many words;
    a word the vocabulary holds is looked up, never compared by trigrams). The answer is
    cached per process like results, keyed by the change feed's version of the knowledge
    base: a query with few results asks again on every visit."""
    from portal.search.service import _cache

    key = ("pg-spelling", current_app.config["DATABASE_URL"], *kb_version(),
           text_)
    cached = _cache.get(key)
    if cached is None:
        cached = (_correct_spelling(text_),)
        _cache.put(key, cached)
    return cached[0]


def _correct_spelling(text_: str) -> str | None:
    words = plain_words(text_).split()
    candidates = _spelling_candidates(words)
    changed, out = False, []
    for word in words:
        lower = fold(word)
        fixed = _closest(candidates.get(lower, []), lower, 1 if len(lower) <= 4 else 2)
        out.append(fixed or word)
        changed = changed or fixed is not None
    return " ".join(out) if changed else None


def _checkable(word: str) -> bool:
    return len(word) >= 3 and "*" not in word and word.isalpha()


def _distance(a: str, b: str) -> int:
    """Damerau-Levenshtein (adjacent transpositions count one), as Whoosh's corrector."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, rows[-2][j - 2] + 1)
            row.append(value)
        rows.append(row)
    return rows[-1][-1]


def process_queue(limit: int, hooks) -> int:
    """The index job on PostgreSQL: the search rows are already committed with each change,
    so only the after-index hooks (embeddings) remain. Rows changed meanwhile stay queued."""
    from sqlalchemy import bindparam, delete, select

    from portal.kb.models import IndexQueue

    session = db.session
    session.commit()
    rows = session.execute(select(IndexQueue.article_id, IndexQueue.queued_at)
                           .order_by(IndexQueue.queued_at).limit(limit)).all()
    if not rows:
        session.commit()
        return 0
    session.connection().execute(
        delete(IndexQueue.__table__).where(IndexQueue.article_id == bindparam("aid"),
                                           IndexQueue.queued_at == bindparam("queued")),
        [{"aid": row.article_id, "queued": row.queued_at} for row in rows])
    session.commit()
    ids = [row.article_id for row in rows]
    for hook in hooks:
        hook(ids)
    return len(ids)
