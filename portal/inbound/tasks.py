"""Inbound jobs: process one stored message; poll the IMAP mailbox once a minute."""

from datetime import timedelta

from flask import current_app

from portal.inbound import services
from portal.jobs import job, scheduled


@job(services.PROCESS_JOB, max_attempts=3, base_delay=30.0)
def process(payload: dict) -> None:
    # Ticket emails build their links with url_for, which needs a request: a worker has
    # none, so give it one on the public BASE_URL.
    base = current_app.config["BASE_URL"].rstrip("/")
    with current_app.test_request_context("/", base_url=base):
        services.process(int(payload["id"]), release=bool(payload.get("release")))


@scheduled("inbound.imap_poll", every=timedelta(minutes=1))
def poll_imap() -> None:
    if current_app.config["MAIL_IMAP_URL"]:
        # Imported here: only a jobs worker polls, and imapclient (with imaplib) is 0.6 MB
        # of every web worker that imports it.
        from portal.inbound import imap

        imap.poll(current_app.config["MAIL_IMAP_URL"])
