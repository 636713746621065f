"""The parser never raises on damaged mail: storing must not fail (an MTA would retry
forever) and processing must end with a readable outcome, not a traceback."""

from __future__ import annotations

import random

from portal.inbound import parsing

from .conftest import CORPUS

INSERTS = [b"=?utf-8?q?=0A?=", b"\x00", b"\r", b"<", b'"', b"@", b"\n\n",
           b"Content-Type: multipart/mixed; boundary=x\n", b"=?x-bad?B?AAA?=",
           b'Content-Type: text/plain; charset="ut\x00f"\n']


def damaged(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randrange(1, 20)):
        at = rng.randrange(len(data) or 1)
        roll = rng.random()
        if roll < 0.4:
            data[at:at + 1] = bytes([rng.randrange(256)])
        elif roll < 0.7:
            del data[at:at + rng.randrange(50)]
        else:
            data[at:at] = rng.choice(INSERTS)
    return bytes(data)


def test_damaged_messages_never_raise():
    rng = random.Random(12)
    originals = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    for _ in range(600):
        raw = damaged(rng, rng.choice(originals))
        head, _body = parsing.split_head(raw)
        parsing.header(head, "Message-ID")
        parsing.sender(head)
        msg = parsing.read(raw)
        parsing.is_bounce(msg)
        parsing.automatic_reason(msg)
        parsing.dmarc_failed(msg, "mx.example.com")
        parsing.addresses(msg, "To", "Cc", "Delivered-To")
        content = parsing.extract(msg)
        assert "\x00" not in content.text and "\x00" not in content.reply


def test_the_reply_marker_cuts_quoted_and_unquoted_history():
    quoted = ("Thanks!\n\nOn Mon, Support wrote:\n"
              "> ##- Please type your reply above this line -##\n> old")
    plain = "Fine now.\n##- Please type your reply above this line -##\nHello, we received"
    assert parsing.reply_text(quoted) == "Thanks!"
    assert parsing.reply_text(plain) == "Fine now."
