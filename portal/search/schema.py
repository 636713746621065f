"""The Whoosh schema: what an article looks like to the search index.

Text fields use one analyzer (tokenise, lowercase, fold accents, drop English stop words, stem)
so "Réinitialiser", "passwords" and "password" meet. The body stores character offsets
(`chars=True`) so highlighting reads them instead of re-analysing the text per hit. `spell`
holds unstemmed words of customer-visible articles only, for "did you mean".
"""

from __future__ import annotations

from whoosh.analysis import CharsetFilter, LowercaseFilter, RegexTokenizer, StemmingAnalyzer
from whoosh.fields import ID, KEYWORD, NUMERIC, STORED, TEXT, Schema
from whoosh.support.charset import accent_map

# Bump when the schema or analysis changes: a new index name means a full rebuild.
SCHEMA_VERSION = 1
INDEX_NAME = f"articles_v{SCHEMA_VERSION}"

TEXT_ANALYZER = StemmingAnalyzer() | CharsetFilter(accent_map)
SPELL_ANALYZER = RegexTokenizer() | LowercaseFilter() | CharsetFilter(accent_map)

# Query-time weight of each searchable field: a title match counts most.
FIELD_BOOSTS = {"title": 4.0, "labels": 2.5, "section": 1.5, "body": 1.0}
SEARCH_FIELDS = tuple(FIELD_BOOSTS)
# Instant results (as you type) match the short fields only: their posting lists are a few
# words per article, so a query costs a fraction of a body search. "See all results" ranks
# the body too.
INSTANT_FIELDS = ("title", "labels", "section")


def build_schema() -> Schema:
    return Schema(
        id=ID(stored=True, unique=True),
        title=TEXT(analyzer=TEXT_ANALYZER, stored=True, chars=True),
        body=TEXT(analyzer=TEXT_ANALYZER, stored=True, chars=True),
        labels=TEXT(analyzer=TEXT_ANALYZER, stored=True),
        section=TEXT(analyzer=TEXT_ANALYZER),  # section and category names
        spell=TEXT(analyzer=SPELL_ANALYZER, phrase=False),
        status=ID,
        visibility=ID(stored=True),
        category_id=NUMERIC(int, bits=32, signed=False, stored=True),
        slug=STORED,
        section_name=STORED,
        category_name=STORED,
        promoted=KEYWORD,
    )
