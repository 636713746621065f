"""Inbound mail benchmark: store N mixed messages (new requests from the test corpus, replies
that thread by the subject, auto-replies, bounces), then process them with the real worker.

    python bench/inbound_mail.py --messages 1000
    python bench/inbound_mail.py --messages 200 --pipe 20     # a modest run

Storing is timed through `portal.inbound.services.receive`, the call `flask mail receive`
makes once the app is up; `--pipe K` also runs K messages through the real
`flask --app app mail receive` subprocess (app start-up included) and reports its p95.
Semantic ranking is off (processing time excludes embedding). Ends with one line:
RESULT messages=<n> stored_per_s=<x> processed_per_s=<x> p95_store_ms=<x> pipe_p95_ms=<x>
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402

CORPUS = ROOT / "tests" / "inbound" / "corpus"
NEW = ["gmail_new_request.eml", "thunderbird_attachments.eml", "html_only.eml",
       "nested_inline_image.eml", "forwarded_as_attachment.eml", "encoded_headers.eml",
       "outlook_html_reply.eml", "apple_mail_reply.eml"]
NOISE = ["outlook_out_of_office.eml", "vacation_precedence.eml", "mailing_list.eml",
         "bounce_postfix.eml"]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0]


def mixed_messages(count: int, rng: random.Random) -> list[bytes]:
    """Unique messages: 70 % new requests from 50 senders, 20 % replies by subject
    reference, 10 % auto-replies and bounces."""
    messages = []
    for n in range(count):
        roll = rng.random()
        if roll < 0.7 or n < 20:
            raw = (CORPUS / rng.choice(NEW)).read_bytes()
            sender = f"customer{rng.randrange(50)}@example.org".encode()
            raw = raw.replace(b"Message-ID: <", b"Message-ID: <b%d." % n, 1)
            raw = raw.replace(b"Message-Id: <", b"Message-Id: <b%d." % n, 1)
            head, sep, body = raw.partition(b"\n\n")
            lines = [line for line in head.split(b"\n") if not line.lower().startswith(b"from:")]
            raw = b"From: Bench <" + sender + b">\n" + b"\n".join(lines) + sep + body
        elif roll < 0.9:
            ticket = rng.randrange(1, max(2, n // 2))
            sender = f"customer{rng.randrange(50)}@example.org"
            raw = (f"From: {sender}\nTo: support@localhost\nSubject: Re: [TKT-{1000 + ticket}] "
                   f"update\nMessage-ID: <reply{n}@example.org>\n\nStill happening ({n}).\n"
                   ).encode()
        else:
            raw = (CORPUS / rng.choice(NOISE)).read_bytes().replace(b"<", b"<n%d." % n, 1)
        messages.append(raw + b"\n" + str(n).encode() + b"\n")
    return messages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--pipe", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(7)
    folder = Path(tempfile.mkdtemp(prefix="bench-inbound-"))
    config = {"INSTANCE_PATH": str(folder), "SECRET_KEY": "bench", "SEMANTIC_SEARCH": False,
              "DATABASE_URL": f"sqlite:///{folder / 'portal.sqlite3'}",
              "MAIL_SENDER_LIMIT_PER_HOUR": 10_000}
    app = create_app(config)
    from portal.inbound import services
    from portal.inbound.models import InboundMessage
    from portal.jobs.worker import Worker
    from portal.migrate import upgrade

    messages = mixed_messages(args.messages, rng)
    with app.app_context():
        upgrade(app)
        store_ms = []
        started = time.perf_counter()
        for raw in messages:
            t0 = time.perf_counter()
            services.receive(raw, "pipe")
            store_ms.append((time.perf_counter() - t0) * 1000)
        store_s = time.perf_counter() - started

        started = time.perf_counter()
        Worker(app, name="bench").run(burst=True)
        process_s = time.perf_counter() - started
        db.session.expire_all()
        by_status = dict(db.session.execute(select(InboundMessage.status, func.count())
                                            .group_by(InboundMessage.status)).all())
    print(f"stored {len(messages)} in {store_s:.1f} s; processed (incl. outgoing mail "
          f"sending to instance/mail) in {process_s:.1f} s; statuses {by_status}")

    pipe_ms = []
    env = {**os.environ, "PORTAL_INSTANCE_PATH": str(folder), "PORTAL_SECRET_KEY": "bench",
           "PORTAL_DATABASE_URL": config["DATABASE_URL"], "PORTAL_SEMANTIC_SEARCH": "false"}
    flask = Path(sys.executable).with_name("flask")
    for raw in mixed_messages(args.pipe, random.Random(99)):
        raw = raw.replace(b"Message-ID: <", b"Message-ID: <pipe", 1)
        t0 = time.perf_counter()
        subprocess.run([str(flask), "--app", "app", "mail", "receive"], input=raw, cwd=ROOT,  # noqa: S603
                       env=env, check=True, capture_output=True)
        pipe_ms.append((time.perf_counter() - t0) * 1000)
    print(f"RESULT messages={len(messages)} stored_per_s={len(messages) / store_s:.0f} "
          f"processed_per_s={len(messages) / process_s:.1f} p95_store_ms={p95(store_ms):.1f} "
          f"pipe_p95_ms={p95(pipe_ms) if pipe_ms else 0:.0f}")


if __name__ == "__main__":
    main()
