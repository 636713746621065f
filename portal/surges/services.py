"""Surges: embed and group new tickets, scan groups for surges, and act on a surge.

Embedding runs outside any transaction (the model takes tens of milliseconds a ticket);
grouping then writes briefly. The scan runs once a minute across all workers; a surge is
unique per group while open (`Surge.open_group_id`), so two scans of the same minute raise
it once. The decisions themselves are `portal.surges.detection`, shared with the benchmark.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from portal import signals
from portal.auth.models import User
from portal.cluster import memo
from portal.db import utcnow
from portal.extensions import db
from portal.mail import absolute_url, send_mail
from portal.search import semantic
from portal.search.embeddings import MODEL_ID
from portal.surges import detection, recent
from portal.surges.models import SimilarGroup, Surge, SurgeFeedback, SurgeMember, TicketVector
from portal.tickets.models import Group, Message, Setting, Ticket, TicketType

log = logging.getLogger(__name__)

SENSITIVITY_SETTING = "surges.sensitivity"
EMBED_BATCH = 32
SPARK_BUCKET = timedelta(minutes=10)
SPARK_BUCKETS = 12
ENDED_SHOWN = timedelta(hours=6)  # the strip still lists a surge this long after it ended
REPRESENTATIVES = 3
_WORD = re.compile(r"[a-z][a-z'-]{2,}")
_STOP = frozenset([
    "the", "and", "for", "you", "your", "with", "this", "that", "have", "has", "had", "was",
    "were", "are", "not", "but", "can", "cant", "can't", "could", "would", "should", "will",
    "from", "what", "when", "where", "which", "who", "how", "why", "does", "did", "doing",
    "been", "being", "into", "out", "about", "just", "than", "then", "them", "they", "their",
    "there", "here", "its", "it's", "i'm", "i've", "please", "thanks", "thank", "hello", "dear",
    "get", "got", "any", "some", "all", "our", "ours", "one", "two", "also", "still", "yet",
    "too", "very", "much", "more", "most", "only", "own", "same", "such", "each", "other",
    "again", "after", "before", "over", "under", "between", "why", "him", "her", "his", "she",
    "he", "me", "my", "mine", "we", "us", "is", "am", "do", "an", "as", "at", "be", "by", "if",
    "in", "of", "on", "or", "so", "to", "up", "no", "yes", "ok"
])


# --- settings -----------------------------------------------------------------------------
def sensitivity() -> detection.Sensitivity:
    value = db.session.get(Setting, SENSITIVITY_SETTING)
    name = value.value if value is not None else detection.DEFAULT_SENSITIVITY
    return detection.SENSITIVITIES.get(name, detection.SENSITIVITIES["normal"])


def set_sensitivity(name: str) -> None:
    if name not in detection.SENSITIVITIES:
        raise ValueError(f"Unknown sensitivity {name!r}.")
    row = db.session.get(Setting, SENSITIVITY_SETTING)
    if row is None:
        db.session.add(Setting(key=SENSITIVITY_SETTING, value=name))
    else:
        row.value = name


# --- embedding and grouping ----------------------------------------------------------------
def ticket_text(ticket: Ticket, first_message: str) -> str:
    return f"{ticket.subject}. {first_message}".strip()[:2000]


def pending_tickets(limit: int = EMBED_BATCH) -> list[Ticket]:
    """Recent tickets with no vector yet, oldest first (the order they are grouped in).
    Problem tickets are agents' summaries, not reports: they are left out."""
    since = utcnow() - detection.GROUP_IDLE
    has_vector = select(TicketVector.ticket_id).where(TicketVector.ticket_id == Ticket.id)
    return list(db.session.scalars(
        select(Ticket).where(Ticket.created_at >= since, ~has_vector.exists(),
                             Ticket.merged_into_id.is_(None),
                             Ticket.type != TicketType.PROBLEM)
        .order_by(Ticket.created_at, Ticket.id).limit(limit)))


def embed_pending(limit: int = EMBED_BATCH) -> int:
    """Embed and group tickets still waiting; returns how many were grouped. Idempotent."""
    enc = semantic.encoder()
    if enc is None:
        return 0
    tickets = pending_tickets(limit)
    if not tickets:
        return 0
    first_messages = dict(db.session.execute(
        select(Message.ticket_id, Message.body).where(
            Message.ticket_id.in_([t.id for t in tickets]), Message.internal.is_(False))
        .order_by(Message.ticket_id.desc(), Message.id.desc())).all())
    texts = [ticket_text(t, first_messages.get(t.id, "")) for t in tickets]
    ids = [t.id for t in tickets]
    created = {t.id: t.created_at for t in tickets}
    db.session.commit()  # no transaction held while the model runs
    vectors = enc.encode(texts)
    for ticket_id, vector in zip(ids, vectors, strict=True):
        add_to_group(ticket_id, created[ticket_id], vector)
    return len(ids)


def active_groups(now: datetime) -> list[SimilarGroup]:
    return list(db.session.scalars(
        select(SimilarGroup).where(SimilarGroup.last_at >= now - detection.GROUP_IDLE)))


def add_to_group(ticket_id: int, created_at: datetime, vector: np.ndarray) -> TicketVector | None:
    """Put one embedded ticket into the closest recent group (or a new one); flushes."""
    if db.session.get(TicketVector, ticket_id) is not None:
        return None
    groups = active_groups(created_at)
    centroids = np.stack([detection.centroid(g.sum_array()) for g in groups]) if groups \
        else np.zeros((0, len(vector)), dtype=np.float32)
    best, score = detection.nearest(vector, centroids)
    if best >= 0 and score >= detection.SIMILARITY:
        group = groups[best]
        group.vector_sum = (group.sum_array() + vector).astype(np.float32).tobytes()
        group.size += 1
        group.last_at = max(group.last_at, created_at)
    else:
        group = SimilarGroup(vector_sum=np.asarray(vector, dtype=np.float32).tobytes(), size=1,
                             first_at=created_at, last_at=created_at)
        db.session.add(group)
        db.session.flush()
        score = 1.0
    row = TicketVector(ticket_id=ticket_id, group_id=group.id, model=MODEL_ID,
                       vector=np.asarray(vector, dtype=np.float32).tobytes(),
                       similarity=score, ticket_created_at=created_at, embedded_at=utcnow())
    db.session.add(row)
    surge = _open_surge_for(vector)
    if surge is not None:
        db.session.add(SurgeMember(surge_id=surge.id, ticket_id=ticket_id,
                                   similarity=float((surge.centers() @ vector).max())))
        surge.member_count += 1
        surge.last_at = max(surge.last_at, created_at)
    db.session.flush()
    return row


def _open_surge_for(vector: np.ndarray) -> Surge | None:
    """The open surge a new ticket belongs to: the first whose centre is close enough."""
    for surge in db.session.scalars(select(Surge).where(Surge.open_group_id.is_not(None))):
        if float((surge.centers() @ vector).max()) >= detection.MEMBERSHIP:
            return surge
    return None


def nearest_vectors(vector: np.ndarray, rows: list[TicketVector]) -> list[tuple[float, int]]:
    return sorted(((float(r.array() @ vector), r.ticket_id) for r in rows), reverse=True)


# --- detection ------------------------------------------------------------------------------
def scan(now: datetime | None = None) -> list[Surge]:
    """End surges back at their baseline, and raise a surge for each dense neighbourhood of
    recent tickets that stands out against its own baseline (or join it to the open surge of
    the same spike); returns the new surges (flushed, not committed)."""
    now = now or utcnow()
    setting = sensitivity()
    shortest, longest = min(detection.WINDOWS), max(detection.WINDOWS)
    # A quiet minute (no ticket arrived or was embedded lately, no surge open) can neither
    # raise nor end a surge: the vectors are not even looked at.
    is_fresh = (TicketVector.ticket_created_at > now - shortest) | \
        (TicketVector.embedded_at > now - shortest)
    if not db.session.scalar(select(func.count()).select_from(TicketVector).where(
            is_fresh, TicketVector.ticket_created_at <= now)) and \
            not db.session.scalar(select(func.count()).select_from(Surge).where(
                Surge.status == "open")):
        return []
    rows = recent.recent().read(now - longest - detection.HISTORY, now)
    oldest = db.session.scalar(select(func.min(TicketVector.ticket_created_at)))
    span = min(now - oldest, detection.HISTORY + longest) if oldest else timedelta(0)
    claimed = _claimed(rows, now - longest)
    _end_or_keep(rows, claimed, now, span, setting)
    # Nothing arrived lately (a late embedding counts): no neighbourhood can have grown.
    since = recent.minutes_of(now - shortest)
    fresh = np.flatnonzero((rows.minutes > since) | (rows.embedded > since))
    raised: list[Surge] = []
    if len(fresh):
        alerts = detection.detect(rows.minutes, rows.vectors, recent.minutes_of(now), fresh,
                                  span, setting, _blocked_centres(now), claimed)
        raised = _act_on(alerts, rows, setting, now)
    refresh_sparklines(now)
    return raised


def _act_on(alerts: list[detection.Alert], rows: recent.Window,
            setting: detection.Sensitivity, now: datetime) -> list[Surge]:
    """Each alert mostly of an open surge's tickets is that surge's; one of the same spike
    joins it (its centre and tickets); any other raises a surge."""
    opened = list(db.session.scalars(select(Surge).where(Surge.status == "open")))
    members: dict[int, set[int]] = {s.id: set() for s in opened}
    for surge_id, ticket_id in db.session.execute(select(
            SurgeMember.surge_id, SurgeMember.ticket_id).where(SurgeMember.surge_id.in_(members))):
        members[surge_id].add(ticket_id)
    covered = set().union(*members.values())
    raised = []
    for alert in alerts:
        ids = [int(rows.ticket_ids[i]) for i in alert.members]
        if detection.already_covered(ids, covered):
            continue
        same = next((s for s in opened if detection.same_spike(
            alert.centre, s.center_array(), ids, members[s.id])), None)
        if same is not None:
            _join(same, alert.centre, ids, members[same.id])
            covered.update(ids)
            continue
        group_id = Counter(int(rows.group_ids[i]) for i in alert.members).most_common(1)[0][0]
        surge = _raise(db.session.get(SimilarGroup, group_id), alert.centre, ids,
                       alert.verdict, setting, now)
        if surge is not None:
            raised.append(surge)
            covered.update(ids)
            opened.append(surge)
            members[surge.id] = set(ids)
    return raised


def _join(surge: Surge, centre: np.ndarray, ticket_ids: list[int], members: set[int]) -> None:
    """Another neighbourhood of the same spike: its centre and tickets join the surge."""
    surge.add_center(centre)
    new = [t for t in ticket_ids if t not in members]
    vectors = {r.ticket_id: r for r in db.session.scalars(
        select(TicketVector).where(TicketVector.ticket_id.in_(new)))}
    centres = surge.centers()
    for ticket_id in new:
        row = vectors[ticket_id]
        db.session.add(SurgeMember(surge_id=surge.id, ticket_id=ticket_id,
                                   similarity=float((centres @ row.array()).max())))
        surge.first_at = min(surge.first_at, row.ticket_created_at)
        surge.last_at = max(surge.last_at, row.ticket_created_at)
    surge.member_count += len(new)
    members.update(new)
    db.session.flush()
    log.info("surge %s: %s more tickets of the same spike joined it", surge.id, len(new))


def _claimed(rows: recent.Window, since: datetime) -> np.ndarray:
    """The recent tickets of surges no longer open: they count for no new surge."""
    ids = set(db.session.scalars(
        select(SurgeMember.ticket_id).join(Surge, Surge.id == SurgeMember.surge_id)
        .join(TicketVector, TicketVector.ticket_id == SurgeMember.ticket_id)
        .where(Surge.status != "open", TicketVector.ticket_created_at > since)))
    return np.isin(rows.ticket_ids, np.fromiter(ids, np.int64, len(ids)))


def _end_or_keep(rows: recent.Window, claimed: np.ndarray, now: datetime, span: timedelta,
                 setting: detection.Sensitivity) -> None:
    """An open surge whose rate has stayed below the alert level for `END_AFTER` ends: it
    takes no more tickets, and a later spike of the same topic raises a new surge."""
    ended = 0
    for surge in db.session.scalars(select(Surge).where(Surge.status == "open")):
        if len(rows) and detection.surging(surge.centers(), rows.minutes, rows.vectors,
                                           recent.minutes_of(now), span, setting, claimed):
            surge.surging_at = now
        elif now - (surge.surging_at or surge.detected_at) >= detection.END_AFTER:
            surge.status, surge.ended_at, surge.open_group_id = "ended", now, None
            ended += 1
            log.info("surge %s ended: back at its usual rate since %s", surge.id,
                     surge.surging_at or surge.detected_at)
    if ended:
        db.session.flush()


def _blocked_centres(now: datetime) -> np.ndarray | None:
    """Centres no new surge may start near: open surges (they absorb their later tickets),
    and what agents called "not a surge" within the quiet period (its surge and group)."""
    centres = [s.centers() for s in db.session.scalars(select(Surge).where(
        (Surge.status == "open")
        | ((Surge.status == "dismissed") & (Surge.acted_at > now - detection.QUIET))))]
    centres += [detection.centroid(g.sum_array())[None, :] for g in db.session.scalars(
        select(SimilarGroup).where(SimilarGroup.quiet_until > now))]
    return np.vstack(centres) if centres else None


def _raise(group: SimilarGroup, center: np.ndarray, member_ids: list[int],
           verdict: detection.Verdict, setting: detection.Sensitivity,
           now: datetime) -> Surge | None:
    rows = list(db.session.scalars(
        select(TicketVector).where(TicketVector.ticket_id.in_(member_ids))
        .options(selectinload(TicketVector.ticket)).order_by(TicketVector.ticket_created_at)))
    if not rows:
        return None
    ranked = nearest_vectors(center, rows)
    by_id = {r.ticket_id: r for r in rows}
    surge = Surge(
        group_id=group.id, open_group_id=group.id, status="open", sensitivity=setting.name,
        center=np.asarray(center, dtype=np.float32).tobytes(),
        title=by_id[ranked[0][1]].ticket.subject[:200], words=", ".join(distinctive_words(
            [r.ticket.subject for r in rows], now)),
        window_minutes=int(verdict.window.total_seconds() // 60), count_at_alert=verdict.count,
        expected=verdict.expected, p_value=verdict.p_value, member_count=len(rows),
        first_at=rows[0].ticket_created_at, last_at=rows[-1].ticket_created_at, detected_at=now,
        surging_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(surge)
            db.session.flush()
    except IntegrityError:  # another worker raised it a moment ago
        log.info("surge for group %s already raised by another worker", group.id)
        return None
    for score, ticket_id in ranked:
        db.session.add(SurgeMember(surge_id=surge.id, ticket_id=ticket_id, similarity=score))
    db.session.flush()
    _notify_group(surge, [r.ticket for r in rows])
    log.info("surge %s raised: %s tickets in %s min like %r (p=%.2g)", surge.id, len(rows),
             surge.minutes, surge.title, verdict.p_value)
    signals.surge_detected.send(surge)
    return surge


def distinctive_words(texts: list[str], now: datetime, limit: int = 5) -> list[str]:
    """Words frequent in these tickets and rare in the week's others."""
    inside = Counter(w for text in texts for w in set(_words(text)))
    subjects = db.session.scalars(
        select(Ticket.subject).where(Ticket.created_at >= now - detection.HISTORY)
        .order_by(Ticket.id.desc()).limit(1000)).all()
    outside = Counter(w for text in subjects for w in set(_words(text)))
    total = max(len(subjects), 1)
    scored = sorted(((inside[w] / len(texts)) - outside[w] / total, w) for w in inside)
    return [w for score, w in reversed(scored) if score > 0][:limit]


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _notify_group(surge: Surge, tickets: list[Ticket]) -> None:
    """Email the group most of the surge's tickets are assigned to, once per surge."""
    counts = Counter(t.group_id for t in tickets if t.group_id is not None)
    if not counts or surge.notified_group_id is not None:
        return
    group = db.session.get(Group, counts.most_common(1)[0][0])
    emails = sorted({m.email for m in group.members if m.is_active and m.is_agent})
    surge.notified_group_id = group.id
    if emails:
        send_mail(emails, f"Surge: {surge.member_count} tickets like \"{surge.title}\"",
                  "surge_detected", surge=surge, group=group,
                  url=absolute_url("surges.detail", surge_id=surge.id))


def refresh_sparklines(now: datetime) -> None:
    """Members per 10 minutes over the last two hours, for every open surge."""
    surges = list(db.session.scalars(select(Surge).where(Surge.status == "open")))
    start = now - SPARK_BUCKET * SPARK_BUCKETS
    for surge in surges:
        times = db.session.scalars(
            select(TicketVector.ticket_created_at).join(
                SurgeMember, SurgeMember.ticket_id == TicketVector.ticket_id)
            .where(SurgeMember.surge_id == surge.id, TicketVector.ticket_created_at > start)
        ).all()
        buckets = [0] * SPARK_BUCKETS
        for t in times:
            index = min(int((t - start) / SPARK_BUCKET), SPARK_BUCKETS - 1)
            buckets[index] += 1
        surge.sparkline = ",".join(map(str, buckets))


# --- what agents see and do ------------------------------------------------------------------
# Every agent page shows the open surges' count, and the queue the newest ones: both are kept
# per process until a surge changes (change feed; other hosts follow within a second).
SURGES = "surges"
memo.watch(SURGES, Surge)


def _detached(stmt) -> list[Surge]:
    """Read-only objects shared by requests: a later commit in one must not expire them."""
    surges = list(db.session.scalars(stmt))
    for surge in surges:
        db.session.expunge(surge)
    return surges


def open_surges(limit: int = 5) -> list[Surge]:
    """The queue strip."""
    return memo.remember(SURGES, ("open", limit), lambda: _detached(
        select(Surge).where(Surge.status == "open")
        .order_by(Surge.detected_at.desc()).limit(limit)))


def ended_surges(limit: int = 3) -> list[Surge]:
    """Surges that ended within `ENDED_SHOWN`, newest first, for the strip."""
    return memo.remember(SURGES, ("ended", limit), lambda: _detached(
        select(Surge).where(Surge.status == "ended", Surge.ended_at > utcnow() - ENDED_SHOWN)
        .order_by(Surge.ended_at.desc()).limit(limit)), max_age=60)


def open_count() -> int:
    return memo.remember(SURGES, "open_count", lambda: db.session.scalar(
        select(func.count()).select_from(Surge).where(Surge.status == "open")) or 0)


def recent_surges(limit: int = 50) -> list[Surge]:
    return list(db.session.scalars(
        select(Surge).order_by(Surge.detected_at.desc()).limit(limit)))


def member_tickets(surge: Surge) -> list[tuple[SurgeMember, Ticket]]:
    return list(db.session.execute(
        select(SurgeMember, Ticket).join(Ticket, Ticket.id == SurgeMember.ticket_id)
        .where(SurgeMember.surge_id == surge.id)
        .options(selectinload(Ticket.organization), selectinload(Ticket.requester))
        .order_by(Ticket.created_at)).all())


def representatives(surge: Surge) -> list[Ticket]:
    rows = sorted(member_tickets(surge), key=lambda r: -r[0].similarity)
    return [ticket for _, ticket in rows[:REPRESENTATIVES]]


def organisations(surge: Surge) -> list[str]:
    return sorted({t.organization.name for _, t in member_tickets(surge)
                   if t.organization is not None})


def dismiss(surge: Surge, agent: User, now: datetime | None = None) -> None:
    """"Not a surge": ends it, silences its group for a day, and records the verdict."""
    now = now or utcnow()
    group = db.session.get(SimilarGroup, surge.group_id)
    group.quiet_until = now + detection.QUIET
    _act(surge, agent, "not_a_surge", now)
    surge.status = "dismissed"
    surge.open_group_id = None


def _act(surge: Surge, agent: User, verdict: str, now: datetime) -> None:
    surge.acted_at = surge.acted_at or now
    db.session.add(SurgeFeedback(surge_id=surge.id, user_id=agent.id, verdict=verdict,
                                 created_at=now))


def record_problem(surge: Surge, problem: Ticket, agent: User, verdict: str) -> None:
    surge.problem_id = problem.id
    _act(surge, agent, verdict, utcnow())


# --- reports ---------------------------------------------------------------------------------
@dataclass
class SurgeTiming:
    surge: Surge
    to_alert: timedelta
    to_action: timedelta | None
    to_problem: timedelta | None


@dataclass
class WeekTrend:
    """One week of the report's period: is the share linked to problems rising?"""
    start: datetime
    tickets: int
    linked: int
    surges: int
    deflections: int

    @property
    def linked_share(self) -> float:
        return self.linked / self.tickets if self.tickets else 0.0


@dataclass
class Report:
    since: datetime
    until: datetime
    timings: list[SurgeTiming]
    tickets: int
    linked: int
    deflections: int
    by_category: list[tuple[str, int]]
    by_group: list[tuple[str, int]]
    trend: list[WeekTrend]

    @property
    def linked_share(self) -> float:
        return self.linked / self.tickets if self.tickets else 0.0


def report(days: int = 30, now: datetime | None = None) -> Report:
    """Per surge: first ticket to alert, to an agent's action, to a linked problem; per
    period: tickets linked to problems, known-issue deflections, and the top issue drivers
    (share of tickets by category and by similarity group)."""
    from portal.surges.known_issues import deflections
    from portal.surges.models import ProblemIncident
    from portal.tickets.models import TicketCategory

    now = now or utcnow()
    since = now - timedelta(days=days)
    surges = db.session.scalars(select(Surge).where(Surge.detected_at >= since)
                                .order_by(Surge.detected_at.desc())).all()
    problem_at = dict(db.session.execute(
        select(SurgeFeedback.surge_id, func.min(SurgeFeedback.created_at))
        .where(SurgeFeedback.verdict.in_(["new_problem", "linked"]))
        .group_by(SurgeFeedback.surge_id)).all())
    timings = [SurgeTiming(
        s, s.detected_at - s.first_at,
        s.acted_at - s.detected_at if s.acted_at else None,
        problem_at[s.id] - s.first_at if s.id in problem_at else None) for s in surges]
    in_period = (Ticket.created_at >= since) & (Ticket.created_at < now) & \
        (Ticket.type != TicketType.PROBLEM)
    tickets = db.session.scalar(select(func.count()).select_from(Ticket).where(in_period)) or 0
    linked = db.session.scalar(select(func.count()).select_from(ProblemIncident).join(
        Ticket, Ticket.id == ProblemIncident.incident_id).where(in_period)) or 0
    by_category = db.session.execute(
        select(func.coalesce(TicketCategory.name, "No category"), func.count())
        .select_from(Ticket).outerjoin(TicketCategory, TicketCategory.id == Ticket.category_id)
        .where(in_period).group_by(TicketCategory.name)
        .order_by(func.count().desc()).limit(5)).all()
    group_counts = db.session.execute(
        select(TicketVector.group_id, func.count(), func.min(TicketVector.ticket_id))
        .join(Ticket, Ticket.id == TicketVector.ticket_id).where(in_period)
        .group_by(TicketVector.group_id).order_by(func.count().desc()).limit(5)).all()
    subjects = dict(db.session.execute(select(Ticket.id, Ticket.subject).where(
        Ticket.id.in_([row[2] for row in group_counts]))).all())
    by_group = [(subjects.get(first, "?"), count) for _, count, first in group_counts]
    return Report(since, now, timings, tickets, linked, deflections(since, now),
                  [tuple(r) for r in by_category], by_group, weekly_trend(since, now))


def weekly_trend(since: datetime, until: datetime) -> list[WeekTrend]:
    """Tickets, linked incidents, surges and deflections per week, oldest first (the last
    week may be short). A handful of counting queries per week: the period is 30 days."""
    from portal.surges.known_issues import deflections
    from portal.surges.models import ProblemIncident

    weeks = []
    start = since
    while start < until:
        end = min(start + timedelta(days=7), until)
        in_week = (Ticket.created_at >= start) & (Ticket.created_at < end) & \
            (Ticket.type != TicketType.PROBLEM)
        weeks.append(WeekTrend(
            start,
            db.session.scalar(select(func.count()).select_from(Ticket).where(in_week)) or 0,
            db.session.scalar(select(func.count()).select_from(ProblemIncident).join(
                Ticket, Ticket.id == ProblemIncident.incident_id).where(in_week)) or 0,
            db.session.scalar(select(func.count()).select_from(Surge).where(
                Surge.detected_at >= start, Surge.detected_at < end)) or 0,
            deflections(start, end)))
        start = end
    return weeks


REPORT_CSV_HEADER = ["surge", "title", "first_ticket_at", "detected_at", "members",
                     "minutes_to_alert", "minutes_to_action", "minutes_to_problem", "status"]


def report_rows(report: Report) -> list[list[str]]:
    """The per-surge table as CSV rows (header first); text cells that a spreadsheet would
    run as a formula are quoted with a leading apostrophe."""
    def minutes(delta: timedelta | None) -> str:
        return "" if delta is None else str(round(delta.total_seconds() / 60))

    def cell(text: str) -> str:
        return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

    rows = [REPORT_CSV_HEADER]
    for t in report.timings:
        s = t.surge
        rows.append([str(s.id), cell(s.title), s.first_at.isoformat(timespec="minutes"),
                     s.detected_at.isoformat(timespec="minutes"), str(s.member_count),
                     minutes(t.to_alert), minutes(t.to_action), minutes(t.to_problem),
                     s.status])
    return rows
