"""The delivery job.

The job queue only retries a crashed worker (3 tries); the retry schedule over days is the
delivery's own (portal.webhooks.services.RETRY_DELAYS)."""


from portal.jobs import job
from portal.webhooks import services
from portal.webhooks.events import DELIVER_JOB


@job(DELIVER_JOB, max_attempts=3, base_delay=5.0, max_delay=60.0)
def deliver(payload: dict) -> None:
    services.attempt(payload["delivery_id"])

