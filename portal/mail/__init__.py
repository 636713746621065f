"""All outgoing mail goes through `send_mail`, which queues it in the mail outbox.

`send_mail` renders the message now and writes one outbox row per recipient, plus a job to
send it, in the caller's transaction: a change that rolls back sends nothing, a committed one
always gets its email, and a slow or dead SMTP server never holds up a page. A worker sends it
(`portal.mail.tasks`): by SMTP when `PORTAL_MAIL_SERVER` is set, otherwise (development) as an
.eml file in `instance/mail/`.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import Blueprint, Flask, current_app, render_template

from portal.extensions import db

bp = Blueprint("mail", __name__, url_prefix="/admin/mail")


def absolute_url(endpoint: str, **values) -> str:
    """A link for an email: the configured public BASE_URL, not the host of this request.

    Works without a request too (jobs that send mail).
    """
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return current_app.config["BASE_URL"].rstrip("/") + path


def one_line(text: str) -> str:
    """A header value on one printable line: CR/LF would inject headers."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def build_message(to: str, subject: str, text: str, html: str | None = None,
                  message_id: str | None = None, *, reply_to: str | None = None,
                  in_reply_to: str | None = None,
                  references: list[str] | None = None) -> EmailMessage:
    """One email. Threading headers (In-Reply-To, References) and Reply-To are for ticket
    mail; values that may come from inbound mail are put on one line first."""
    cfg = current_app.config
    msg = EmailMessage()
    msg["From"] = cfg["MAIL_SENDER"]
    msg["To"] = one_line(to)
    msg["Subject"] = one_line(subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id or make_msgid(domain=cfg["MAIL_MESSAGE_ID_DOMAIN"])
    if reply_to:
        msg["Reply-To"] = one_line(reply_to)
    if in_reply_to:
        msg["In-Reply-To"] = one_line(in_reply_to)
    if references:
        msg["References"] = " ".join(one_line(r) for r in references[-20:])
    # Well-behaved auto-responders do not answer mail marked as automatic (RFC 3834).
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def send_mail(to: list[str] | str, subject: str, template: str, *, ticket=None,
              thread: bool = True, **context) -> None:
    """Render `email/<template>.txt` (and `.html` when it exists) and queue it for each
    recipient in the current transaction. `ticket` links the mail to a ticket, so agents
    see there when it could not be delivered; `thread` (customer conversation mail) also
    gives it signed threading headers and a Reply-To that brings answers back to the ticket:
    staff-only mail about a ticket passes False, so an answer to it never reaches the
    customer."""
    from portal.mail.services import queue_message

    if ticket is not None:
        context["ticket"] = ticket
    text = render_template(f"email/{template}.txt", **context)
    html = None
    html_name = f"email/{template}.html"
    if html_name in current_app.jinja_env.list_templates():
        html = render_template(html_name, **context)
    elif ticket is not None:  # every ticket email also in HTML, from the same text
        html = render_template("email/_ticket_text.html", text=text, subject=subject)
    for address in [to] if isinstance(to, str) else to:
        threading = _ticket_threading(ticket, address) if ticket is not None and thread else {}
        queue_message(build_message(address, subject, text, html, **threading), template,
                      recipient=one_line(address), ticket_id=getattr(ticket, "id", None),
                      session=db.session)


def _ticket_threading(ticket, address: str) -> dict:
    """Signed Message-ID, Reply-To and References for a ticket email (portal/inbound reads
    them back to put a reply on its ticket)."""
    from portal.inbound import threading_headers

    return threading_headers(ticket, address)


def init_app(app: Flask) -> None:
    from portal.mail import tasks, views  # noqa: F401

    app.register_blueprint(bp)
