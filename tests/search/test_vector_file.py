"""The chunk vectors are written to one file per change, when articles are embedded, and
every process of the host maps that file instead of holding its own copy. A publish makes a
new file that every process then ranks with; a lost file is written again from the database."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from portal.extensions import db
from portal.search import Audience, semantic, suggest_articles
from tests.conftest import make_app

SEMANTIC = pytest.mark.parametrize("app", [{"SEMANTIC_SEARCH": True}], indirect=True)
QUESTION = "I was billed two times for one order"


def _suggested(app, text=QUESTION):
    db.session.commit()  # this test's own session holds no lock the "other process" waits for
    with app.test_request_context():
        return [hit.article_id for hit in suggest_articles(text, Audience.CUSTOMERS)]


def _mapped_file(app) -> Path:
    with app.app_context():
        vectors = semantic._matrix().vectors
    assert isinstance(vectors, np.memmap)
    return Path(vectors.filename)


@SEMANTIC
def test_processes_map_one_vector_file_that_follows_every_publish(app, make_article,
                                                                  monkeypatch):
    monkeypatch.setattr(semantic, "SIGNATURE_TTL", 0.0)  # see other processes' writes at once
    password = make_article("Reset a forgotten password",
                            "Use the Forgot password link on the sign-in page.")
    folder = Path(app.config["INDEX_DIR"]) / semantic.VECTORS_FOLDER
    written = list(folder.glob("*.f32"))
    assert len(written) == 1  # written when the article was embedded, before any search

    other = make_app(Path(app.instance_path), SEMANTIC_SEARCH=True)  # a second worker
    assert _suggested(other, "I forgot my sign-in secret")[0] == password.id
    assert _mapped_file(other) == written[0]

    refund = make_article("Refunds for duplicate charges",
                          "If a payment was taken twice, we return the extra charge.")
    (newer,) = folder.glob("*.f32")  # the earlier file is gone
    assert newer != written[0]
    assert _suggested(other)[0] == refund.id  # the other worker ranks with the new vectors
    assert _mapped_file(other) == newer
    assert _suggested(app)[0] == refund.id

    shutil.rmtree(folder)  # e.g. the index folder was lost: the database still has them
    third = make_app(Path(app.instance_path), SEMANTIC_SEARCH=True)
    assert _suggested(third)[0] == refund.id
    assert _mapped_file(third).exists()


@SEMANTIC
def test_each_title_is_embedded_alone_and_with_its_lead_beside_the_chunks(app, make_article):
    """The title alone and "title. first sentence" get vectors of their own, read only for
    the title's cosine: the closer of the two (here the lead, which says it in the
    question's words)."""
    from sqlalchemy import select

    from portal.kb.models import ArticleEmbedding
    from portal.search.embeddings import load_encoder

    title = "Duplicate charges"
    body = ("If you were billed two times for one order, we return the extra payment. "
            "Refunds reach the card in five working days.")
    article = make_article(title, body)
    rows = {row.chunk: row for row in db.session.scalars(
        select(ArticleEmbedding).where(ArticleEmbedding.article_id == article.id))}
    assert set(rows) == {0, semantic.TITLE_CHUNK, semantic.LEAD_CHUNK}
    encoder = load_encoder()
    lead = "Duplicate charges. If you were billed two times for one order, we return the " \
           "extra payment."
    assert semantic.lead_text(title, body) == lead
    title_vector, lead_vector = encoder.encode([title, lead])
    stored = {chunk: np.frombuffer(rows[chunk].vector, np.float32)
              for chunk in (semantic.TITLE_CHUNK, semantic.LEAD_CHUNK)}
    assert np.allclose(stored[semantic.TITLE_CHUNK], title_vector, atol=1e-5)
    assert np.allclose(stored[semantic.LEAD_CHUNK], lead_vector, atol=1e-5)

    with app.test_request_context():
        (nearest,) = semantic.nearest_articles(QUESTION, Audience.CUSTOMERS, 0, 10)
        query = semantic.embed_query(semantic.query_encoder(), QUESTION)
        chunk = np.frombuffer(rows[0].vector, np.float32)
        # The nearest list ranks by chunks only; the title's cosines are read beside it.
        assert nearest == (article.id, pytest.approx(float(chunk @ query), abs=1e-5))
        assert lead_vector @ query > title_vector @ query + 0.1
        titles = semantic.title_cosines(QUESTION, [article.id, article.id + 1])
        assert titles == {article.id: pytest.approx(float(lead_vector @ query), abs=1e-4)}


SESSION_FILLER = (
    "The settings page lists every option in alphabetical order. Administrators can export "
    "the list as a spreadsheet, import it on another workspace, and compare two versions side "
    "by side. Each option shows who changed it last and when, and a history of earlier values "
    "is kept for ninety days. Options marked as locked can only be changed by the owner of the "
    "workspace. ") * 2


@SEMANTIC
def test_an_article_whose_opening_sentence_answers_the_question_is_lifted_above(
        app, make_article):
    """The answer's title says little ("Session lifetime") and its first sentence says it
    all; the rest of its text is about something else, so its closest piece is a little less
    close than another article's. The first sentence lifts it to the top."""
    lifetime = make_article(
        "Session lifetime",
        "You are signed out automatically after thirty minutes without activity. "
        + SESSION_FILLER)
    everywhere = make_article(
        "Sign out of every device",
        "Open your profile and choose Sign out everywhere to end the sessions on all your "
        "devices at once.")
    question = "I keep getting logged out after a while"
    with app.test_request_context():
        nearest = dict(semantic.nearest_articles(question, Audience.CUSTOMERS, 0, 10))
    assert nearest[everywhere.id] > nearest[lifetime.id]  # by the closest piece alone
    assert _suggested(app, question)[:2] == [lifetime.id, everywhere.id]


@SEMANTIC
def test_a_vector_file_of_the_layout_without_leads_is_never_read(app, make_article,
                                                                monkeypatch):
    """A file written before leads (layout v3: the title block followed by the ids) for the
    very same vectors is left alone: the process writes and maps a file of today's layout."""
    monkeypatch.setattr(semantic, "SIGNATURE_TTL", 0.0)
    article = make_article("Duplicate charges",
                           "If you were billed two times for one order, we return the extra "
                           "payment. Refunds reach the card in five working days.")
    folder = Path(app.config["INDEX_DIR"]) / semantic.VECTORS_FOLDER
    (current,) = folder.glob("*.f32")
    assert current.name.endswith(f".{semantic._LAYOUT}.f32") and semantic._LAYOUT != "v3"
    data = current.read_bytes()
    titles = int(np.frombuffer(data[24:32], np.int64)[0])
    block = titles * semantic.DIMENSIONS * 4
    ids = data[len(data) - titles * 8:]
    old = current.with_name(current.name.replace(f".{semantic._LAYOUT}.", ".v3."))
    old.write_bytes(data[:len(data) - titles * 8 - block] + ids)  # no lead block
    current.unlink()

    other = make_app(Path(app.instance_path), SEMANTIC_SEARCH=True)  # a newly started worker
    assert _suggested(other)[0] == article.id
    assert _mapped_file(other) == current  # written again from the database
    with other.test_request_context():
        title_ids, title_vectors, lead_vectors = semantic._matrix().titles
        assert list(title_ids) == [article.id]
        assert not np.allclose(title_vectors, lead_vectors)
    assert not old.exists()  # an earlier file goes once a newer one is written


@SEMANTIC
def test_articles_embedded_before_leads_get_theirs_from_the_catch_up_alone(app, make_article,
                                                                         run_jobs, monkeypatch):
    """An installation upgraded from the layout without leads: its articles count as still
    to embed, the file repeats their titles in the lead block meanwhile, and the catch-up job
    computes the lead alone (the chunks and the title are kept)."""
    from sqlalchemy import delete, select

    from portal.jobs.services import run_schedule_now
    from portal.kb.models import ArticleEmbedding

    monkeypatch.setattr(semantic, "SIGNATURE_TTL", 0.0)  # the rows removed below are seen
    article = make_article("Duplicate charges",
                           "If you were billed two times for one order, we return the extra "
                           "payment. Refunds reach the card in five working days.")
    db.session.execute(delete(ArticleEmbedding).where(
        ArticleEmbedding.chunk == semantic.LEAD_CHUNK))
    db.session.commit()
    kept = set(db.session.scalars(select(ArticleEmbedding.id)))
    assert semantic.missing_article_ids() == [article.id]
    mapped = semantic._map_matrix_file(semantic.write_matrix_file())
    assert list(mapped.title_ids) == [article.id]
    assert np.array_equal(mapped.title_vectors, mapped.lead_vectors)  # the title stands in

    run_schedule_now("search.catch-up")
    run_jobs()
    assert semantic.missing_article_ids() == []
    rows = {row.id: row.chunk for row in db.session.scalars(select(ArticleEmbedding))}
    assert kept < set(rows) and [rows[i] for i in set(rows) - kept] == [semantic.LEAD_CHUNK]
    with app.test_request_context():
        assert _suggested(app)[0] == article.id
        _ids, title_vectors, lead_vectors = semantic._matrix().titles
        assert not np.allclose(title_vectors, lead_vectors)


def _statements(app):
    """The SQL statements the app's engine runs from now on (a list that fills up)."""
    from sqlalchemy import event

    seen = []
    engine = db.engine

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement.lower())

    event.listen(engine, "before_cursor_execute", record)
    return seen


@SEMANTIC
def test_the_vectors_are_not_counted_again_while_nothing_changed(app, make_article,
                                                                 monkeypatch):
    """Counting the rows scans them (60 ms at 318,000 vectors, once a second per process):
    a re-read asks the highest id and the folder's time first, and counts only on a change."""
    monkeypatch.setattr(semantic, "SIGNATURE_TTL", 0.0)
    make_article("Refunds for duplicate charges",
                 "If a payment was taken twice, we return the extra charge.")
    before = _suggested(app)
    statements = _statements(app)
    assert _suggested(app) == before
    for _ in range(3):
        semantic._signature()
    assert statements and not [s for s in statements if "count(" in s]
    make_article("Reset a forgotten password", "Use the Forgot password link.")
    assert [s for s in statements if "count(" in s]  # a change: counted again


@SEMANTIC
def test_vectors_removed_by_another_process_without_new_ones_are_seen(app, make_article,
                                                                     monkeypatch):
    """Rows removed and none added (the last section of an article deleted, its other chunks
    unchanged): the highest id stays, the new matrix file tells the other processes."""
    from sqlalchemy import delete, func, select

    from portal.kb.models import ArticleEmbedding

    monkeypatch.setattr(semantic, "SIGNATURE_TTL", 0.0)
    first = " ".join(f"word{i}" for i in range(semantic.CHUNK_WORDS))
    make_article("Refunds for duplicate charges", f"{first} and then some more words")
    other = make_app(Path(app.instance_path), SEMANTIC_SEARCH=True)  # a second worker
    _suggested(other)
    with other.app_context():
        rows_before = len(semantic._matrix().vectors)
    highest = db.session.scalar(select(func.max(ArticleEmbedding.id)))
    lowest_chunk = db.session.scalar(select(func.min(ArticleEmbedding.id))
                                     .where(ArticleEmbedding.chunk >= 0))
    assert lowest_chunk < highest
    db.session.execute(delete(ArticleEmbedding).where(ArticleEmbedding.id == lowest_chunk))
    db.session.commit()
    semantic.write_matrix_file()  # as sync_embeddings does after any change
    _suggested(other)
    with other.app_context():
        assert len(semantic._matrix().vectors) == rows_before - 1


@SEMANTIC
def test_an_article_made_internal_is_never_suggested_to_customers_by_another_process(
        app, make_article, agent, run_jobs):
    """The other process keeps its signature (nothing is counted again: the vectors did not
    change) but its visible rows follow the index generation: the article is gone for
    customers at its next request."""
    from portal.kb.models import Visibility
    from portal.kb.services import ArticleInput, update_article

    refund = make_article("Refunds for duplicate charges",
                          "If a payment was taken twice, we return the extra charge.")
    other = make_app(Path(app.instance_path), SEMANTIC_SEARCH=True)  # a second worker
    assert _suggested(other)[0] == refund.id
    with other.app_context():
        signature = semantic._matrix().signature
    update_article(refund, ArticleInput(title=refund.title, body=refund.body,
                                        section_id=refund.section_id,
                                        visibility=Visibility.INTERNAL), agent,
                   expected_version=refund.version)
    db.session.commit()
    run_jobs()
    assert refund.id not in _suggested(other)
    with other.app_context():
        assert semantic._matrix().signature == signature
