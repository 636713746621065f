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

from sqlalchemy import bindparam, func, intersect, literal_column, select, text, union
from sqlalchemy.sql.elements import ColumnElement

from portal.extensions import db
from portal.tickets.models import Message, Ticket

WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 12
FEW_MATCHES = 1000  # up to this many matching tickets are fetched once and looked up by id
MANY_MATCHES = 10_000  # from here, all tickets in page order are walked (see ids_condition)

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


class Matches(NamedTuple):
    """How a tag's or a search's matches are checked, and how many there are as far as they
    were read: `count` exactly, or more than `count` when `more`."""

    condition: ColumnElement[bool]
    count: int
    more: bool


def text_condition(query: str, *, narrowed: bool = False,
                   in_order: bool = False) -> Matches | None:
    """`Ticket.id IN (matches)` (see ids_condition), or None when the search has no words."""
    terms = search_terms(query)
    if not terms:
        return None
    # The same terms as whole words match fewer tickets, and are read lazily, where a word's
    # beginning builds its whole list of matches first (`"printer"*` at 1,000,000 tickets:
    # 185,000 tickets, 10 ms for the first thousand, against 3 ms): when they already match
    # many, so does the search.
    fewer = (matching_ticket_ids([Term(words, False) for words, _prefix in terms])
             if terms[-1].prefix else None)
    return ids_condition(matching_ticket_ids(terms), narrowed=narrowed, in_order=in_order,
                         fewer=fewer)


def ids_condition(ids, *, narrowed: bool, in_order: bool = False,
                  fewer=None, probe: ColumnElement[bool] | None = None) -> Matches:
    """`Ticket.id IN (ids)` for a select of ticket ids (a search's or a tag's matches), written
    for the way the tickets are best checked against them.

    Up to FEW_MATCHES ids are fetched once and looked up by id. Otherwise the ids stay a
    subquery, and `narrowed` means other conditions pick few tickets from an index (a view
    such as the open tickets): SQLite is then told not to look each match up by id (`+ 0`),
    so it walks that index and checks each ticket against the matches (for a common word,
    thousands of matches would otherwise each cost a table read, and all be sorted).
    `in_order`: all tickets can be walked in the page's order (ix_tickets_due, the key);
    that walk stops after COUNT_CAP matches, so it is taken beyond MANY_MATCHES (for "invoice
    timeout", 27,000 matches at 1,000,000 tickets, it reads 37,000 index entries where looking
    the matches up read 27,000 table rows and sorted them); fewer are looked up by id.
    `fewer`: a select of some of the ids, cheaper to read; when it reaches as far, the
    matches are not read here. `probe`: the same check for one ticket (correlated, by index),
    taken instead of the subquery for a walk of all tickets that stops early: the subquery
    builds the list of every match first (a tag on 20,000 tickets: 7 ms; 50 probes: 1 ms)."""
    # The matches are counted as far as MANY_MATCHES when that walk is possible, by the
    # database (fetching 10,000 ids to count them cost 5-10 ms), and listed when few.
    reach = MANY_MATCHES if in_order and not narrowed else FEW_MATCHES
    matched = None
    if fewer is not None and _count(fewer, reach + 1) > reach:
        matched = reach + 1
    if matched is None:
        listed = db.session.scalars(ids.limit(FEW_MATCHES + 1)).all()
        if len(listed) <= FEW_MATCHES:
            return Matches(Ticket.id.in_(listed), len(listed), more=False)
        matched = _count(ids, reach + 1) if reach > FEW_MATCHES else len(listed)
    walk = narrowed or (in_order and matched > MANY_MATCHES)
    counted = Matches(Ticket.id.in_(ids), min(matched, reach), more=matched > reach)
    if walk and probe is not None and not narrowed:
        return counted._replace(condition=probe)
    if walk and db.engine.dialect.name == "sqlite":
        return counted._replace(condition=(Ticket.id + 0).in_(ids))
    return counted


def _count(ids, limit: int) -> int:
    """How many ids the select gives, counted up to `limit`."""
    return db.session.scalar(select(func.count()).select_from(ids.limit(limit).subquery()))
