"""Careless and hostile uploads on a customer reply: refused with a message or stored under a
safe name; never a 500, never a header or path a browser could be tricked by."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.tickets.models import Attachment

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
UPLOADS = [
    ("../../../etc/passwd.txt", b"root:x:0:0"),
    ("..\\..\\boot.ini.txt", b"[boot]"),
    ("a%0D%0AContent-Type: text/html.txt", b"header injection"),  # how browsers send CR/LF
    ("\u202etxt.exe", b"MZ\x90\x00"),
    ("x" * 500 + ".pdf", PDF),
    ("report.pdf", b""),
    ("notes.txt", b"\x00\x01\x02binary\xff\xfe"),
    ("utf16.txt", "hello".encode("utf-16")),
    ("page.txt", b"<!doctype html><script>alert(1)</script>"),
    ("image.png", b"<svg onload=alert(1)>"),
    (".pdf", PDF),
    ("  .  ", PDF),
    ("emoji 🔥.pdf", PDF),
    ("nul\x00byte.pdf", PDF),
]


@pytest.mark.parametrize("name,data", UPLOADS, ids=[repr(n[:20]) for n, _ in UPLOADS])
def test_odd_uploads_are_refused_or_stored_safely(app, world, name, data):
    client = world.client_for(world.owner)
    ref = world.ticket.reference
    before = set(db.session.scalars(select(Attachment.id)))
    response = client.post(f"/tickets/{ref}/reply", data={
        "body": "See attached", "attachments": [(io.BytesIO(data), name)],
    }, content_type="multipart/form-data")
    assert response.status_code in (303, 422), response.status_code
    db.session.expire_all()
    new = [a for a in db.session.scalars(select(Attachment)) if a.id not in before]
    if response.status_code == 422:
        assert not new  # nothing half-written
        assert 'class="field-error"' in response.get_data(as_text=True) or \
            "error" in response.get_data(as_text=True)
        return
    (attachment,) = new
    assert "/" not in attachment.filename and "\\" not in attachment.filename
    assert attachment.filename.isprintable() and len(attachment.filename) <= 130
    download = client.get(f"/tickets/{ref}/attachments/{attachment.id}/{attachment.filename}")
    assert download.status_code == 200
    disposition = download.headers["Content-Disposition"]
    download.close()
    assert disposition.startswith("attachment") and "\n" not in disposition
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in download.headers["Content-Security-Policy"]
    assert download.mimetype != "text/html"
