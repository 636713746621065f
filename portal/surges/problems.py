"""Problems and their incidents: link, answer them all at once, solve them together.

Each action touches every linked incident once: an incident belongs to one problem at most
(its primary key), and a reply-to-all carries a form key that each incident's message records,
so a repeated submit finds the replies already made instead of sending them again.
"""

from __future__ import annotations

import logging
import re

import numpy as np
from sqlalchemy import exists, select
from sqlalchemy.orm import selectinload

from portal.agent import services as agent_services
from portal.auth.models import User
from portal.db import utcnow
from portal.extensions import db
from portal.surges.models import KnownIssue, ProblemIncident, TicketVector
from portal.tickets.lifecycle import change_status, record_event
from portal.tickets.models import Message, Status, Ticket, TicketType

log = logging.getLogger(__name__)

HINT_SIMILARITY = 0.6  # a new ticket this close to an open problem's incidents gets the hint


class ProblemError(ValueError):
    """A user-facing reason a problem action was refused."""


def create_problem(subject: str, agent: User, incidents: list[Ticket],
                   description: str = "") -> Ticket:
    """A new problem ticket, with these incidents linked."""
    subject = subject.strip()[:200]
    if not subject:
        raise ProblemError("Give the problem a subject.")
    now = utcnow()
    problem = Ticket(subject=subject, type=TicketType.PROBLEM, status=Status.OPEN,
                     requester_name=agent.name, requester_email=agent.email,
                     requester_id=agent.id, assignee_id=agent.id,
                     created_at=now, updated_at=now, last_activity_at=now)
    db.session.add(problem)
    db.session.flush()
    db.session.add(Message(ticket=problem, author_id=agent.id, author_name=agent.name,
                           from_agent=True, internal=True, created_at=now,
                           body=description.strip() or f"Problem opened for {len(incidents)} "
                                                      "similar tickets."))
    record_event(problem, "created", agent, None, "agent")
    link(problem, incidents, agent)
    return problem


def link(problem: Ticket, incidents: list[Ticket], agent: User) -> int:
    """Link incidents to an open problem; returns how many were newly linked."""
    if problem.type != TicketType.PROBLEM:
        raise ProblemError(f"{problem.reference} is not a problem ticket.")
    if problem.status in (Status.SOLVED, Status.CLOSED):
        raise ProblemError(f"{problem.reference} is already {problem.status.value}.")
    existing = {row.incident_id: row for row in db.session.scalars(
        select(ProblemIncident).where(
            ProblemIncident.incident_id.in_([t.id for t in incidents])))}
    linked = 0
    for incident in {t.id: t for t in incidents}.values():
        if incident.id == problem.id or incident.type == TicketType.PROBLEM:
            continue
        row = existing.get(incident.id)
        if row is not None and row.problem_id == problem.id:
            continue
        if row is not None:
            raise ProblemError(f"{incident.reference} is already linked to another problem.")
        db.session.add(ProblemIncident(incident_id=incident.id, problem_id=problem.id,
                                       linked_by_id=agent.id, linked_at=utcnow()))
        if incident.type != TicketType.INCIDENT:
            record_event(incident, "type", agent, incident.type.value, "incident")
            incident.type = TicketType.INCIDENT
        record_event(incident, "problem", agent, None, problem.reference)
        linked += 1
    if linked:
        record_event(problem, "incidents", agent, None, f"+{linked}")
    db.session.flush()
    return linked


def unlink(problem: Ticket, incident_id: int, agent: User) -> None:
    row = db.session.get(ProblemIncident, incident_id)
    if row is None or row.problem_id != problem.id:
        raise ProblemError("That ticket is not linked to this problem.")
    record_event(row.incident, "problem", agent, problem.reference, None)
    db.session.delete(row)
    db.session.flush()


def set_opt_out(problem: Ticket, incident_id: int, opted_out: bool) -> None:
    row = db.session.get(ProblemIncident, incident_id)
    if row is None or row.problem_id != problem.id:
        raise ProblemError("That ticket is not linked to this problem.")
    row.solve_with_problem = not opted_out


def incidents(problem: Ticket) -> list[ProblemIncident]:
    """Linked incidents with their requesters and organisations, oldest first."""
    return list(db.session.scalars(
        select(ProblemIncident).where(ProblemIncident.problem_id == problem.id)
        .options(selectinload(ProblemIncident.incident).selectinload(Ticket.organization),
                 selectinload(ProblemIncident.incident).selectinload(Ticket.requester))
        .join(Ticket, Ticket.id == ProblemIncident.incident_id)
        .order_by(Ticket.created_at, Ticket.id)))


def problem_of(ticket: Ticket) -> Ticket | None:
    row = db.session.get(ProblemIncident, ticket.id)
    return row.problem if row is not None else None


def reply_to_all(problem: Ticket, agent: User, body: str, form_key: str, *,
                 solve: bool = False) -> int:
    """One public reply into each linked incident (placeholders filled per requester), sent
    through the outbox; with `solve`, the problem and every incident not opted out are
    solved. Returns how many replies were made now (a repeated form key makes none)."""
    if not body.strip():
        raise ProblemError("Write the reply first.")
    if not form_key or len(form_key) > 40:
        raise ProblemError("The form expired; reload the page and try again.")
    done = set(db.session.scalars(select(Message.ticket_id).where(
        Message.submission_key.like(f"{form_key}:%"))))
    sent = 0
    for row in incidents(problem):
        incident = row.incident
        if incident.id in done or incident.status == Status.CLOSED:
            continue
        new_status = Status.SOLVED if solve and row.solve_with_problem else None
        if incident.status == Status.SOLVED:
            new_status = None
        message = agent_services.reply(
            incident, agent, agent_services.fill_placeholders(body, incident, agent),
            internal=False, new_status=new_status)
        message.submission_key = f"{form_key}:{incident.id}"
        sent += 1
    first_time = problem.id not in done
    if first_time:
        # The problem keeps the text as a note, and its followers get it (an update, or the
        # solution), once per form.
        db.session.add(Message(ticket=problem, author_id=agent.id, author_name=agent.name,
                               from_agent=True, internal=True, body=body.strip(),
                               submission_key=f"{form_key}:{problem.id}", created_at=utcnow()))
        _notify_followers(problem, body, solved=solve)
    if solve and problem.status not in (Status.SOLVED, Status.CLOSED):
        change_status(problem, Status.SOLVED, agent)
        issue = db.session.get(KnownIssue, problem.id)
        if issue is not None:
            issue.active = False
    db.session.flush()
    log.info("%s replied to %s incidents of %s%s", agent.email, sent, problem.reference,
             " and solved it" if solve else "")
    return sent


def _notify_followers(problem: Ticket, body: str, *, solved: bool) -> None:
    """Followers filed nothing: placeholders about a requester or ticket read generically."""
    from portal.surges.known_issues import notify_followers

    generic = {"{{requester.name}}": "", "{{requester.first_name}}": "",
               "{{ticket.reference}}": problem.reference, "{{ticket.subject}}": problem.subject}
    for placeholder, value in generic.items():
        body = body.replace(placeholder, value)
    body = re.sub(r"[ \t]+([,.!?])", r"\1", body)
    notify_followers(problem, body, solved=solved)


def hint_for(ticket: Ticket) -> Ticket | None:
    """The open problem a new, unlinked ticket probably belongs to, from its vector."""
    if ticket.type == TicketType.PROBLEM:
        return None
    # One statement: the ticket's vector, unless the ticket is already linked to a problem.
    own = db.session.scalar(select(TicketVector).where(
        TicketVector.ticket_id == ticket.id,
        ~exists().where(ProblemIncident.incident_id == ticket.id)))
    if own is None:
        return None
    rows = db.session.execute(
        select(ProblemIncident.problem_id, TicketVector.vector)
        .join(TicketVector, TicketVector.ticket_id == ProblemIncident.incident_id)
        .join(Ticket, Ticket.id == ProblemIncident.problem_id)
        .where(Ticket.status.not_in([Status.SOLVED, Status.CLOSED]))).all()
    if not rows:
        return None
    vector = own.array()
    scores: dict[int, list[float]] = {}
    for problem_id, blob in rows:
        scores.setdefault(problem_id, []).append(float(np.frombuffer(blob, np.float32) @ vector))
    best_id, best = max(((pid, float(np.mean(sorted(s)[-5:]))) for pid, s in scores.items()),
                        key=lambda item: item[1])
    return db.session.get(Ticket, best_id) if best >= HINT_SIMILARITY else None
