"""A ticket's conversation as rows: what the ticket pages show of each message and its files.

Read as rows, not entities (loading them as entities cost more than rendering them), in one
statement with the files joined; on PostgreSQL also as a JSON column of another statement
(`portal.db.json_rows`), one round trip fewer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select

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
    """Messages from `json_rows(THREAD, THREAD_ORDER)` (times come as ISO text)."""
    return thread_of((*row[:5], datetime.fromisoformat(row[5]), *row[6:]) for row in rows)
