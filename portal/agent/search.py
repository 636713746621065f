"""Full-text search for the agents' queue: ticket subject, requester name and email, and every
message body (internal notes included: only agents search here).

SQLite answers from the FTS5 table `fts_tickets` (one document per ticket), PostgreSQL from
GIN indexes on `to_tsvector` expressions of tickets and messages (both made by migration
0004_agent_search). Every word of the search must occur, as a word or a word's beginning,
somewhere in the ticket: its own fields or any of its messages.
"""

from __future__ import annotations

import re

from sqlalchemy import bindparam, intersect, literal_column, select, text, union
from sqlalchemy.sql.elements import ColumnElement

from portal.extensions import db
from portal.tickets.models import Message, Ticket

WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 12

# Must stay identical to the index expressions in migration 0004_agent_search.
PG_TICKET_TEXT = (
    "to_tsvector('simple'::regconfig, regexp_replace(tickets.subject || ' ' || "
    "tickets.requester_name || ' ' || tickets.requester_email, '[^[:alnum:]]+', ' ', 'g'))"
)
PG_MESSAGE_TEXT = (
    "to_tsvector('simple'::regconfig, regexp_replace(messages.body, '[^[:alnum:]]+', ' ', 'g'))"
)


def search_words(query: str) -> list[str]:
    """The words of a search as the tokenizers see them (letters and digits), lower-cased."""
    return [w.lower() for w in WORD.findall(query)][:MAX_WORDS]


def matching_ticket_ids(words: list[str]):
    """A select of the ids of tickets containing every word; answered from the text indexes."""
    if db.engine.dialect.name == "postgresql":
        # Per word: tickets whose own fields or any message have it; then every word's set.
        per_word = []
        for number, word in enumerate(words):
            query = bindparam(f"fts_word_{number}", f"'{word}':*")
            matches = f"@@ to_tsquery('simple'::regconfig, :fts_word_{number})"
            per_word.append(union(
                select(Ticket.id).where(text(f"{PG_TICKET_TEXT} {matches}").bindparams(query)),
                select(Message.ticket_id).where(
                    text(f"{PG_MESSAGE_TEXT} {matches}").bindparams(query)
                ),
            ))
        return per_word[0] if len(per_word) == 1 else intersect(*per_word)
    query = " ".join(f'"{w}"*' for w in words)
    return select(literal_column("rowid")).select_from(text("fts_tickets")).where(
        text("fts_tickets MATCH :fts_query").bindparams(fts_query=query)
    )


def text_condition(query: str, *, narrowed: bool = False) -> ColumnElement[bool] | None:
    """`Ticket.id IN (matches)`, or None when the search has no words at all.

    `narrowed`: other conditions already pick few tickets from an index (a view such as the
    open tickets). SQLite is then told not to look each match up by id (`+ 0`), so it walks
    that index and checks each ticket against the matches: for a common word, thousands of
    matches would otherwise each cost a table read."""
    words = search_words(query)
    if not words:
        return None
    ticket_id = Ticket.id + 0 if narrowed and db.engine.dialect.name == "sqlite" else Ticket.id
    return ticket_id.in_(matching_ticket_ids(words))
