"""Signed threading identifiers: the reply address and the Message-IDs of ticket mail.

Both carry the ticket id and an HMAC made with the portal's secret key (osTicket's idea),
so a reply can be matched to its ticket even when a mail provider rewrites Message-IDs, and
nobody can point a message at a ticket by guessing a number. The reply address is also bound
to the recipient it was sent to: `support+t42.<mac>@example.com` is only valid from that
recipient. Everything is lower-case hex, because mail servers may change the case of local
parts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from flask import current_app

from portal.tickets.links import normalize

_MAC_CHARS = 16
_REPLY_TOKEN = re.compile(r"\+t(\d{1,12})\.([0-9a-f]{16})@", re.I)
_MESSAGE_ID = re.compile(r"tkt(\d{1,12})\.([0-9a-f]{12})\.([0-9a-f]{16})@", re.I)
_ROOT_NONCE = "0" * 12


def _mac(*parts: object) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    text = "|".join(["mail-thread", *(str(p) for p in parts)]).encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()[:_MAC_CHARS]


def support_address() -> str:
    return normalize(current_app.config["SUPPORT_ADDRESS"])


def _split(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local.split("+", 1)[0], domain


def is_support_address(address: str) -> bool:
    """The support address itself or any plus-address of it."""
    return _split(normalize(address)) == _split(support_address())


def reply_address(ticket_id: int, recipient: str) -> str:
    local, domain = _split(support_address())
    return f"{local}+t{ticket_id}.{_mac('reply', ticket_id, normalize(recipient))}@{domain}"


def ticket_from_reply_address(addresses: Iterable[str], sender: str) -> int | None:
    """The ticket a signed reply address names, if it was issued to `sender`."""
    for address in addresses:
        match = _REPLY_TOKEN.search(address)
        if match and is_support_address(address):
            ticket_id, mac = int(match.group(1)), match.group(2).lower()
            if hmac.compare_digest(mac, _mac("reply", ticket_id, normalize(sender))):
                return ticket_id
    return None


def _domain() -> str:
    return current_app.config["MAIL_MESSAGE_ID_DOMAIN"]


def message_id(ticket_id: int) -> str:
    """A fresh Message-ID for one email about this ticket."""
    nonce = secrets.token_hex(6)
    return f"<tkt{ticket_id}.{nonce}.{_mac('msgid', ticket_id, nonce)}@{_domain()}>"


def thread_root(ticket_id: int) -> str:
    """The same Message-ID for a ticket every time: what all its emails refer to, so every
    client shows them as one conversation."""
    return f"<tkt{ticket_id}.{_ROOT_NONCE}.{_mac('msgid', ticket_id, _ROOT_NONCE)}@{_domain()}>"


def ticket_from_message_ids(ids: Iterable[str]) -> int | None:
    """The ticket named by the last of `ids` that is a Message-ID we signed (References are
    read from newest to oldest)."""
    for value in reversed(list(ids)):
        match = _MESSAGE_ID.search(value)
        if match:
            ticket_id, nonce, mac = int(match.group(1)), match.group(2).lower(), match.group(3)
            if hmac.compare_digest(mac.lower(), _mac("msgid", ticket_id, nonce)):
                return ticket_id
    return None


def signed_message_ids_in(text: str) -> list[str]:
    """Our Message-IDs quoted anywhere in a text (a bounce names the message it returns)."""
    return [f"<{m.group(0)}{_domain()}>" for m in _MESSAGE_ID.finditer(text)
            if ticket_from_message_ids([m.group(0)]) is not None]
