"""Domain events other modules subscribe to, so domains stay decoupled."""

from blinker import Namespace

_signals = Namespace()

# Sent with the User whose email address was just confirmed (tickets claims visitor tickets).
email_confirmed = _signals.signal("email-confirmed")

# Sent with each TicketEvent as it is recorded (inside the change's transaction); webhooks
# turn them into outgoing events when that transaction commits.
ticket_event_recorded = _signals.signal("ticket-event-recorded")

# Sent with an Article when it becomes published (inside the change's transaction).
article_published = _signals.signal("article-published")

# Sent with each new Ticket once it and its first message are flushed (surges embeds it).
ticket_created = _signals.signal("ticket-created")

# Sent with a Surge the moment the scan raises it, in the scan's transaction (webhooks:
# `surge.detected`). Receivers must not commit.
surge_detected = _signals.signal("surge-detected")
