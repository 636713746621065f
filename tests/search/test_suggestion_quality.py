"""What suggestions and search rank, with the real model: the defects of issue 15.

Each test failed before its fix: unrelated questions were "corrected" into results, a keyword
match under the cosine floor was dropped, clean-up damaged what the encoder read, and
suggestions did not correct spelling.
"""

import re

import pytest

from portal.search import Audience, search_articles, semantic, suggest_articles
from portal.search.index import store
from portal.search.queryparse import meaning_text, parse
from portal.search.ranking import keyword_shares
from portal.search.service import corrections

SEMANTIC = pytest.mark.parametrize("app", [{"SEMANTIC_SEARCH": True}], indirect=True)
# The behaviours hold on both keyword backends (PostgreSQL corrected nothing when suggestions
# were found, and "corrected" unrelated questions into results when none were).
BOTH_BACKENDS = pytest.mark.parametrize("search_backend", ["whoosh", "postgres"], indirect=True)


def parse_any_word(text, searcher):
    return parse(text, searcher, any_word=True).query


def ids(found):
    return [hit.article_id for hit in getattr(found, "hits", found)]


@pytest.fixture
def programming(make_article):
    """A small programming FAQ, written for these tests."""
    return {
        "exceptions": make_article(
            "How fast are exceptions?",
            "A try/except block costs almost nothing when no exception is raised. Catching "
            "an exception, on the other hand, takes noticeably longer, so use a dictionary "
            "lookup with a default instead when a key is usually missing."),
        "goto": make_article(
            "Why is there no goto?",
            "Structured code does without it: use loops, break and continue, functions, or "
            "raise an exception and catch it further out to leave several nested blocks at "
            "once."),
        "float": make_article(
            "Why are floating-point calculations inaccurate?",
            "Decimal fractions such as one tenth have no exact binary representation, so "
            "sums of them carry tiny rounding errors. Compare with a tolerance, or use the "
            "decimal module for money."),
        "random": make_article(
            "How do I generate random numbers?",
            "The random module picks random integers in a range, shuffles lists and chooses "
            "items; use the secrets module for tokens and passwords."),
        "class": make_article(
            "What is a class instance?",
            "A class describes objects; each object made from it is an instance with its "
            "own attributes. Methods receive the instance as self."),
        "debugger": make_article(
            "Is there a debugger with breakpoints?",
            "The pdb module sets breakpoints, shows variables and single-steps through a "
            "program; most editors offer a graphical debugger built on it."),
        "imports": make_article(
            "How can two modules import each other?",
            "When two modules import each other at the top, one of them sees the other only "
            "half initialised and the import fails. Import inside the function that needs "
            "it, or move the shared code into a third module."),
    }


@BOTH_BACKENDS
@SEMANTIC
@pytest.mark.parametrize("question", ["my cat is sick", "pizza delivery hours",
                                      "car insurance quote"])
def test_an_unrelated_question_gets_nothing_and_no_correction(app, programming, question):
    assert suggest_articles(question, Audience.CUSTOMERS) == []
    results = search_articles(question, Audience.PUBLIC)
    # "car insurance quote" was corrected to "car instance quote" and showed the class article.
    assert results.hits == [] and results.total == 0
    assert results.corrected_query is None and results.did_you_mean is None


@BOTH_BACKENDS
@SEMANTIC
def test_a_keyword_match_under_the_cosine_floor_is_still_suggested(app, programming):
    question = "tolerance"  # in one article, but too little for the encoder to go on
    nearest = semantic.nearest_articles(question, Audience.CUSTOMERS,
                                        store().searcher().reader().generation(), 5)
    assert nearest[0][1] < semantic.QUERY_FLOOR  # meaning alone would suggest nothing
    assert ids(suggest_articles(question, Audience.CUSTOMERS))[0] == programming["float"].id
    assert ids(search_articles(question, Audience.PUBLIC))[0] == programming["float"].id


def test_clean_up_keeps_what_the_encoder_reads():
    for text in ("0.1 + 0.2 not equal 0.3", "step through code line by line",
                 "ImportError: cannot import name 'x' (most likely a circular import)"):
        assert meaning_text(text) == text
    assert meaning_text("  two\nlines\u200b and\ta\x00 tab ") == "two lines and a tab"
    long = "word " * 200
    assert len(meaning_text(long)) <= 400 and meaning_text(long).endswith("word")


@BOTH_BACKENDS
@SEMANTIC
def test_punctuation_and_repeated_words_reach_the_encoder(app, programming):
    assert ids(suggest_articles("0.1 + 0.2 not equal 0.3", Audience.CUSTOMERS))[0] \
        == programming["float"].id
    # Cut to "line by" it fell under the floor and got nothing. In this seven-article set the
    # goto article is a little closer in meaning (0.331 against 0.310) and keywords decide;
    # on PostgreSQL "through" is a stop word, the debugger article holds less of the question
    # and the (smaller, issue 15 fourth round) keyword bonus leaves it second.
    assert programming["debugger"].id in \
        ids(suggest_articles("step through code line by line", Audience.CUSTOMERS))[:2]


@BOTH_BACKENDS
@SEMANTIC
def test_suggestions_correct_spelling(app, programming):
    for question, key in [("ramdom number between 1 and 10", "random"),
                          ("circular inport error", "imports")]:
        assert ids(suggest_articles(question, Audience.CUSTOMERS))[0] == programming[key].id
        assert ids(search_articles(question, Audience.PUBLIC))[0] == programming[key].id


def test_only_one_slip_is_corrected_and_known_words_stay(app, programming):
    fixes = corrections(store(), "ramdom insurance burning excepton catches")
    # "catches": its stem is indexed ("catching"); "insurance" and "burning" are no slip away.
    assert fixes == {"ramdom": "random", "excepton": "exception"}


@pytest.mark.parametrize("search_backend", ["postgres"], indirect=True)
def test_postgres_corrects_one_slip_too_and_leaves_known_stems(app, programming):
    from portal.search import pg

    fixes = pg.corrections("ramdom insurance burning excepton catches improt")
    # As with Whoosh; "improt" (two letters swapped) is no trigram neighbour of "import".
    assert fixes == {"ramdom": "random", "excepton": "exception", "improt": "import"}


def test_keyword_only_suggestions_correct_spelling_too(app, programming):
    assert not app.config["SEMANTIC_SEARCH"]
    assert ids(suggest_articles("ramdom", Audience.CUSTOMERS))[0] \
        == programming["random"].id


@SEMANTIC
def test_a_question_mark_is_punctuation_not_a_wildcard(app, programming):
    assert semantic.applies_to("why is there no goto?")
    assert not semantic.applies_to("gr?y")
    assert ids(search_articles("why is there no goto?", Audience.PUBLIC))[0] \
        == programming["goto"].id
    app.config["SEMANTIC_SEARCH"] = False
    assert ids(search_articles("generate random numbers?", Audience.PUBLIC))[0] \
        == programming["random"].id


@SEMANTIC
def test_a_keyword_bonus_follows_the_share_of_the_question_an_article_holds(app, programming):
    index_store = store()
    searcher = index_store.searcher()
    docnum = {key: searcher.document_number(id=str(article.id))
              for key, article in programming.items()}
    question = parse_any_word("random numbers module", searcher)
    shares = keyword_shares(index_store, question, list(docnum.values()))
    # "random" and "numbers" are in one article, "module" in four: the random article holds
    # the whole question, the float and imports articles its common word, the class article
    # nothing.
    assert shares[docnum["random"]] == pytest.approx(1.0)
    assert 0 < shares[docnum["float"]] == shares[docnum["imports"]] < 0.3
    assert shares[docnum["class"]] == 0


def test_fusion_weighs_a_keyword_match_by_the_share_it_holds(app):
    app.config["SEMANTIC_SEARCH"] = True
    near = [(2, 0.50), (1, 0.48)]
    keyword = [(1, 1002.0), (2, 1001.0)]  # article 1: the best keyword match
    # Holding the question's distinctive words, the keyword match overtakes a close cosine ...
    assert semantic.fuse(keyword, near, 0.0, shares={1: 1.0, 2: 0.2})[0] == 1
    # ... holding only a common word, it does not.
    assert semantic.fuse(keyword, near, 0.0, shares={1: 0.1, 2: 0.2})[0] == 2


@SEMANTIC
def test_the_article_titled_with_the_question_comes_first(app, programming, make_article):
    answer = make_article(
        "How do I reset my password?",
        "Open the sign-in page, choose Forgot password and follow the link we e-mail you.")
    make_article(
        "Managing your account",
        "Your account page shows your name, e-mail address, language and time zone. You can "
        "close the account, change the language, or reset the password from here too.")
    question = "how can i reset my password"
    assert ids(suggest_articles(question, Audience.CUSTOMERS))[0] == answer.id
    assert ids(search_articles(question, Audience.PUBLIC))[0] == answer.id


@BOTH_BACKENDS
@SEMANTIC
@pytest.mark.parametrize("question", [
    "how do i feed my pet snake", "cheap flights to lisbon in may", "symptoms of the flu",
    "recipe for banana bread", "find a plumber near me", "parking fine appeal"])
def test_off_topic_questions_get_nothing(app, programming, question):
    assert suggest_articles(question, Audience.CUSTOMERS) == []
    assert search_articles(question, Audience.PUBLIC).hits == []


@BOTH_BACKENDS
@SEMANTIC
def test_a_common_word_alone_does_not_outrank_the_answer(app, client, programming,
                                                        make_article):
    """ "0.1 + 0.2 == 0.3 is False" (issue 15): its only indexed word is "false", so every
    article with that word held "the whole question" and its keyword bonus put the identity
    article above the floating-point one, first by meaning."""
    make_article(
        "When can I rely on identity tests with the is operator?",
        "The is operator tests identity: x is y is True only when both names refer to the "
        "same object, and False otherwise. Use it for None and for sentinels; compare values "
        "with ==, because two equal numbers or strings may be different objects.")
    question = "0.1 + 0.2 == 0.3 is False"
    panel = client.get("/tickets/new/suggestions", query_string={"subject": question},
                       headers={"HX-Request": "true"}).get_data(as_text=True)
    suggested = [int(n) for n in re.findall(r'id="suggestion-(\d+)"', panel)]
    assert suggested[0] == programming["float"].id
    assert ids(search_articles(question, Audience.PUBLIC))[0] == programming["float"].id


@BOTH_BACKENDS
@SEMANTIC
def test_an_article_whose_title_is_the_question_outranks_one_that_mentions_it(
        app, programming, make_article):
    """A title says which question an article answers; a chunk also carries what the article
    merely mentions. The list-methods article spells the question out in its body and its
    chunk is the closer one (0.57 against 0.56, which a long body dilutes), enough with the
    keyword bonus to come first; the answer's title is far closer (0.98) and lifts it first
    (issue 15: 'what is sid' answered by the article listing the release names)."""
    answer = make_article(
        "Sort one list by another",
        "Pair them with zip. Background: Python's ordering is stable, so equal records keep "
        "their order. Text compares by code point; use locale.strxfrm for dictionary order. "
        "Dates compare chronologically once parsed from text. A million small integers take "
        "well under a second on a laptop, with memory close to the data's size. Mixed "
        "numbers and text raise TypeError. Huge files are better handled by the operating "
        "system's sort command, which spills to disk, and spreadsheets have their own "
        "ordering dialog.")
    make_article(
        "List methods",
        "append adds an item and extend adds several. To sort a list by another list, pass "
        "sorted() a key from the other list; sort() sorts in place and returns None.")
    question = "sort a list by another list"
    assert ids(suggest_articles(question, Audience.CUSTOMERS))[0] == answer.id
    assert ids(search_articles(question, Audience.PUBLIC))[0] == answer.id


def test_fusion_lifts_an_article_toward_a_closer_title(app):
    app.config["SEMANTIC_SEARCH"] = True
    near = [(2, 0.55), (1, 0.53)]
    # Article 1's title is far closer than its best chunk: 0.53 + 0.1 * 0.42 > 0.55 ...
    assert semantic.fuse([], near, 0.0, shares={}, titles={1: 0.95, 2: 0.35}) == [1, 2]
    # ... a title less close than the chunk takes nothing away, and the floors read chunks.
    assert semantic.fuse([], near, 0.0, shares={}, titles={1: 0.30, 2: 0.35}) == [2, 1]
    assert semantic.fuse([], [(1, 0.20)], 0.0, shares={}, titles={1: 0.95}) == []
