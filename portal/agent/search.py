"""Full-text search for the agents' queue: ticket subject, requester name and email, and every
message body (internal notes included: only agents search here).

SQLite answers from the FTS5 table `fts_tickets` (one document per ticket), PostgreSQL from
GIN indexes on `to_tsvector` expressions of tickets and messages (both made by migration
0004_agent_search). Every term of the search must occur somewhere in the ticket: its own
fields or any of its messages. A term is a word; a term joined by punctuation (`v2.3`) is a
phrase: its words must follow one another. (Taken apart, `example*` alone matched every
ticket.) Only the last word of the search may be a word's beginning (the agent may still be
typing it); the others, and any term of an address (`c4242@example`), are whole words: a
beginning reads the posting lists of every word it starts, and `example` starts every
requester's address (68 ms against 0.1 ms for the whole word, at 100,000 tickets).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from sqlalchemy import bindparam, intersect, literal_column, select, text, union
from sqlalchemy.sql.elements import ColumnElement

from portal.extensions import db
from portal.tickets.models import Message, Ticket

WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 12
FEW_MATCHES = 1000  # up to this many matching tickets are fetched once and looked up by id

# Must stay identical to the index expressions in migration 0004_agent_search.
PG_TICKET_TEXT = (
    "to_tsvector('simple'::regconfig, regexp_replace(tickets.subject || ' ' || "
    "tickets.requester_name || ' ' || tickets.requester_email, '[^[:alnum:]]+', ' ', 'g'))"
)
PG_MESSAGE_TEXT = (
    "to_tsvector('simple'::regconfig, regexp_replace(messages.body, '[^[:alnum:]]+', ' ', 'g'))"
)


class Term(NamedTuple):
    words: tuple[str, ...]
    prefix: bool  # its last word may be the beginning of a longer one


def search_terms(query: str) -> list[Term]:
    """The terms of a search, each the tuple of its words as the tokenizers see them (letters
    and digits), lower-cased: `c4242@example foo` -> [("c4242", "example"), ("foo",)]. Only
    the last term, and not one from an address, is a prefix."""
    terms = []
    for chunk in query.split():
        words = tuple(w.lower() for w in WORD.findall(chunk))
        if words:
            terms.append((words[:MAX_WORDS], "@" not in chunk))
    terms = terms[:MAX_WORDS]
    return [Term(words, address_free and number == len(terms) - 1)
            for number, (words, address_free) in enumerate(terms)]


def matching_ticket_ids(terms: list[Term]):
    """A select of the ids of tickets containing every term; answered from the text indexes."""
    if db.engine.dialect.name == "postgresql":
        # Per term: tickets whose own fields or any message have it; then every term's set.
        per_term = []
        for number, (words, prefix) in enumerate(terms):
            query = bindparam(f"fts_term_{number}", " <-> ".join(
                [f"'{w}'" for w in words[:-1]] + [f"'{words[-1]}'" + (":*" if prefix else "")]))
            matches = f"@@ to_tsquery('simple'::regconfig, :fts_term_{number})"
            per_term.append(union(
                select(Ticket.id).where(text(f"{PG_TICKET_TEXT} {matches}").bindparams(query)),
                select(Message.ticket_id).where(
                    text(f"{PG_MESSAGE_TEXT} {matches}").bindparams(query)
                ),
            ))
        return per_term[0] if len(per_term) == 1 else intersect(*per_term)
    query = " ".join(f'"{" ".join(words)}"' + ("*" if prefix else "") for words, prefix in terms)
    return select(literal_column("rowid")).select_from(text("fts_tickets")).where(
        text("fts_tickets MATCH :fts_query").bindparams(fts_query=query)
    )


def text_condition(query: str, *, narrowed: bool = False) -> ColumnElement[bool] | None:
    """`Ticket.id IN (matches)`, or None when the search has no words at all.

    The queue asks twice (the count, then the page): a search that matches few tickets is
    answered from the text index once, and both statements then look those tickets up by id.
    Otherwise the index is asked in a subquery, and `narrowed` means other conditions already
    pick few tickets from an index (a view such as the open tickets): SQLite is then told not
    to look each match up by id (`+ 0`), so it walks that index and checks each ticket against
    the matches: for a common word, thousands of matches would otherwise each cost a table
    read."""
    terms = search_terms(query)
    if not terms:
        return None
    matching = matching_ticket_ids(terms)
    few = db.session.scalars(matching.limit(FEW_MATCHES + 1)).all()
    if len(few) <= FEW_MATCHES:
        return Ticket.id.in_(few)
    ticket_id = Ticket.id + 0 if narrowed and db.engine.dialect.name == "sqlite" else Ticket.id
    return ticket_id.in_(matching)
