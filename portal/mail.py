"""All outgoing mail goes through `send_mail`.

With `PORTAL_MAIL_SERVER` set, messages go out by SMTP. Without it (development), each message
is written to `instance/mail/` as an .eml file and the path is logged.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from flask import current_app, render_template

logger = logging.getLogger(__name__)


def absolute_url(endpoint: str, **values) -> str:
    """A link for an email: the configured public BASE_URL, not the host of this request.

    Works without a request too (CLI jobs that send mail).
    """
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return current_app.config["BASE_URL"].rstrip("/") + path


def build_message(to: list[str] | str, subject: str, text: str, html: str | None = None):
    cfg = current_app.config
    msg = EmailMessage()
    msg["From"] = cfg["MAIL_SENDER"]
    msg["To"] = ", ".join([to] if isinstance(to, str) else to)
    # One printable line: CR/LF in a header raises (and would inject headers otherwise).
    msg["Subject"] = " ".join("".join(c if c.isprintable() else " " for c in subject).split())
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="portal.local")
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def send_mail(to: list[str] | str, subject: str, template: str, **context) -> None:
    """Render `email/<template>.txt` (and `.html` when it exists) and send it.

    Failures are logged, never raised: a lost email must not lose the change that caused it.
    """
    text = render_template(f"email/{template}.txt", **context)
    html = None
    html_name = f"email/{template}.html"
    if html_name in current_app.jinja_env.list_templates():
        html = render_template(html_name, **context)
    msg = build_message(to, subject, text, html)
    try:
        deliver(msg)
    except (OSError, smtplib.SMTPException) as exc:
        logger.error("Mail to %s (%s) failed: %s", msg["To"], subject, exc.__class__.__name__)


def deliver(msg: EmailMessage) -> None:
    cfg = current_app.config
    if not cfg["MAIL_SERVER"]:
        folder = Path(cfg["MAIL_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}.eml"
        path.write_bytes(bytes(msg))
        logger.info("Mail to %s written to %s", msg["To"], path)
        return
    smtp_class = smtplib.SMTP_SSL if cfg["MAIL_USE_SSL"] else smtplib.SMTP
    with smtp_class(cfg["MAIL_SERVER"], int(cfg["MAIL_PORT"]), timeout=10) as smtp:
        if cfg["MAIL_USE_TLS"]:
            smtp.starttls(context=ssl.create_default_context())
        if cfg["MAIL_USERNAME"]:
            smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"])
        smtp.send_message(msg)
    logger.info("Mail to %s sent: %s", msg["To"], msg["Subject"])
