"""What agents do to tickets. Each function validates, changes, records timeline events and
flushes; the view commits once."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Select, bindparam, exists, or_, select
from sqlalchemy.orm import aliased, selectinload

from portal.auth.models import Organization, Role, User
from portal.cluster import memo
from portal.converters import parse_id
from portal.db import json_rows, rows_from_json, utcnow
from portal.extensions import db
from portal.tickets import notify, sla
from portal.tickets.attachments import (
    AttachmentError,
    copy_attachments,
    remove_files,
    save_uploads,
)
from portal.tickets.lifecycle import (
    TransitionError,
    change_status,
    record_event,
    record_first_response,
    touch,
)
from portal.tickets.links import normalize
from portal.tickets.models import (
    REFERENCE_OFFSET,
    Attachment,
    CannedReply,
    Group,
    Message,
    Priority,
    Status,
    Tag,
    Ticket,
    TicketCategory,
    TicketCC,
    TicketEvent,
    TicketType,
    reference_of,
    ticket_tags,
)
from portal.tickets.thread import THREAD, THREAD_ORDER, ThreadMessage, thread_from_json

TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,59}$")


class ActionError(ValueError):
    """An agent action that cannot be done; the message is shown as is."""


def parse_tags(text: str) -> list[str]:
    """Comma or space separated, lower-cased; raises ActionError on a bad tag."""
    names = []
    for raw in re.split(r"[,\s]+", text.strip().lower()):
        if not raw:
            continue
        if not TAG_PATTERN.match(raw):
            raise ActionError(
                f"“{raw[:60]}” is not a valid tag: use letters, digits, - and _ (up to 60)."
            )
        if raw not in names:
            names.append(raw)
    return names


def _tags_named(names: Iterable[str]) -> list[Tag]:
    names = list(names)
    if not names:
        return []
    found = {t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(names)))}
    tags = []
    for name in names:
        tag = found.get(name)
        if tag is None:
            tag = Tag(name=name)
            db.session.add(tag)
            found[name] = tag
        tags.append(tag)
    return tags


def set_tags(ticket: Ticket, names: list[str], actor: User | None) -> bool:
    old = sorted(t.name for t in ticket.tags)
    if old == sorted(names):
        return False
    ticket.tags = _tags_named(names)
    record_event(ticket, "tags", actor, ", ".join(old), ", ".join(sorted(names)))
    return True


def reply(
    ticket: Ticket,
    agent: User,
    body: str,
    *,
    internal: bool,
    new_status: Status | None = None,
    files=None,
) -> Message:
    """A public reply (emails the customer) or an internal note; optionally change status.

    A public reply to a new ticket opens it, and the first one stops the first-response clock.
    Files are checked and stored with the message (all or nothing).
    """
    body = body.strip()
    if not body:
        raise ActionError("Write a reply or a note first.")
    if ticket.status == Status.CLOSED:
        raise ActionError("This ticket is closed; open a follow-up ticket instead.")
    now = utcnow()
    message = Message(
        ticket=ticket,
        author_id=agent.id,
        author_name=agent.name,
        from_agent=True,
        internal=internal,
        body=body,
        created_at=now,
    )
    db.session.add(message)
    db.session.flush()
    try:
        attachments = save_uploads(files, ticket, message)
    except AttachmentError as exc:
        raise ActionError(str(exc)) from exc
    if attachments:
        record_event(ticket, "attachment", agent, None,
                     ", ".join(a.filename for a in attachments), public=not internal)
    if internal:
        record_event(ticket, "note", agent)
    else:
        ticket.public_reply_count += 1
        record_first_response(ticket, now)
        record_event(ticket, "reply", agent)
        if new_status is None and ticket.status == Status.NEW:
            new_status = Status.OPEN
    if new_status is not None:
        change_status(ticket, new_status, agent)
    if ticket.assignee_id is None and not internal:
        ticket.assignee_id = agent.id
        record_event(ticket, "assignee", agent, None, agent.name)
    touch(ticket)
    db.session.flush()
    if not internal:
        notify.notify_public_reply(ticket, message)
        if ticket.status == Status.SOLVED:
            notify.notify_solved(ticket)
    return message


@dataclass
class Changes:
    """Property changes from the ticket form or a bulk action; None means "leave as is"."""

    status: Status | None = None
    priority: Priority | None = None
    type: TicketType | None = None
    category_id: int | None = None  # 0 clears
    group_id: int | None = None  # 0 clears
    assignee_id: int | None = None  # 0 clears
    tags: list[str] | None = None  # replaces
    add_tags: list[str] | None = None
    remove_tags: list[str] | None = None


def _name(obj) -> str | None:
    return obj.name if obj is not None else None


def _lookup(model, ident: int | None, label: str):
    if not ident:
        return None
    obj = db.session.get(model, ident)
    if obj is None:
        raise ActionError(f"That {label} no longer exists.")
    return obj


def _agent(ident: int | None) -> User | None:
    user = _lookup(User, ident, "agent")
    if user is not None and (not user.is_agent or not user.active):
        raise ActionError(f"{user.name} is not an active agent.")
    return user


def apply_changes(ticket: Ticket, changes: Changes, actor: User) -> list[str]:
    """Apply and record each change; returns the names of what changed."""
    changed = []
    if changes.priority is not None and changes.priority != ticket.priority:
        record_event(ticket, "priority", actor, ticket.priority.value, changes.priority.value)
        ticket.priority = changes.priority
        if ticket.status not in (Status.SOLVED, Status.CLOSED):
            sla.apply_targets(ticket, ticket.created_at)
        changed.append("priority")
    if changes.type is not None and changes.type != ticket.type:
        record_event(ticket, "type", actor, ticket.type.value, changes.type.value)
        ticket.type = changes.type
        changed.append("type")
    if changes.category_id is not None and changes.category_id != (ticket.category_id or 0):
        category = _lookup(TicketCategory, changes.category_id, "category")
        record_event(ticket, "category", actor, _name(ticket.category), _name(category))
        ticket.category = category
        changed.append("category")
    if changes.group_id is not None and changes.group_id != (ticket.group_id or 0):
        group = _lookup(Group, changes.group_id, "group")
        record_event(ticket, "group", actor, _name(ticket.group), _name(group))
        ticket.group = group
        changed.append("group")
    if changes.assignee_id is not None and changes.assignee_id != (ticket.assignee_id or 0):
        assignee = _agent(changes.assignee_id)
        record_event(ticket, "assignee", actor, _name(ticket.assignee), _name(assignee))
        ticket.assignee = assignee
        changed.append("assignee")
    names = None
    if changes.tags is not None:
        names = changes.tags
    elif changes.add_tags or changes.remove_tags:
        current = [t.name for t in ticket.tags]
        names = [n for n in current if n not in (changes.remove_tags or [])]
        names += [n for n in (changes.add_tags or []) if n not in names]
    if names is not None and set_tags(ticket, names, actor):
        changed.append("tags")
    if changes.status is not None:
        try:
            if change_status(ticket, changes.status, actor):
                changed.append("status")
                if changes.status == Status.SOLVED:
                    db.session.flush()
                    notify.notify_solved(ticket)
        except TransitionError as exc:
            raise ActionError(str(exc)) from exc
    if changed:
        touch(ticket)
    db.session.flush()
    return changed


def bulk_update(ticket_ids: list[int], changes: Changes, actor: User) -> tuple[int, list[str]]:
    """Apply the same changes to many tickets. Tickets where a change is not allowed (a
    closed ticket cannot be reopened) are skipped and reported; the rest are updated."""
    tickets = db.session.scalars(
        select(Ticket)
        .where(Ticket.id.in_(ticket_ids))
        .options(selectinload(Ticket.tags))
        .order_by(Ticket.id)
    ).all()
    updated, problems = 0, []
    for ticket in tickets:
        try:
            with db.session.begin_nested():
                if apply_changes(ticket, changes, actor):
                    updated += 1
        except ActionError as exc:
            problems.append(f"{ticket.reference}: {exc}")
    return updated, problems


def different_requesters(source: Ticket, target: Ticket) -> bool:
    """A merge across customers: the agent must choose whether the source's requester may
    read the target (as a CC), since that shows them the target's whole thread."""
    return normalize(source.requester_email) != normalize(target.requester_email)


def merge(source: Ticket, target: Ticket, actor: User, *, cc_requester: bool = False) -> None:
    """Merge a duplicate into `target`: its thread and files are copied into the target (in
    time order) and the duplicate is closed, its people told.

    When the requesters differ, the source's requester becomes a CC on the target only with
    `cc_requester`; otherwise they are told their request was closed and see nothing of the
    target.
    """
    if source.id == target.id:
        raise ActionError("A ticket cannot be merged into itself.")
    if target.status == Status.CLOSED:
        raise ActionError(f"{target.reference} is closed; merge into an open ticket.")
    if source.status == Status.CLOSED:
        raise ActionError(f"{source.reference} is already closed.")
    copied_files: list[Attachment] = []
    for message in source.messages:
        copy = Message(
            ticket=target,
            author_id=message.author_id,
            author_name=message.author_name,
            from_agent=message.from_agent,
            internal=message.internal,
            body=message.body,
            channel=message.channel,
            created_at=message.created_at,
        )
        db.session.add(copy)
        if message.attachments:
            try:
                copied_files += copy_attachments(list(message.attachments), target, copy)
            except AttachmentError as exc:
                remove_files(copied_files)
                raise ActionError(str(exc)) from exc
    add_cc = cc_requester and different_requesters(source, target)
    note = f"{source.reference} ({source.subject}) was merged into this ticket."
    if different_requesters(source, target):
        note += (f" {source.requester_email} was added as a CC." if add_cc else
                 f" {source.requester_email} was not given access to this ticket.")
    db.session.add(
        Message(
            ticket=target,
            author_id=actor.id,
            author_name=actor.name,
            from_agent=True,
            internal=True,
            body=note,
            created_at=utcnow(),
        )
    )
    if add_cc and normalize(source.requester_email) not in {
        normalize(cc.email) for cc in target.ccs
    }:
        db.session.add(TicketCC(ticket=target, email=normalize(source.requester_email)))
    source.merged_into_id = target.id
    record_event(source, "merge", actor, source.reference, target.reference)
    record_event(target, "merge", actor, source.reference, target.reference, public=False)
    if source.status != Status.SOLVED:
        change_status(source, Status.SOLVED, actor)
    change_status(source, Status.CLOSED, actor)
    touch(target)
    db.session.flush()
    notify.notify_merged(source, target)


def find_by_reference(reference: str) -> Ticket | None:
    text = reference.strip()
    ticket_id = Ticket.id_from_reference(text)
    if ticket_id is None and (number := parse_id(text)) is not None:
        ticket_id = number - REFERENCE_OFFSET
    return db.session.get(Ticket, ticket_id) if ticket_id and ticket_id > 0 else None


PLACEHOLDERS = {
    "{{requester.name}}": "The requester's full name",
    "{{requester.first_name}}": "The requester's first name",
    "{{ticket.reference}}": "The ticket reference, e.g. TKT-1042",
    "{{ticket.subject}}": "The ticket subject",
    "{{agent.name}}": "Your name",
}


def fill_placeholders(text: str, ticket: Ticket, agent: User) -> str:
    """Plain substitution (never a template engine: the text is user-written)."""
    first_name = ticket.requester_name.split()[0] if ticket.requester_name.split() else ""
    values = {
        "{{requester.name}}": ticket.requester_name,
        "{{requester.first_name}}": first_name,
        "{{ticket.reference}}": ticket.reference,
        "{{ticket.subject}}": ticket.subject,
        "{{agent.name}}": agent.name,
    }
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def insert_canned(current: str, canned: CannedReply, ticket: Ticket, agent: User) -> str:
    filled = fill_placeholders(canned.body, ticket, agent)
    return f"{current.rstrip()}\n\n{filled}" if current.strip() else filled


def insert_link(current: str, title: str, url: str) -> str:
    link = f"[{title.replace('[', '(').replace(']', ')')}]({url})"
    return f"{current.rstrip()}\n\n{link}" if current.strip() else link


class OtherTicket(NamedTuple):
    """What the ticket page lists of the requester's other tickets (a row, not an entity:
    loading ten whole tickets cost more than the page's own ticket)."""

    id: int
    subject: str
    status: Status

    @property
    def reference(self) -> str:
        return reference_of(self.id)


class TimelineEntry(NamedTuple):
    kind: str
    old_value: str | None
    new_value: str | None
    public: bool
    created_at: datetime
    actor_id: int | None
    actor_name: str | None


class TicketExtras(NamedTuple):
    """Which of the ticket page's seldom filled blocks have anything to show."""

    undelivered: bool  # notifications that failed or are being retried
    bounces: bool  # addresses that bounced
    emails: bool  # messages that came by email ("show the full email")
    vector: bool  # the ticket's embedding: a problem hint needs one


class TicketPage(NamedTuple):
    """What the agent ticket page shows besides the ticket's own columns."""

    organization: str | None  # its name
    extras: TicketExtras
    tags: list[str]  # names, alphabetical
    ccs: list[str]  # addresses, alphabetical
    timeline: list[TimelineEntry]  # newest first, the last TIMELINE_LENGTH
    thread: list[ThreadMessage]  # oldest first, internal notes included
    other_tickets: list[OtherTicket]  # the requester's, most recently active first


TIMELINE_LENGTH = 200
OTHER_TICKETS = 10


def ticket_page(ticket_id: int) -> tuple[Ticket, TicketPage] | None:
    """The ticket and everything its page shows of others, in one statement: each list is a
    JSON column of the ticket's row (`portal.db.json_rows`), and the seldom filled blocks are
    EXISTS probes, so their own queries run only when they have rows. Six statements were a
    fifth of the page on SQLite (SQLAlchemy's and the driver's work per statement) and on
    PostgreSQL each was a round trip to a server sharing the CPU. The organization's name is
    a column too: joining the entity made SQLAlchemy build its loaders on every read."""
    row = db.session.execute(_ticket_page_statement(db.engine.dialect.name),
                             {"ticket_id": ticket_id}).first()
    if row is None:
        return None
    ticket, organization, undelivered, bounces, emails, vector, tags, ccs, events, \
        conversation, by_requester, by_email = row
    return ticket, TicketPage(
        organization=organization,
        extras=TicketExtras(bool(undelivered), bool(bounces), bool(emails), bool(vector)),
        tags=[row[0] for row in rows_from_json(tags)],
        ccs=[row[0] for row in rows_from_json(ccs)],
        timeline=[TimelineEntry(kind, old, new, bool(public), datetime.fromisoformat(at),
                                actor_id, actor_name)
                  for kind, old, new, public, at, actor_id, actor_name
                  in rows_from_json(events)],
        thread=thread_from_json(conversation),
        other_tickets=[OtherTicket(other_id, subject, Status(status)) for other_id, subject, status
                       in rows_from_json(by_requester or by_email)],
    )


# The statements whose rows are the page's lists, for the ticket `:ticket_id`.
_TAGS = (select(Tag.name).join(ticket_tags, ticket_tags.c.tag_id == Tag.id)
         .where(ticket_tags.c.ticket_id == bindparam("ticket_id")))
_CCS = select(TicketCC.email).where(TicketCC.ticket_id == bindparam("ticket_id"))
_TIMELINE_ORDER = (TicketEvent.created_at.desc(), TicketEvent.id.desc())
_TIMELINE = (
    select(TicketEvent.kind, TicketEvent.old_value, TicketEvent.new_value, TicketEvent.public,
           TicketEvent.created_at, TicketEvent.actor_id, User.name.label("actor_name"))
    .outerjoin(User, User.id == TicketEvent.actor_id)
    .where(TicketEvent.ticket_id == bindparam("ticket_id"))
    .order_by(*_TIMELINE_ORDER)
    .limit(TIMELINE_LENGTH)
)
# The requester's other tickets: by account, or by address for a ticket without one (each a
# lookup in its own index; the other finds nothing).
_asked = aliased(Ticket, name="asked")
_other = aliased(Ticket, name="other")
_OTHERS_ORDER = (_other.last_activity_at.desc(),)


def _others(same_requester) -> Select:
    return (select(_other.id, _other.subject, _other.status)
            .where(same_requester, _other.id != bindparam("ticket_id"))
            .order_by(*_OTHERS_ORDER).limit(OTHER_TICKETS))


_OTHERS_BY_REQUESTER = _others(_other.requester_id == select(_asked.requester_id).where(
    _asked.id == bindparam("ticket_id")).scalar_subquery())
_OTHERS_BY_EMAIL = _others(_other.requester_email == select(_asked.requester_email).where(
    _asked.id == bindparam("ticket_id"), _asked.requester_id.is_(None)).scalar_subquery())


@functools.cache
def _ticket_page_statement(dialect: str) -> Select:
    """Built once per database kind, on first use (every domain's models are loaded by
    then). The requester, assignee, group and category are not joined: the page shows their
    names from the choice lists, and a POST that needs them loads them."""
    return (
        select(Ticket,
               select(Organization.name).where(Organization.id == Ticket.organization_id)
               .scalar_subquery(),
               *_extras_probes(bindparam("ticket_id")),
               json_rows(_TAGS, (Tag.name,), dialect),
               json_rows(_CCS, (TicketCC.email,), dialect),
               json_rows(_TIMELINE, _TIMELINE_ORDER, dialect),
               json_rows(THREAD, THREAD_ORDER, dialect),
               json_rows(_OTHERS_BY_REQUESTER, _OTHERS_ORDER, dialect),
               json_rows(_OTHERS_BY_EMAIL, _OTHERS_ORDER, dialect))
        .where(Ticket.id == bindparam("ticket_id"))
    )


def _extras_probes(ticket_id) -> tuple:
    """The EXISTS probes of `TicketExtras`, in its order, for the ticket `ticket_id` (a bound
    parameter or a column)."""
    from portal.inbound.models import BouncingAddress, InboundMessage
    from portal.mail.models import MailStatus, OutboxMessage
    from portal.surges.models import TicketVector

    return (
        # Two comparisons, not IN: an IN list is expanded into the SQL on every execution.
        exists().where(OutboxMessage.ticket_id == ticket_id,
                       or_(OutboxMessage.status == MailStatus.FAILED,
                           OutboxMessage.status == MailStatus.RETRYING)),
        exists().where(BouncingAddress.ticket_id == ticket_id),
        exists().where(InboundMessage.ticket_id == ticket_id,
                       InboundMessage.ticket_message_id.is_not(None)),
        exists().where(TicketVector.ticket_id == ticket_id),
    )


# --- the lists agents pick from, cached until one of them changes ----------------------------
CHOICES = "agent-choices"  # change-feed topic
memo.watch(CHOICES, Group, TicketCategory, CannedReply)
memo.watch(CHOICES, User, ignore=("last_login_at", "password_rule"))


class Choice(NamedTuple):
    id: int
    name: str


def choice_lists() -> dict[str, tuple[Choice, ...]]:
    """Groups, ticket categories, active agents and canned replies (by title): read once per
    process and kept until one of them is added, changed or removed on any host."""
    return memo.remember(CHOICES, "lists", _read_choice_lists)


def _read_choice_lists() -> dict[str, tuple[Choice, ...]]:
    def pairs(stmt) -> tuple[Choice, ...]:
        return tuple(Choice(*row) for row in db.session.execute(stmt))

    return {
        "groups": pairs(select(Group.id, Group.name).order_by(Group.name)),
        "categories": pairs(select(TicketCategory.id, TicketCategory.name)
                            .order_by(TicketCategory.position, TicketCategory.name)),
        "agents": pairs(select(User.id, User.name)
                        .where(User.role.in_((Role.AGENT, Role.ADMIN)), User.active.is_(True))
                        .order_by(User.name)),
        "canned_replies": pairs(select(CannedReply.id, CannedReply.title)
                                .order_by(CannedReply.title)),
    }
