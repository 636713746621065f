"""Known issues: an open problem published to customers, matched against what they type,
and followed by the people it affects without filing a ticket (each follower a deflection)."""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.auth.models import User
from portal.cluster import memo
from portal.db import utcnow
from portal.extensions import db
from portal.mail import absolute_url, send_mail
from portal.search import semantic
from portal.search.embeddings import ModelUnavailable
from portal.search.queryparse import meaning_text
from portal.surges.models import KnownIssue, ProblemFollower, ProblemIncident, TicketVector
from portal.tickets.links import normalize
from portal.tickets.models import Status, Ticket, TicketType

log = logging.getLogger(__name__)

MATCH_SIMILARITY = 0.5  # typed text this close to a known issue (or its incidents) shows it
MIN_MATCH_CHARS = 8


class KnownIssueError(ValueError):
    """A user-facing reason a known-issue action was refused."""


def publish(problem: Ticket, public_text: str) -> KnownIssue:
    text = " ".join(public_text.split())[:300]
    if problem.type != TicketType.PROBLEM or problem.status in (Status.SOLVED, Status.CLOSED):
        raise KnownIssueError("Only an open problem can be published as a known issue.")
    if not text:
        raise KnownIssueError("Write the text customers will read.")
    issue = db.session.get(KnownIssue, problem.id)
    if issue is None:
        issue = KnownIssue(problem_id=problem.id, public_text=text, published_at=utcnow())
        db.session.add(issue)
    issue.public_text, issue.active = text, True
    issue.vector = _text_vector(text)
    db.session.flush()
    return issue


def _text_vector(text: str) -> bytes | None:
    """The article encoder's vector of the issue's text; None without the model (or when
    the query-model service does not answer): the issue then matches by its incidents."""
    enc = semantic.encoder()
    try:
        return enc.encode([text])[0].astype(np.float32).tobytes() if enc else None
    except ModelUnavailable:
        log.warning("known issue published without a vector: the model service did not answer")
        return None


def withdraw(problem: Ticket) -> None:
    issue = db.session.get(KnownIssue, problem.id)
    if issue is not None:
        issue.active = False


def active() -> list[KnownIssue]:
    return list(db.session.scalars(
        select(KnownIssue).join(Ticket, Ticket.id == KnownIssue.problem_id)
        .where(KnownIssue.active.is_(True),
               Ticket.status.not_in([Status.SOLVED, Status.CLOSED]))
        .order_by(KnownIssue.published_at.desc())))


KNOWN_ISSUES = "known-issues"  # change-feed topic
memo.watch(KNOWN_ISSUES, KnownIssue)
# A problem solved by a status change alone (not withdrawn) leaves the banner within this time.
BANNER_MAX_AGE = 30.0


def banner() -> list[KnownIssue]:
    """`active()` for the home page's banner, kept per process until a known issue changes
    (at once here, within a second on other hosts): the home page then reads nothing, which
    on PostgreSQL is a round trip saved on every visit. Detached rows: read-only."""
    def build() -> tuple[KnownIssue, ...]:
        issues = active()
        for issue in issues:
            db.session.expunge(issue)
        return tuple(issues)

    return list(memo.remember(KNOWN_ISSUES, "banner", build, max_age=BANNER_MAX_AGE))


def matching(text: str) -> list[KnownIssue]:
    """Active known issues close in meaning to `text` (its public text or its incidents).
    The issues are the banner's (kept per process, see `banner`): the new-request form asks
    on every pause in typing."""
    text = " ".join((text or "").split())
    if len(text) < MIN_MATCH_CHARS:
        return []
    issues = banner()
    # Typed text is a query: the query encoder's vector, as search uses (the article encoder
    # is not loaded in web workers when queries run in onnxruntime). It reads what the
    # suggestions' encoder read (meaning_text: the same text, cut at the same length), so the
    # new-request form's suggestions and known issues share one encoding (its query cache).
    enc = semantic.query_encoder() if issues else None
    if enc is None:
        return []
    try:
        vector = semantic.embed_query(enc, meaning_text(text))
    except ModelUnavailable:  # the query-model service went away: no match until it is back
        return []
    incident_vectors: dict[int, list[bytes]] = {}
    for problem_id, blob in db.session.execute(
            select(ProblemIncident.problem_id, TicketVector.vector)
            .join(TicketVector, TicketVector.ticket_id == ProblemIncident.incident_id)
            .where(ProblemIncident.problem_id.in_([i.problem_id for i in issues]))):
        incident_vectors.setdefault(problem_id, []).append(blob)
    found = []
    for issue in issues:
        scores = [float(np.frombuffer(b, np.float32) @ vector)
                  for b in [issue.vector, *incident_vectors.get(issue.problem_id, [])] if b]
        if scores and max(scores) >= MATCH_SIMILARITY:
            found.append((max(scores), issue))
    return [issue for _, issue in sorted(found, key=lambda pair: -pair[0])]


def follow(issue: KnownIssue, email: str, user: User | None) -> bool:
    """Follow the problem; False when this address already does."""
    email = normalize(email)
    if not email or "@" not in email:
        raise KnownIssueError("Enter a valid email address.")
    if not issue.active:
        raise KnownIssueError("This issue is no longer open.")
    existing = db.session.scalar(select(ProblemFollower).where(
        ProblemFollower.problem_id == issue.problem_id, ProblemFollower.email == email))
    if existing is not None and existing.unfollowed_at is None:
        return False
    if existing is not None:  # followed, unfollowed, and affected again
        existing.unfollowed_at = None
        follower = existing
    else:
        try:
            with db.session.begin_nested():
                follower = ProblemFollower(problem_id=issue.problem_id, email=email,
                                           user_id=user.id if user else None,
                                           created_at=utcnow())
                db.session.add(follower)
        except IntegrityError:
            return False
    send_mail(email, f"You are following: {issue.public_text[:80]}", "known_issue_following",
              issue=issue, url=absolute_url("known_issues.show", problem_id=issue.problem_id),
              unfollow_url=unfollow_url(follower))
    return True


def _unfollow_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="unfollow-problem")


def unfollow_url(follower: ProblemFollower) -> str:
    """The one-click link in every email to a follower (signed: it names one follower and
    their address, so it cannot be turned on anyone else)."""
    token = _unfollow_serializer().dumps({"f": follower.id, "e": follower.email})
    return absolute_url("known_issues.unfollow", token=token)


def follower_for(token: str) -> ProblemFollower | None:
    """The follower a link's token names, or None when it is forged or stale."""
    try:
        data = _unfollow_serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("f"), int):
        return None
    follower = db.session.get(ProblemFollower, data["f"])
    if follower is None or follower.email != data.get("e"):
        return None
    return follower


def unfollow(follower: ProblemFollower) -> None:
    """No more emails about this problem; the row stays, it was a deflection all the same."""
    follower.unfollowed_at = follower.unfollowed_at or utcnow()


def notify_followers(problem: Ticket, body: str, *, solved: bool) -> int:
    """An update (or the solution) by email to everyone following the problem."""
    issue = db.session.get(KnownIssue, problem.id)
    followers = list(db.session.scalars(
        select(ProblemFollower).where(ProblemFollower.problem_id == problem.id,
                                      ProblemFollower.unfollowed_at.is_(None))))
    title = issue.public_text if issue else problem.subject
    for follower in followers:
        send_mail(follower.email, f"{'Solved' if solved else 'Update'}: {title[:80]}",
                  "known_issue_update", title=title, body=body.strip(), solved=solved,
                  unfollow_url=unfollow_url(follower))
    return len(followers)


def deflections(since: datetime, until: datetime) -> int:
    return db.session.scalar(select(func.count()).select_from(ProblemFollower).where(
        ProblemFollower.created_at >= since, ProblemFollower.created_at < until)) or 0


def follower_count(problem: Ticket) -> int:
    return db.session.scalar(select(func.count()).select_from(ProblemFollower).where(
        ProblemFollower.problem_id == problem.id)) or 0
