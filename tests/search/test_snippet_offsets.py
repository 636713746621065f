"""Snippet offsets read from the stored body (ranking.char_offsets) are exactly the positions
and character offsets the index holds for each matched word: stop words, punctuation, dotted
words, accents, repeated words and stems included."""

import re

from portal.search import Audience, search_articles
from portal.search.index import store
from portal.search.ranking import char_offsets
from portal.search.schema import TEXT_ANALYZER

BODIES = [
    "The printer is offline. Restart the printer, then print a test page: printing works.",
    "A an the of: after v1.2 and 3.14 the café's Wi-Fi résumé fails; Passwords, password!",
    "Why is it so? It isn't. *Starred* words, e-mail addresses like a.b@example.com, "
    "and don't forget the über-long Ünïcödé text … with “quotes” and tabs\tand\nnewlines.",
    "the the the printer printers printed PRINTING",
    "",
]


def _index_offsets(reader, docnum, word):
    matcher = reader.postings("body", word)
    matcher.skip_to(docnum)
    assert matcher.id() == docnum
    return [tuple(t) for t in matcher.value_as("characters")]


def test_offsets_from_the_body_are_the_index_s(app, make_article):
    articles = [make_article(f"Article {n}", body) for n, body in enumerate(BODIES)]
    searcher = store().searcher()
    reader = searcher.reader()
    checked = 0
    for article in articles:
        docnum = searcher.document_number(id=str(article.id))
        body = searcher.stored_fields(docnum)["body"]
        words = {token.text for token in TEXT_ANALYZER(body)} | {"absent"}
        found = char_offsets({docnum: body}, words)[docnum]
        for word in words - {"absent"}:
            ours = [(t.pos, t.startchar, t.endchar) for t in found if t.text == word]
            assert ours == _index_offsets(reader, docnum, word), word
            checked += 1
        assert not [t for t in found if t.text == "absent"]
    assert checked > 30


def test_search_snippets_mark_the_matched_words(app, make_article):
    make_article("Printer help", BODIES[0])
    (hit,) = search_articles("printing", Audience.PUBLIC).hits
    marked = re.findall(r"<mark[^>]*>([^<]+)</mark>", str(hit.snippet_html))
    assert marked == ["print", "printing"]  # "printer" has a stem of its own


def test_query_terms_are_whoosh_s_in_its_order(app, make_article):
    from portal.search.queryparse import parse
    from portal.search.ranking import query_terms

    make_article("Reset a forgotten password", "Use the Forgot password link to reset it.")
    searcher = store().searcher()
    texts = ["reset password", "how do I reset my forgotten password after the update",
             "pass* reset", '"reset password" link', "password NOT forgotten", "x", "the a"]
    compared = 0
    for text in texts:
        for any_word in (False, True):
            for prefix_last in (False, True):
                q = parse(text, searcher, any_word=any_word, prefix_last=prefix_last).query
                if q is not None:
                    assert query_terms(q) == list(q.iter_all_terms()), text
                    compared += 1
    assert compared > 15
