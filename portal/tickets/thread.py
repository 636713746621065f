"""A ticket's conversation as rows: what the ticket pages show of each message and its files.

Read as rows, not entities (loading them as entities cost more than rendering them), in one
statement with the files joined, or as a JSON column of another statement
(`portal.db.json_rows`): a statement fewer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select

from portal.db import rows_from_json
from portal.tickets.models import Attachment, Message


class ThreadAttachment(NamedTuple):
    id: int
    filename: str
    size: int


class ThreadMessage(NamedTuple):
    """One entry of the conversation as the ticket pages show it."""

    id: int
    author_name: str
    from_agent: bool
    internal: bool
    body: str
    created_at: datetime
    attachments: list[ThreadAttachment]


THREAD_ORDER = (Message.created_at, Message.id, Attachment.id)
_COLUMNS = (Message.id, Message.author_name, Message.from_agent, Message.internal, Message.body,
            Message.created_at, Attachment.id, Attachment.filename, Attachment.size)
# The whole conversation (agents), and what customers see of it: never an internal note.
THREAD = (
    select(*_COLUMNS)
    .outerjoin(Attachment, Attachment.message_id == Message.id)
    .where(Message.ticket_id == bindparam("ticket_id"))
    .order_by(*THREAD_ORDER)
)
PUBLIC_THREAD = THREAD.where(Message.internal.is_(False))


def thread_of(rows: Iterable) -> list[ThreadMessage]:
    """Messages from rows of THREAD's columns (a message once per file)."""
    messages: list[ThreadMessage] = []
    for *fields, file_id, filename, size in rows:
        if not messages or messages[-1].id != fields[0]:
            messages.append(ThreadMessage(*fields, attachments=[]))
        if file_id is not None:
            messages[-1].attachments.append(ThreadAttachment(file_id, filename, size))
    return messages


def thread_from_json(rows: list[list]) -> list[ThreadMessage]:
    """Messages from a `json_rows(THREAD, THREAD_ORDER, …)` column (times come as ISO text,
    booleans as 0/1 from SQLite)."""
    return thread_of((message_id, author_name, bool(from_agent), bool(internal), body,
                      datetime.fromisoformat(created_at), *file)
                     for message_id, author_name, from_agent, internal, body, created_at, *file
                     in rows_from_json(rows))
