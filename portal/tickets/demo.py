"""Demo tickets (filled in by the tickets work)."""


def seed_tickets(customer, agent) -> None:
    """Create demo tickets in several states."""
