"""Reading a raw message: headers that cannot break us, the text a reader should see,
attachments, and whether the mail was written by a machine.

Parsing uses the standard library's `policy.default` (header objects with a real address
parser: `email.utils.getaddresses` misparses some addresses before Python 3.12.x, CVE-2023-27043).
Nothing here raises on bad input: undecodable headers and bodies are replaced, not fatal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser

from mailparser_reply import EmailReplyParser

from portal.tickets.links import normalize

# The line every ticket notification carries; the reply parser keeps only what is above it.
REPLY_MARKER = "##- Please type your reply above this line -##"
QUOTE_LANGUAGES = ["en", "de", "fr", "es", "nl", "it", "sv", "da", "pl", "cs"]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MESSAGE_IDS = re.compile(r"<[^<>\s]{1,250}>")
_ROBOT_SENDERS = re.compile(r"^(mailer-daemon|postmaster)@", re.I)
_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_MAX_PARTS = 200
_SIGNATURE_DELIMITER = re.compile(r"^-- $", re.M)


def read(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def read_headers(raw: bytes) -> EmailMessage:
    return BytesHeaderParser(policy=policy.default).parsebytes(raw)


def clean_text(text: str) -> str:
    """Text safe to store and show: no NUL or control characters, Unix line ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).replace("\ufffd\ufffd", "\ufffd")


def header(msg: EmailMessage, name: str) -> str:
    """A header's decoded value on one line, or "" (never raises on malformed headers)."""
    try:
        value = msg.get(name)
    except Exception:  # a header the parser cannot make sense of counts as absent
        return ""
    if value is None:
        return ""
    return " ".join(clean_text(str(value)).split())


def addresses(msg: EmailMessage, *names: str) -> list[tuple[str, str]]:
    """(display name, normalised address) for every address in these headers."""
    found = []
    for name in names:
        try:
            values = msg.get_all(name) or []
        except Exception:  # noqa: S112 - an unreadable header holds no address we can use
            continue
        for value in values:
            try:
                parsed = list(getattr(value, "addresses", ()))
            except Exception:  # noqa: S112 - as above
                continue
            for address in parsed:
                spec = normalize(address.addr_spec or "")
                if "@" in spec and " " not in spec and len(spec) <= 254:
                    found.append((clean_text(address.display_name or "").strip(), spec))
    return found


def sender(msg: EmailMessage) -> tuple[str, str] | None:
    found = addresses(msg, "From") or addresses(msg, "Sender")
    return found[0] if found else None


def message_ids(value: str) -> list[str]:
    return _MESSAGE_IDS.findall(value or "")


def split_head(raw: bytes) -> tuple[EmailMessage, bytes]:
    """(parsed headers, body bytes). Message-ID and body are what stay the same when a
    message is delivered twice (relays add Received headers, the body does not change)."""
    head = read_headers(raw)
    for separator in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(separator)
        if at >= 0:
            return head, raw[at + len(separator):]
    return head, b""


# --- machines, not people --------------------------------------------------------------------


def is_bounce(msg: EmailMessage) -> bool:
    who = sender(msg)
    return (
        msg.get_content_type() == "multipart/report"
        or bool(who and _ROBOT_SENDERS.match(who[1]))
        or bool(header(msg, "X-Failed-Recipients"))
    )


def automatic_reason(msg: EmailMessage) -> str | None:
    """Why this message was sent by a machine (auto-reply, list, report), or None.

    Such mail never opens a ticket and never gets an answer (RFC 3834), which is what keeps
    two auto-responders from mailing each other forever."""
    auto = header(msg, "Auto-Submitted").lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"automatic message (Auto-Submitted: {auto[:40]})"
    precedence = header(msg, "Precedence").lower()
    if precedence in _BULK_PRECEDENCE:
        return f"bulk or list mail (Precedence: {precedence})"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        if header(msg, name):
            return f"automatic reply ({name})"
    if header(msg, "List-Id"):
        return "mailing-list mail (List-Id)"
    if msg.get_content_type() == "multipart/report":
        return "delivery or read report"
    who = sender(msg)
    if who and _ROBOT_SENDERS.match(who[1]):
        return f"mail from {who[1]}"
    return None


def dmarc_failed(msg: EmailMessage, authserv_id: str) -> bool:
    """True when our trusted receiving server recorded `dmarc=fail` for this message.

    Only Authentication-Results from `authserv_id` count: anyone can write that header."""
    if not authserv_id:
        return False
    for value in msg.get_all("Authentication-Results") or []:
        text = " ".join(str(value).split())
        served_by = text.split(";", 1)[0].strip().split()[0:1]
        if served_by and served_by[0].lower() == authserv_id.lower() and re.search(
            r"\bdmarc\s*=\s*fail\b", text, re.I
        ):
            return True
    return False


# --- what a reader sees ---------------------------------------------------------------------


@dataclass
class Part:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Content:
    text: str  # the whole message as text (quoted history included)
    reply: str  # only what the sender wrote this time
    attachments: list[Part] = field(default_factory=list)


def _decoded(part: EmailMessage) -> str:
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, ValueError, AssertionError, KeyError):
        pass
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except (LookupError, ValueError):  # an unknown or malformed charset name
        return payload.decode("utf-8", errors="replace")


def html_to_text(html: str) -> str:
    """A real HTML renderer (inscriptis): tables, lists and line breaks survive, scripts and
    styles do not. Imported here: with lxml it takes 8 MB in every process that imports it,
    and only the processes reading mail need it."""
    from inscriptis import get_text

    return get_text(html)


def _body_text(part: EmailMessage | None) -> str:
    if part is None:
        return ""
    text = _decoded(part)
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    return clean_text(text).strip()


def _inline_name(part: EmailMessage, index: int) -> str:
    subtype = part.get_content_subtype()
    extension = {"jpeg": "jpg", "pjpeg": "jpg"}.get(subtype, subtype)
    return f"inline-image-{index}.{extension or 'bin'}"


def _body_part(msg: EmailMessage) -> EmailMessage | None:
    try:
        return msg.get_body(preferencelist=("plain", "html"))
    except Exception:
        return None


def extract(msg: EmailMessage) -> Content:
    """The text to show (the plain part when there is one, else the HTML rendered as text),
    what the sender wrote this time, attachments (inline `cid:` images included), and
    forwarded messages' text appended."""
    body = _body_part(msg)
    text = _body_text(body)
    attachments: list[Part] = []
    skipped = {id(body)}
    inline_count = 0
    for count, part in enumerate(msg.walk()):
        if count > _MAX_PARTS:
            break
        if id(part) in skipped:
            continue
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()[0] if part.get_payload() else None
            if isinstance(inner, EmailMessage):
                inner_body = _body_part(inner)
                skipped.add(id(inner_body))
                text += (
                    "\n\n---------- Forwarded message ----------\n"
                    f"From: {header(inner, 'From')}\nDate: {header(inner, 'Date')}\n"
                    f"Subject: {header(inner, 'Subject')}\n\n{_body_text(inner_body)}"
                )
            continue
        if part.is_multipart():
            continue
        filename = None
        try:
            filename = part.get_filename()
        except Exception:
            filename = "attachment"
        inline_image = ctype.startswith("image/") and part.get("Content-ID")
        if not filename and not inline_image:
            if part.get_content_disposition() == "attachment":
                filename = "attachment"
            else:
                continue  # an alternative text of the body
        if not filename:
            inline_count += 1
            filename = _inline_name(part, inline_count)
        data = part.get_payload(decode=True) or b""
        attachments.append(Part(clean_text(filename), ctype, data))
    return Content(text=text, reply=reply_text(text), attachments=attachments)


def reply_text(text: str) -> str:
    """What the sender wrote this time: above our marker, without quoted history or the
    signature (mail-parser-reply, which knows many clients and languages)."""
    at = text.find(REPLY_MARKER[:20])
    if at >= 0:  # keep the lines before the marker's line (quoted or not)
        text = text[: text.rfind("\n", 0, at) + 1]
    text = _SIGNATURE_DELIMITER.split(text, 1)[0]  # the standard "-- " line (RFC 3676)
    try:
        reply = EmailReplyParser(languages=list(QUOTE_LANGUAGES)).parse_reply(text=text)
    except Exception:  # a parser failure keeps the whole text rather than losing any
        reply = None
    return (reply or text).strip()
