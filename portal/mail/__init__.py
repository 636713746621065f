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
                  message_id: str | None = None) -> EmailMessage:
    cfg = current_app.config
    msg = EmailMessage()
    msg["From"] = cfg["MAIL_SENDER"]
    msg["To"] = one_line(to)
    msg["Subject"] = one_line(subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id or make_msgid(domain=cfg["MAIL_MESSAGE_ID_DOMAIN"])
    # Well-behaved auto-responders do not answer mail marked as automatic (RFC 3834).
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def send_mail(to: list[str] | str, subject: str, template: str, *, ticket=None,
              **context) -> None:
    """Render `email/<template>.txt` (and `.html` when it exists) and queue it for each
    recipient in the current transaction. `ticket` links the mail to a ticket, so agents
    see there when it could not be delivered."""
    from portal.mail.services import queue_message

    if ticket is not None:
        context["ticket"] = ticket
    text = render_template(f"email/{template}.txt", **context)
    html = None
    html_name = f"email/{template}.html"
    if html_name in current_app.jinja_env.list_templates():
        html = render_template(html_name, **context)
    for address in [to] if isinstance(to, str) else to:
        queue_message(build_message(address, subject, text, html), template,
                      recipient=one_line(address), ticket_id=getattr(ticket, "id", None),
                      session=db.session)


def init_app(app: Flask) -> None:
    from portal.mail import tasks, views  # noqa: F401

    app.register_blueprint(bp)
