"""`flask mail receive` (one message on standard input, for an MTA pipe) and
`flask mail serve` (an SMTP listener for the support addresses)."""

from __future__ import annotations

import signal
import sys
import threading

import click
from flask import current_app
from flask.cli import AppGroup

from portal.inbound import services

mail_cli = AppGroup("mail", help="Inbound mail: receive one message, or listen for SMTP.")
EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries again later


@mail_cli.command("receive")
def receive() -> None:
    """Store one RFC 5322 message read from standard input; exit 75 when it cannot be."""
    try:
        raw = sys.stdin.buffer.read()
        if not raw.strip():
            raise services.StoreError("empty input: no message on standard input")
        row = services.receive(raw, "pipe")
    except Exception as exc:
        click.echo(f"mail receive: not stored, try again later: {exc}", err=True)
        sys.exit(EX_TEMPFAIL)
    click.echo(f"stored inbound message {row.id} ({row.status})")


@mail_cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2525, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Accept mail for the support address by SMTP; answers 250 only once it is stored.
    SIGTERM (a service manager) or SIGINT (Ctrl+C) stops it, as they stop a job worker; both
    are set here because a shell starts a background job with SIGINT ignored."""
    from portal.inbound.smtp import start_listener

    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    controller = start_listener(current_app._get_current_object(), host, port)
    try:
        click.echo(f"Listening for mail to {current_app.config['SUPPORT_ADDRESS']} "
                   f"on {host}:{port} (Ctrl+C stops)")
        stopped.wait()
    finally:
        controller.stop()
