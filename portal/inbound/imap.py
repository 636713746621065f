"""IMAP polling: fetch unseen messages, store each, and only then mark or move it.

A message is flagged \\Seen (or moved to MAIL_IMAP_DONE_FOLDER) after its row is committed,
so a crash between the two at worst fetches it again, and storing is idempotent.
"""

from __future__ import annotations

import logging
import ssl
from urllib.parse import unquote, urlsplit

from flask import current_app
from imapclient import IMAPClient

from portal.inbound import services

log = logging.getLogger(__name__)
BATCH = 50
# A mail server on this machine may be reached without TLS; any other needs imaps or STARTTLS.
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _connect(url: str) -> tuple[IMAPClient, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps"):
        raise ValueError("MAIL_IMAP_URL must start with imap:// or imaps://")
    secure = parts.scheme == "imaps"
    client = IMAPClient(parts.hostname, port=parts.port or (993 if secure else 143),
                        ssl=secure, ssl_context=ssl.create_default_context() if secure else None,
                        timeout=30)
    if not secure and parts.hostname not in LOOPBACK:
        client.starttls(ssl.create_default_context())  # never send a password in clear
    client.login(unquote(parts.username or ""), unquote(parts.password or ""))
    return client, unquote(parts.path.lstrip("/")) or "INBOX"


def poll(url: str) -> int:
    """Store up to BATCH unseen messages; returns how many were stored."""
    client, folder = _connect(url)
    done_folder = current_app.config["MAIL_IMAP_DONE_FOLDER"]
    stored = 0
    try:
        client.select_folder(folder)
        for uid in client.search(["UNSEEN"])[:BATCH]:
            fetched = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {})
            raw = fetched.get(b"BODY[]")
            if raw is None:
                continue
            services.receive(raw, "imap")  # committed before the mailbox is touched
            stored += 1
            if done_folder:
                client.move([uid], done_folder)
            else:
                client.add_flags([uid], [b"\\Seen"])
    finally:
        try:
            client.logout()
        except Exception:  # the connection is gone already; nothing more to do
            log.debug("IMAP logout failed", exc_info=True)
    return stored
