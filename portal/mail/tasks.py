"""The outbox's send job: retried with backoff (30 s doubling to an hour) for a day."""

from portal.jobs import job
from portal.mail.services import SEND_JOB, send_outbox_message


@job(SEND_JOB, max_attempts=60, base_delay=30.0, max_delay=3600.0)
def send(payload: dict) -> None:
    send_outbox_message(payload["message_id"])
