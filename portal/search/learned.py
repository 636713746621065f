"""Learned questions: what customers confirmed a suggested article answered.

When a signed-in customer clicks "This answered my question" on an article the portal
suggested for their question, the (question, article) pair is kept, each customer counted
once; its vector is computed by a job. The ranking (semantic.learned_cosines, fuse) lifts
that article when the same question is asked again in nearly the same words. The question
is never taken from what the browser posts: the suggestion panel hands its articles a token
the app signed, naming the question the server suggested them for, those articles, the form
and the customer; a bad or stale token still records the deflection, and learns nothing
(bench/data/README.md, eleventh round).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload

from portal.auth.models import Role
from portal.cluster import changes
from portal.db import Page, dialect_insert, paginate, utcnow
from portal.extensions import db
from portal.jobs import enqueue
from portal.kb.models import Article, LearnedConfirmation, LearnedQuestion
from portal.search import semantic
from portal.search.embeddings import MODEL_ID

log = logging.getLogger(__name__)

VECTOR_JOB = "search.learned-vector"
TOKEN_MAX_AGE = 24 * 3600  # seconds a suggestion panel's "answered" token is honoured
QUESTION_CHARS = 300
EMBED_BATCH = 64
_SALT = "learned-question"


def normalise(question: str) -> str:
    """One learned question per wording: lower case, single spaces, at most QUESTION_CHARS."""
    return " ".join((question or "").lower().split())[:QUESTION_CHARS].strip()


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def answer_token(user, question: str, article_ids: Iterable[int], form_key: str
                 ) -> str | None:
    """The token the "This answered my question" forms of one suggestion panel carry, naming
    all its articles (signed once: the panel is rendered on every pause in typing): only
    for a signed-in customer (a visitor counts for no one, staff trying the form teach
    nothing) and a question worth learning."""
    question = normalise(question)
    article_ids = list(article_ids)
    if user is None or user.role != Role.CUSTOMER or not question or not article_ids:
        return None
    return _serializer().dumps({"q": question, "a": article_ids, "f": form_key[:64],
                                "u": user.id})


def learn(user, token: str, article: Article, form_key: str) -> None:
    """Keep the pair the token names, in the caller's transaction, when the token is the
    app's, fresh, and names this customer, article and form (and not for a pair an admin
    forgot). A customer counts once; a new pair's vector is left to a job."""
    if user is None or not token:
        return
    try:
        claim = _serializer().loads(token, max_age=TOKEN_MAX_AGE)
    except BadSignature:  # includes an expired one
        return
    if not isinstance(claim, dict) or not isinstance(claim.get("a"), list) \
            or claim.get("u") != user.id or article.id not in claim["a"] \
            or claim.get("f") != form_key[:64]:
        return
    question = normalise(str(claim.get("q", "")))
    if not question:
        return
    session = db.session
    insert = dialect_insert(session)
    created = session.execute(insert(LearnedQuestion.__table__).values(
        article_id=article.id, question=question, customers=0, created_at=utcnow(),
        confirmed_at=utcnow()).on_conflict_do_nothing())
    # Columns, not the entity: what the database holds now, whatever the session remembers.
    row = session.execute(select(
        LearnedQuestion.id, LearnedQuestion.customers, LearnedQuestion.forgotten_at,
        LearnedQuestion.vector.is_not(None).label("embedded"),
    ).where(LearnedQuestion.article_id == article.id,
            LearnedQuestion.question == question)).one_or_none()
    if row is None or row.forgotten_at is not None:
        return
    confirmed = session.execute(insert(LearnedConfirmation.__table__).values(
        learned_question_id=row.id, user_id=user.id, created_at=utcnow()
    ).on_conflict_do_nothing())
    if confirmed.rowcount:
        session.execute(update(LearnedQuestion).where(LearnedQuestion.id == row.id).values(
            customers=LearnedQuestion.customers + 1, confirmed_at=utcnow()))
        if row.customers + 1 == semantic.LEARNED_MIN_CUSTOMERS and row.embedded:
            changes.record(changes.LEARNED)  # it starts to rank now (else its vector's job)
    if created.rowcount:
        enqueue(VECTOR_JOB, {"id": row.id})


def embed(ids: list[int] | None = None) -> int:
    """Compute the vectors still missing (of `ids`, or of all); returns how many. Outside
    any request: the job and the scheduled catch-up."""
    encoder = semantic.query_encoder()
    if encoder is None:
        return 0
    q = select(LearnedQuestion.id, LearnedQuestion.question).where(
        LearnedQuestion.forgotten_at.is_(None),
        (LearnedQuestion.vector.is_(None)) | (LearnedQuestion.model != MODEL_ID))
    if ids is not None:
        q = q.where(LearnedQuestion.id.in_(ids))
    rows = db.session.execute(q.order_by(LearnedQuestion.id)).all()
    db.session.commit()  # the model runs outside any transaction
    for start in range(0, len(rows), EMBED_BATCH):
        batch = rows[start:start + EMBED_BATCH]
        vectors = encoder.encode([row.question for row in batch])
        for row, vector in zip(batch, vectors, strict=True):
            db.session.execute(
                update(LearnedQuestion)
                .where(LearnedQuestion.id == row.id, LearnedQuestion.forgotten_at.is_(None))
                .values(vector=np.asarray(vector, dtype=np.float32).tobytes(), model=MODEL_ID))
        changes.record(changes.LEARNED)
        db.session.commit()
    return len(rows)


def forget(learned_id: int) -> bool:
    """Stop ranking with a learned question, and never learn the same pair again (the row
    stays, without its vector). In the caller's transaction; False if there is none."""
    done = db.session.execute(
        update(LearnedQuestion)
        .where(LearnedQuestion.id == learned_id, LearnedQuestion.forgotten_at.is_(None))
        .values(forgotten_at=utcnow(), vector=None))
    if done.rowcount:
        changes.record(changes.LEARNED)
    return bool(done.rowcount)


def count() -> int:
    """Learned questions still in use."""
    return db.session.scalar(select(func.count(LearnedQuestion.id))
                             .where(LearnedQuestion.forgotten_at.is_(None))) or 0


def page(number: int, per_page: int) -> Page:
    """Learned questions still in use, newest confirmation first, with their articles."""
    return paginate(
        select(LearnedQuestion).where(LearnedQuestion.forgotten_at.is_(None))
        .options(joinedload(LearnedQuestion.article))
        .order_by(LearnedQuestion.confirmed_at.desc(), LearnedQuestion.id.desc()),
        number, per_page)
