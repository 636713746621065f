"""From SEMANTIC_ANN_MIN_VECTORS chunk vectors on, the nearest ones are searched in the
k-means cells nearest to the question (portal/search/cells.py) instead of a scan of every
vector. Here a small corpus is forced onto that path: with every cell probed it returns
what the exact scan returns; a publish joins the cells without training them again; what an
audience may not see is never a candidate."""

import itertools
from pathlib import Path

import numpy as np
import pytest

from portal.extensions import db
from portal.kb.models import ArticleStatus, Visibility
from portal.kb.services import ArticleInput, change_status, update_article
from portal.search import Audience, process_index_queue, semantic, suggest_articles

BOTH_BACKENDS = pytest.mark.parametrize("search_backend", ["whoosh", "postgres"], indirect=True)
FORCED = pytest.mark.parametrize("app", [{"SEMANTIC_SEARCH": True, "SEMANTIC_ANN_MIN_VECTORS": 1,
                                          "SEMANTIC_ANN_ROWS": 1}], indirect=True)
ARTICLES = [
    ("Reset a forgotten password", "Use the Forgot password link on the sign-in page."),
    ("Refunds for duplicate charges", "If a payment was taken twice we return the extra."),
    ("Tracking a delivery", "Each shipment has a tracking number in the confirmation email."),
    ("Printer shows offline", "Check the cable or Wi-Fi, then restart the print spooler."),
    ("Download an invoice as PDF", "Invoices are under Billing, one PDF per month."),
    ("Change your email address", "Open your profile and enter the new address twice."),
    ("Use the mobile app", "The app for phones shows your requests and articles."),
    ("Two-step verification", "Turn on codes from an authenticator app for signing in."),
    ("Cancel a subscription", "The plan stays active until the end of the paid period."),
    ("Export reports to CSV", "Every report has an export button for spreadsheets."),
]
QUESTIONS = ["I forgot my sign-in secret", "charged twice for one order", "where is my parcel",
             "the printer does nothing", "get a copy of my bill", "stop paying every month"]
_generations = itertools.count(1)


@pytest.fixture
def corpus(make_article):
    found = [make_article(title, body) for title, body in ARTICLES]
    found.append(make_article("Refund escalation runbook",
                              "Agents: double charges above 500 EUR go to the finance lead.",
                              visibility=Visibility.INTERNAL))
    return found


def _nearest(app, text, audience=Audience.PUBLIC, limit=50, **config):
    """nearest_articles under `config`, with a fresh visibility mask (new generation)."""
    db.session.commit()
    saved = {key: app.config[key] for key in config}
    app.config.update(config)
    try:
        with app.test_request_context():
            return semantic.nearest_articles(text, audience, next(_generations), limit)
    finally:
        app.config.update(saved)


def _mapped(app):
    with app.app_context():
        matrix = semantic._matrix()
        return Path(matrix.vectors.filename), matrix.cells


@FORCED
@BOTH_BACKENDS
def test_with_every_cell_probed_the_cells_return_what_the_exact_scan_returns(app, corpus):
    _nearest(app, QUESTIONS[0])
    path, found = _mapped(app)
    assert path.name.endswith(f"-cells.{semantic._LAYOUT}.f32") and found is not None
    assert len(found.centroids) > 1
    for question in QUESTIONS:
        approximate = _nearest(app, question, SEMANTIC_ANN_ROWS=int(found.offsets[-1]))
        exact = _nearest(app, question, SEMANTIC_ANN_MIN_VECTORS=10**9)
        assert [a for a, _ in approximate] == [a for a, _ in exact]
        # The same float32 cosines, summed in another order (a cell's rows, not the whole
        # matrix): equal to float32 precision, absolute for cosines near zero.
        assert [s for _, s in approximate] == pytest.approx([s for _, s in exact],
                                                            rel=1e-6, abs=1e-6)
    # One row wanted: more cells are read until enough visible articles are found.
    assert len(_nearest(app, QUESTIONS[1], limit=4)) == 4


@FORCED
def test_a_published_article_joins_the_cells_without_training_them_again(app, corpus,
                                                                         make_article):
    _nearest(app, QUESTIONS[0])
    before_path, before = _mapped(app)
    courier = make_article("Lost parcel claims",
                           "If the courier lost your parcel, we send a new one for free.")
    assert ids(suggest_articles("the courier lost my parcel", Audience.CUSTOMERS))[0] == courier.id
    after_path, after = _mapped(app)
    assert after_path != before_path and after is not None
    assert np.array_equal(after.centroids, before.centroids)
    assert after.trained_rows == before.trained_rows
    assert courier.id in dict(_nearest(app, "the courier lost my parcel", limit=3))


@FORCED
@BOTH_BACKENDS
def test_internal_and_unpublished_articles_are_never_candidates(app, corpus, agent):
    internal = corpus[-1]
    question = "escalating a big double charge refund to the finance lead"
    every_cell = {"SEMANTIC_ANN_ROWS": 10**9}
    for audience in (Audience.PUBLIC, Audience.CUSTOMERS):
        for probes in ({}, every_cell):
            assert internal.id not in dict(_nearest(app, question, audience, **probes))
        assert internal.id not in ids(suggest_articles(question, audience, limit=10))
    assert _nearest(app, question, Audience.AGENTS)[0][0] == internal.id

    printer, refunds = corpus[3], corpus[1]
    change_status(printer, ArticleStatus.ARCHIVED, agent, expected_version=printer.version)
    update_article(refunds, ArticleInput(
        title=refunds.title, body=refunds.body, section_id=refunds.section_id,
        visibility=Visibility.INTERNAL), agent, expected_version=refunds.version)
    db.session.commit()
    process_index_queue()
    for audience in Audience:
        assert printer.id not in dict(_nearest(app, "printer offline", audience, **every_cell))
    for audience in (Audience.PUBLIC, Audience.CUSTOMERS):
        assert refunds.id not in dict(_nearest(app, QUESTIONS[1], audience, **every_cell))
    assert refunds.id in dict(_nearest(app, QUESTIONS[1], Audience.AGENTS))


def ids(found):
    return [hit.article_id for hit in found]


def test_the_probe_counts_distinct_articles_as_np_unique_does():
    from portal.search.cells import distinct

    rng = np.random.default_rng(3)
    for size, high in ((0, 5), (1, 5), (8000, 100_000), (8000, 40), (300, 2)):
        values = rng.integers(0, high, size).astype(np.int64)
        assert distinct(values) == np.unique(values).size
