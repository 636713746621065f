"""Domain events other modules subscribe to, so domains stay decoupled."""

from blinker import Namespace

_signals = Namespace()

# Sent with the User whose email address was just confirmed (tickets claims visitor tickets).
email_confirmed = _signals.signal("email-confirmed")
