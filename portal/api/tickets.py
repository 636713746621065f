"""Ticket endpoints: the web UI's services and access rules, over JSON.

Staff tokens see every ticket; a customer's token sees exactly the tickets the customer side
shows them (`portal.tickets.access`), a 404 for anything else, and never an internal note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from datetime import UTC

from flask import send_file, url_for
from sqlalchemy import exists, or_, select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage

from portal.agent import services as agent_services
from portal.api import representations as rep
from portal.api import schemas
from portal.api.core import (
    Problem,
    blp,
    check_if_match,
    keyset_page,
    not_found,
    page_body,
    require,
    writes,
)
from portal.auth.models import User
from portal.extensions import db
from portal.tickets import services as ticket_services
from portal.tickets.access import Viewer, customer_can_see, visible_to
from portal.tickets.attachments import AttachmentError, stored_path
from portal.tickets.lifecycle import PUBLIC_EVENT_KINDS, TransitionError
from portal.tickets.links import normalize
from portal.tickets.models import (
    Attachment,
    Channel,
    Message,
    Priority,
    Status,
    Tag,
    Ticket,
    TicketEvent,
    TicketType,
)

TAG = ["Tickets"]


def etag_of(ticket: Ticket) -> str:
    stamp = f"{ticket.id}:{ticket.updated_at.isoformat()}:{ticket.status.value}"
    return '"' + hashlib.sha256(stamp.encode()).hexdigest()[:20] + '"'


def visible_ticket(ticket_id: int, user: User) -> Ticket:
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None or not customer_can_see(user, ticket):
        raise not_found("ticket")
    return ticket


def _with_etag(ticket: Ticket, user: User, status: int = 200, **headers):
    return rep.ticket(ticket, staff=user.is_agent), status, {"ETag": etag_of(ticket), **headers}


@blp.route("/tickets", methods=["GET"])
@blp.doc(tags=TAG, summary="List tickets (newest activity first), with filters and search")
@blp.arguments(schemas.TicketListArgs, location="query", as_kwargs=True)
@blp.response(200, schemas.TicketPage)
def list_tickets(cursor=None, limit=25, sort="-updated_at", **filters):
    user = require("tickets:read")
    stmt = select(Ticket).options(selectinload(Ticket.tags), selectinload(Ticket.assignee))
    if not user.is_agent:
        stmt = stmt.where(visible_to(user))
    for name in ("status", "priority"):
        if name in filters:
            enum_class = Status if name == "status" else Priority
            stmt = stmt.where(getattr(Ticket, name) == enum_class(filters[name]))
    for name in ("assignee_id", "group_id", "requester_id"):
        if name in filters:
            column = getattr(Ticket, name)
            stmt = stmt.where(column.is_(None) if filters[name] == 0 else column == filters[name])
    if "tag" in filters:
        stmt = stmt.where(Ticket.tags.any(Tag.name == filters["tag"].lower()))
    if "updated_since" in filters:
        since = filters["updated_since"]
        if since.tzinfo is not None:  # the database keeps naive UTC
            since = since.astimezone(UTC).replace(tzinfo=None)
        stmt = stmt.where(Ticket.updated_at >= since)
    query = (filters.get("q") or "").strip()
    if query:
        words = f"%{query.replace('%', '').replace('_', ' ')}%"
        matches = [Ticket.subject.ilike(words), exists().where(
            Message.ticket_id == Ticket.id, Message.internal.is_(False),
            Message.body.ilike(words))]
        if (ticket_id := Ticket.id_from_reference(query)) is not None:
            matches.append(Ticket.id == ticket_id)
        stmt = stmt.where(or_(*matches))
    rows, next_cursor = keyset_page(stmt, Ticket.updated_at, Ticket.id, cursor=cursor,
                                    limit=limit, newest_first=sort.startswith("-"))
    return page_body([rep.ticket(t, staff=user.is_agent) for t in rows], next_cursor,
                     "api.list_tickets")


@blp.route("/tickets", methods=["POST"])
@blp.doc(tags=TAG, summary="Create a ticket (staff: on behalf of a requester)")
@writes
@blp.arguments(schemas.TicketCreate)
@blp.response(201, schemas.TicketOut)
def create_ticket(data):
    user = require("tickets:write")
    requester: User | None = user
    email, name = user.email, user.name
    if user.is_agent:
        if not data.get("requester_email"):
            raise Problem(422, "Say who the ticket is for.", errors=[
                {"field": "requester_email", "message": "Required for staff tokens."}])
        email = normalize(data["requester_email"])
        requester = db.session.scalar(select(User).where(User.email == email))
        name = requester.name if requester else (data.get("requester_name") or email)
    elif data.get("requester_email") and normalize(data["requester_email"]) != user.email:
        raise Problem(403, "A customer's token files tickets for that customer only.")
    ticket, _files = ticket_services.create_ticket(ticket_services.NewTicket(
        subject=data["subject"].strip(), description=data["description"],
        type=TicketType(data["type"]), name=name, email=email, requester=requester,
        ccs=[normalize(cc) for cc in data["cc"]], channel=Channel.API))
    return _with_etag(ticket, user, 201,
                      Location=url_for("api.get_ticket", ticket_id=ticket.id))


@blp.route("/tickets/<int:ticket_id>", methods=["GET"])
@blp.doc(tags=TAG, summary="Get a ticket (ETag for conditional updates)")
@blp.response(200, schemas.TicketOut)
def get_ticket(ticket_id: int):
    user = require("tickets:read")
    return _with_etag(visible_ticket(ticket_id, user), user)


@blp.route("/tickets/<int:ticket_id>", methods=["PATCH"])
@blp.doc(tags=TAG, summary="Change status, priority, type, assignee, group or tags (staff)")
@writes
@blp.arguments(schemas.TicketUpdate)
@blp.response(200, schemas.TicketOut)
def update_ticket(data, ticket_id: int):
    user = require("tickets:write")
    ticket = visible_ticket(ticket_id, user)
    if not user.is_agent:
        raise Problem(403, "Only staff change a ticket's properties.")
    check_if_match(etag_of(ticket))
    try:
        tags = (agent_services.parse_tags(" ".join(data["tags"])) if "tags" in data else None)
        agent_services.apply_changes(ticket, agent_services.Changes(
            status=Status(data["status"]) if "status" in data else None,
            priority=Priority(data["priority"]) if "priority" in data else None,
            type=TicketType(data["type"]) if "type" in data else None,
            assignee_id=data.get("assignee_id"), group_id=data.get("group_id"), tags=tags,
        ), user)
    except agent_services.ActionError as exc:
        raise Problem(422, str(exc)) from None
    return _with_etag(ticket, user)


@blp.route("/tickets/<int:ticket_id>/messages", methods=["GET"])
@blp.doc(tags=TAG, summary="The public conversation, oldest first")
@blp.response(200, schemas.MessageList)
def list_messages(ticket_id: int):
    user = require("tickets:read")
    ticket = visible_ticket(ticket_id, user)
    return {"data": [rep.message(m) for m in ticket_services.public_messages(ticket)]}


def uploads(attachments: list[dict]) -> list[FileStorage]:
    """Base64 attachments as the uploads the web forms hand to the same services (content
    checks, size limits and private storage happen there)."""
    files = []
    for item in attachments:
        try:
            content = base64.b64decode(item["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise Problem(422, "The attachment is not valid base64.", errors=[
                {"field": "attachments", "message": f"{item['filename']}: not base64"}]) from None
        files.append(FileStorage(io.BytesIO(content), filename=item["filename"]))
    return files


@blp.route("/tickets/<int:ticket_id>/messages", methods=["POST"])
@blp.doc(tags=TAG, summary="Add a public reply (emails the other side, as in the web UI)")
@writes
@blp.arguments(schemas.MessageCreate)
@blp.response(201, schemas.MessageOut)
def create_message(data, ticket_id: int):
    user = require("tickets:write")
    ticket = visible_ticket(ticket_id, user)
    try:
        if user.is_agent:
            message = agent_services.reply(
                ticket, user, data["body"], internal=False,
                new_status=Status(data["status"]) if "status" in data else None,
                files=uploads(data["attachments"]))
        else:
            if "status" in data:
                raise Problem(403, "Only staff set the status with a reply.")
            message, _files, _created = ticket_services.add_customer_reply(
                ticket, Viewer(user, user.email, user.name), data["body"],
                uploads(data["attachments"]))
            message.channel = Channel.API
    except (agent_services.ActionError, ticket_services.TicketError, AttachmentError,
            TransitionError) as exc:
        raise Problem(422, str(exc)) from None
    db.session.flush()
    return rep.message(message), 201


@blp.route("/tickets/<int:ticket_id>/notes", methods=["GET"])
@blp.doc(tags=TAG, summary="Internal notes (staff only)")
@blp.response(200, schemas.MessageList)
def list_notes(ticket_id: int):
    user = require("tickets:read", staff=True)
    visible_ticket(ticket_id, user)
    notes = db.session.scalars(
        select(Message).where(Message.ticket_id == ticket_id, Message.internal.is_(True))
        .options(selectinload(Message.attachments)).order_by(Message.created_at, Message.id))
    return {"data": [rep.message(m) for m in notes]}


@blp.route("/tickets/<int:ticket_id>/notes", methods=["POST"])
@blp.doc(tags=TAG, summary="Add an internal note (staff only)")
@writes
@blp.arguments(schemas.NoteCreate)
@blp.response(201, schemas.MessageOut)
def create_note(data, ticket_id: int):
    user = require("tickets:write", staff=True)
    ticket = visible_ticket(ticket_id, user)
    try:
        message = agent_services.reply(ticket, user, data["body"], internal=True,
                                       files=uploads(data["attachments"]))
    except (agent_services.ActionError, AttachmentError) as exc:
        raise Problem(422, str(exc)) from None
    return rep.message(message), 201


@blp.route("/tickets/<int:ticket_id>/events", methods=["GET"])
@blp.doc(tags=TAG, summary="The timeline (customers: the events the customer side shows)")
@blp.response(200, schemas.EventList)
def list_events(ticket_id: int):
    user = require("tickets:read")
    visible_ticket(ticket_id, user)
    stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
    if not user.is_agent:
        stmt = stmt.where(TicketEvent.public.is_(True),
                          TicketEvent.kind.in_(PUBLIC_EVENT_KINDS))
    events = db.session.scalars(stmt.options(selectinload(TicketEvent.actor))
                                .order_by(TicketEvent.created_at, TicketEvent.id))
    return {"data": [rep.event(e) for e in events]}


@blp.route("/csat", methods=["GET"])
@blp.doc(tags=TAG, summary="CSAT ratings, newest first (staff)")
@blp.arguments(schemas.PageArgs, location="query", as_kwargs=True)
@blp.response(200, schemas.RatingPage)
def list_ratings(cursor=None, limit=25):
    require("tickets:read", staff=True)
    stmt = select(Ticket).where(Ticket.csat_at.is_not(None))
    rows, next_cursor = keyset_page(stmt, Ticket.csat_at, Ticket.id, cursor=cursor, limit=limit)
    data = [{"ticket_id": t.id, "reference": t.reference, "rating": t.csat_rating,
             "comment": t.csat_comment, "rated_at": rep.iso(t.csat_at)} for t in rows]
    return page_body(data, next_cursor, "api.list_ratings")


@blp.route("/tickets/<int:ticket_id>/attachments/<int:attachment_id>", methods=["GET"])
@blp.doc(tags=TAG, summary="Download an attachment (customers: public messages' files only)",
         responses={"200": {"description": "The file, always as a download", "content": {
             "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
def download_attachment(ticket_id: int, attachment_id: int):
    user = require("tickets:read")
    ticket = visible_ticket(ticket_id, user)
    attachment = db.session.get(Attachment, attachment_id)
    if (attachment is None or attachment.ticket_id != ticket.id or attachment.message is None
            or (attachment.message.internal and not user.is_agent)):
        raise not_found("attachment")
    path = stored_path(attachment)
    if not path.is_file():
        raise not_found("attachment")
    response = send_file(path, mimetype=attachment.content_type, as_attachment=True,
                         download_name=attachment.filename, max_age=0)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
