"""IMAP polling against a real Dovecot started for the test (Debian's dovecot-imapd; CI
installs it): messages are stored first, and only then flagged or moved."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from portal.extensions import db
from portal.inbound import imap, services
from portal.inbound.models import InboundMessage

from .conftest import corpus

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
pytestmark = pytest.mark.skipif(
    not Path(DOVECOT).exists() or os.geteuid() != 0,
    reason="needs Debian's dovecot-imapd and root (CI installs it)",
)
CONFIG = """
base_dir = {folder}/run
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={folder}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


@pytest.fixture
def dovecot():
    folder = Path(tempfile.mkdtemp(prefix="portal-dovecot-"))
    folder.chmod(0o755)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (folder / "dovecot.conf").write_text(CONFIG.format(folder=folder, port=port))
    (folder / "passwd").write_text("support:{PLAIN}imap-secret\n")
    # The app sets the process umask to 077; Dovecot's own users must read these.
    for name in ("dovecot.conf", "passwd"):
        (folder / name).chmod(0o644)
    (folder / "home").mkdir()
    shutil.chown(folder / "home", "dovecot", "dovecot")
    subprocess.run([DOVECOT, "-c", str(folder / "dovecot.conf")], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield port
    finally:
        subprocess.run([DOVECOT, "-c", str(folder / "dovecot.conf"), "stop"], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def mailbox(port: int) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=port, ssl=False)
    client.login("support", "imap-secret")
    return client


def stored() -> list[InboundMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def test_polling_stores_then_flags_each_message(app, dovecot):
    client = mailbox(dovecot)
    for name in ("gmail_new_request.eml", "html_only.eml"):
        client.append("INBOX", corpus(name).replace(b"\n", b"\r\n"))
    url = f"imap://support:imap-secret@127.0.0.1:{dovecot}/INBOX"
    db.session.commit()
    assert imap.poll(url) == 2
    assert [r.source for r in stored()] == ["imap", "imap"]
    client.select_folder("INBOX")
    assert client.search(["UNSEEN"]) == [] and len(client.search(["SEEN"])) == 2
    assert imap.poll(url) == 0  # nothing unseen is left: nothing stored twice
    client.logout()


def test_polling_moves_to_the_done_folder(app, dovecot):
    client = mailbox(dovecot)
    client.create_folder("Processed")
    client.append("INBOX", corpus("thunderbird_attachments.eml").replace(b"\n", b"\r\n"))
    app.config["MAIL_IMAP_DONE_FOLDER"] = "Processed"
    db.session.commit()
    assert imap.poll(f"imap://support:imap-secret@127.0.0.1:{dovecot}/INBOX") == 1
    client.select_folder("INBOX")
    assert client.search(["ALL"]) == []
    client.select_folder("Processed")
    assert len(client.search(["ALL"])) == 1
    client.logout()


def test_a_message_that_cannot_be_stored_stays_unseen(app, dovecot):
    client = mailbox(dovecot)
    client.append("INBOX", corpus("gmail_new_request.eml").replace(b"\n", b"\r\n"))
    app.config["MAIL_MAX_BYTES"] = "not a number"  # storing raises
    db.session.commit()
    with pytest.raises(services.StoreError):
        imap.poll(f"imap://support:imap-secret@127.0.0.1:{dovecot}/INBOX")
    client.select_folder("INBOX")
    assert len(client.search(["UNSEEN"])) == 1 and stored() == []
    client.logout()
