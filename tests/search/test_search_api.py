import pytest

from portal.kb.models import ArticleStatus, Visibility
from portal.search import Audience, audience_for, search_articles, suggest_articles

# The same tests hold for Whoosh (SQLite) and for PostgreSQL full-text search.
pytestmark = pytest.mark.parametrize("search_backend", ["whoosh", "postgres"], indirect=True)


def ids(results):
    return [hit.article_id for hit in results.hits]


def test_audience_for_each_kind_of_user(make_user):
    from flask_login import AnonymousUserMixin

    assert audience_for(None) is Audience.PUBLIC
    assert audience_for(AnonymousUserMixin()) is Audience.PUBLIC
    assert audience_for(make_user("customer")) is Audience.CUSTOMERS
    assert audience_for(make_user("agent")) is Audience.AGENTS
    assert audience_for(make_user("admin")) is Audience.AGENTS


def test_stemming_accents_and_title_boost(make_article):
    body_only = make_article("Billing overview", "To reset your password use the invoice page.")
    in_title = make_article("Reset your password", "Open settings and follow the steps.")
    accented = make_article("Café integrations", "Connect the café point of sale.")
    results = search_articles("resetting passwords", Audience.PUBLIC)
    assert ids(results)[:2] == [in_title.id, body_only.id]
    assert ids(search_articles("cafe", Audience.PUBLIC)) == [accented.id]
    assert ids(search_articles("CAFÉ", Audience.PUBLIC)) == [accented.id]


def test_labels_and_section_names_are_searchable(make_article):
    labelled = make_article("Two-step codes", "Use an app.", labels="2fa, authenticator")
    assert ids(search_articles("authenticator", Audience.PUBLIC)) == [labelled.id]
    # The section is "Passwords", the category "Account & sign-in".
    assert labelled.id in ids(search_articles("passwords", Audience.PUBLIC))


def test_snippets_highlight_matches_and_escape_html(make_article):
    make_article("Webhooks", "Intro text. " * 30 + "Retry <script>alert(1)</script> webhook "
                 "deliveries after a timeout.")
    hit = search_articles("timeout", Audience.PUBLIC).hits[0]
    assert "<mark" in hit.snippet_html and "timeout</mark>" in hit.snippet_html
    assert "<script>" not in hit.snippet_html
    assert hit.url == f"/kb/articles/{hit.article_id}-webhooks"
    assert hit.section == "Passwords" and hit.category == "Account & sign-in"


def test_snippets_start_at_a_sentence_and_read_as_text(make_article):
    make_article("Reset", "Padding words go here to push the match far along. " * 6
                 + "The reset link in the email works for **one hour**. See [Account](/kb/1).")
    snippet = str(search_articles("hour", Audience.PUBLIC).hits[0].snippet_html)
    assert snippet.startswith("The reset link in the email works for one <mark")
    assert "</mark>." in snippet and " ." not in snippet


def test_visibility_per_audience_and_drafts_never(make_article):
    public = make_article("Export data public", "export")
    customers = make_article("Export data customers", "export", visibility=Visibility.CUSTOMERS)
    internal = make_article("Export data internal", "export", visibility=Visibility.INTERNAL)
    make_article("Export data draft", "export", status=ArticleStatus.DRAFT)
    make_article("Export data archived", "export", status=ArticleStatus.ARCHIVED)
    assert set(ids(search_articles("export", Audience.PUBLIC))) == {public.id}
    assert search_articles("export", Audience.PUBLIC).total == 1
    assert search_articles("export", Audience.CUSTOMERS, per_page=1).total == 2
    assert set(ids(search_articles("export", Audience.CUSTOMERS))) == {public.id, customers.id}
    assert set(ids(search_articles("export", Audience.AGENTS))) == {
        public.id, customers.id, internal.id}
    assert {h.article_id for h in suggest_articles("export my data", Audience.CUSTOMERS)} == {
        public.id, customers.id}


def test_nothing_visible_means_nothing_found(make_article):
    make_article("Escalations", "internal only", visibility=Visibility.INTERNAL)
    results = search_articles("escalations", Audience.PUBLIC)
    assert results.total == 0 and results.hits == []


def test_phrase_and_prefix(make_article):
    exact = make_article("Reset password", "reset password now")
    loose = make_article("Password policy", "a password you can reset any time")
    assert ids(search_articles('"reset password"', Audience.PUBLIC)) == [exact.id]
    assert set(ids(search_articles("passw*", Audience.PUBLIC))) == {exact.id, loose.id}


def test_a_minus_sign_is_punctuation_as_in_whoosh(make_article):
    article = make_article("Two-step verification", "Turn on two-step codes in settings.")
    assert ids(search_articles("two-step", Audience.PUBLIC)) == [article.id]
    assert ids(search_articles("verification -codes", Audience.PUBLIC)) == [article.id]


def test_instant_matches_the_word_being_typed_without_snippets(make_article):
    article = make_article("Invoices and receipts", "Download an invoice as PDF.")
    results = search_articles("invoi", Audience.PUBLIC, instant=True)
    assert ids(results) == [article.id]
    assert results.hits[0].snippet_html == ""


def test_typos_corrected_automatically_or_suggested(make_article):
    article = make_article("Connect Slack", "Install the Slack integration from settings.")
    results = search_articles("integratoin", Audience.PUBLIC)
    assert results.corrected_query == "integration"
    assert ids(results) == [article.id]
    make_article("Integratoin typo", "A page that has the typo integratoin once.")
    results = search_articles("integratoin", Audience.PUBLIC)
    assert results.corrected_query is None


def test_internal_words_are_not_suggested_to_customers(make_article):
    make_article("Escalation runbook", "Page the oncall engineer.", visibility=Visibility.INTERNAL)
    results = search_articles("runbok", Audience.CUSTOMERS)
    assert results.total == 0 and results.corrected_query is None and results.did_you_mean is None


def test_or_fallback_when_no_article_has_every_word(make_article):
    article = make_article("Change your plan", "Upgrade or downgrade any time.")
    results = search_articles("upgrade zebra", Audience.PUBLIC)
    assert ids(results) == [article.id]
    assert "some of them" in results.message


def test_paging_and_category_filter(make_article):
    from portal.extensions import db
    from portal.kb.services import create_category, create_section

    other = create_section(create_category("Billing"), "Invoices")
    db.session.commit()
    for n in range(12):
        make_article(f"Sync guide {n}", "sync", index=False)
    billing = make_article("Sync billing", "sync", section_id=other.id)
    first = search_articles("sync", Audience.PUBLIC, per_page=5)
    third = search_articles("sync", Audience.PUBLIC, per_page=5, page=3)
    assert first.total == 13 and len(first.hits) == 5 and len(third.hits) == 3
    assert not set(ids(first)) & set(ids(third))
    only = search_articles("sync", Audience.PUBLIC, category_id=other.category_id)
    assert ids(only) == [billing.id]
