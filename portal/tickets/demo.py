"""Demo tickets: the category list and a dozen realistic requests in every status, with
threads (agent replies, an internal note) and one rated solved ticket."""

from __future__ import annotations

from datetime import timedelta

from portal.db import utcnow
from portal.extensions import db
from portal.tickets import lifecycle, services
from portal.tickets.models import Message, Priority, Status, TicketCategory, TicketType

CATEGORIES = ["Account & sign-in", "Billing & invoices", "Technical issue", "Feature request"]

# subject, type, category index, status, priority, days ago, thread after the first message:
# ("agent" | "customer" | "note", text)
DEMO_TICKETS = [
    ("Cannot sign in after resetting my password", TicketType.INCIDENT, 0, Status.NEW,
     Priority.HIGH, 0, "I reset my password an hour ago and now the sign-in page says my "
     "password is wrong.", []),
    ("Invoice INV-2291 charges VAT twice", TicketType.PROBLEM, 1, Status.OPEN, Priority.NORMAL, 2,
     "The October invoice lists VAT on the subtotal and again on the total.",
     [("agent", "Thanks for spotting this. I have asked our billing team to check the invoice "
                "template and will update you tomorrow."),
      ("note", "Billing says the template bug hit 14 invoices; credit notes on the way.")]),
    ("Export to CSV stops at 10,000 rows", TicketType.PROBLEM, 2, Status.PENDING, Priority.NORMAL,
     3, "When I export the orders report, the file always ends after 10,000 rows.",
     [("agent", "Could you tell us which date range you selected and send the export's first "
                "lines? That helps us reproduce it.")]),
    ("Please add my colleague to our account", TicketType.REQUEST, 0, Status.SOLVED,
     Priority.LOW, 6, "Could you give Jordan (jordan@example.com) access to our company account?",
     [("agent", "Done: Jordan now has access and received an invitation email."),
      ("customer", "Great, thank you!")]),
    ("Dark mode for the dashboard", TicketType.REQUEST, 3, Status.ON_HOLD, Priority.LOW, 12,
     "Our night shift would love a dark theme for the dashboard.",
     [("agent", "Thanks for the suggestion. Dark mode is planned for the next quarter; we have "
                "put your request on hold and will let you know when it ships.")]),
    ("Two-factor codes arrive late", TicketType.INCIDENT, 0, Status.CLOSED, Priority.HIGH, 30,
     "The SMS codes arrive after they have already expired.",
     [("agent", "Our SMS provider had delays this morning; it is fixed now. Codes arrive "
                "within seconds again."),
      ("customer", "Confirmed, working now.")]),
    ("Refund for duplicate payment", TicketType.REQUEST, 1, Status.SOLVED, Priority.NORMAL, 4,
     "I was charged twice for order 55812.",
     [("agent", "I have refunded the second payment. It shows on your statement within 5 "
                "working days.")]),
    ("Webhook deliveries time out", TicketType.INCIDENT, 2, Status.OPEN, Priority.URGENT, 1,
     "Since yesterday every webhook to our endpoint fails with a timeout.",
     [("agent", "We are looking into it. Could you confirm your endpoint answers within 10 "
                "seconds?"),
      ("customer", "It answers in under a second when we call it ourselves.")]),
    ("How do I change the billing email?", TicketType.QUESTION, 1, Status.CLOSED,
     Priority.LOW, 20, "Where can I change the address invoices are sent to?",
     [("agent", "Go to Settings › Billing › Invoice recipient and enter the new address.")]),
    ("API rate limit for the reports endpoint", TicketType.QUESTION, 2, Status.PENDING,
     Priority.NORMAL, 5, "What is the rate limit on /reports? We get 429s at night.",
     [("agent", "The limit is 60 requests a minute. Are your night jobs running in parallel?")]),
    ("Typo on the pricing page", TicketType.QUESTION, 3, Status.NEW, Priority.LOW, 0,
     "The pricing page says 'anual' instead of 'annual'.", []),
    ("Mobile app crashes when uploading photos", TicketType.INCIDENT, 2, Status.OPEN,
     Priority.HIGH, 2, "The iOS app closes as soon as I pick a photo to upload.",
     [("note", "Crash reports point at the new image resizer in 4.2.1."),
      ("agent", "Thanks, we found the cause and a fix ships in version 4.2.2 this week.")]),
]


def _categories() -> list[TicketCategory]:
    categories = [TicketCategory(name=name, position=i) for i, name in enumerate(CATEGORIES)]
    db.session.add_all(categories)
    db.session.flush()
    return categories


def _add_message(ticket, author, kind: str, text: str, when) -> None:
    db.session.add(Message(
        ticket=ticket, author=author, author_name=author.name, from_agent=kind != "customer",
        internal=kind == "note", body=text, created_at=when,
    ))
    if kind == "agent":
        ticket.public_reply_count += 1
        ticket.first_response_at = ticket.first_response_at or when
    lifecycle.record_event(ticket, "note" if kind == "note" else "reply", author)


def _walk_to(ticket, status: Status, agent) -> None:
    """Move through the state machine the way a real ticket would reach `status`."""
    path = {
        Status.NEW: [],
        Status.OPEN: [Status.OPEN],
        Status.PENDING: [Status.OPEN, Status.PENDING],
        Status.ON_HOLD: [Status.OPEN, Status.ON_HOLD],
        Status.SOLVED: [Status.OPEN, Status.SOLVED],
        Status.CLOSED: [Status.OPEN, Status.SOLVED, Status.CLOSED],
    }[status]
    for step in path:
        lifecycle.change_status(ticket, step, agent)


def seed_tickets(customer, agent) -> None:
    """Create the categories and the demo tickets (the caller commits)."""
    categories = _categories()
    now = utcnow()
    rated = False
    for (subject, kind, category, status, priority, days, first, thread) in DEMO_TICKETS:
        ticket, _ = services.create_ticket(services.NewTicket(
            subject=subject, description=first, type=kind, name=customer.name,
            email=customer.email, category=categories[category], requester=customer,
        ))
        ticket.priority = priority
        ticket.assignee = agent if status != Status.NEW else None
        start = now - timedelta(days=days, hours=3)
        ticket.created_at = start
        ticket.messages[0].created_at = start
        for i, (who, text) in enumerate(thread, start=1):
            author = customer if who == "customer" else agent
            _add_message(ticket, author, who, text, start + timedelta(hours=2 * i))
        _walk_to(ticket, status, agent)
        last = start + timedelta(hours=2 * len(thread))
        ticket.last_activity_at = ticket.updated_at = last
        ticket.solved_at = last if ticket.solved_at else None
        ticket.closed_at = last + timedelta(days=4) if ticket.closed_at else None
        if status == Status.SOLVED and not rated:
            ticket.csat_rating, ticket.csat_comment = "good", "Quick and friendly, thanks!"
            ticket.csat_at = ticket.last_activity_at
            lifecycle.record_event(ticket, "rating", customer, None, "good")
            rated = True
    db.session.flush()
