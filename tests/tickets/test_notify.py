import re

from portal.extensions import db
from portal.tickets import notify
from portal.tickets.lifecycle import change_status
from portal.tickets.models import Status


def _link(mailbox, msg, pattern=r"http://localhost(/tickets/link/\S+)"):
    return re.search(pattern, mailbox.text(msg)).group(1)


def test_public_reply_email_goes_to_requester_and_ccs_never_for_notes(
        app, customer, agent, make_ticket, agent_reply, mailbox):
    ticket = make_ticket(customer, ccs=["cc@example.com"])
    note = agent_reply(ticket, agent, body="SECRET note", internal=True)
    notify.notify_public_reply(ticket, note)
    reply = agent_reply(ticket, agent, body="Fixed on our side.")
    notify.notify_public_reply(ticket, reply)
    mails = mailbox.wait_for(2)
    assert sorted(m["X-Envelope-To"] for m in mails) == ["casey@example.com", "cc@example.com"]
    for mail in mails:
        assert mail["Subject"] == f"[{ticket.reference}] Re: {ticket.subject}"
        assert "Fixed on our side." in mailbox.text(mail)
        assert "SECRET" not in mailbox.text(mail)
    assert len(mailbox.messages) == 2


def test_cc_link_is_their_own_and_bound_to_one_ticket(app, client, customer, make_ticket,
                                                       mailbox):
    ticket = make_ticket(customer, ccs=["cc@example.com"])
    other = make_ticket(customer, subject="Other")
    notify.notify_ticket_created(ticket)
    cc_mail = next(m for m in mailbox.wait_for(2) if m["X-Envelope-To"] == "cc@example.com")
    client.get(_link(mailbox, cc_mail))
    assert client.get(f"/tickets/{ticket.reference}").status_code == 200
    assert client.get(f"/tickets/{other.reference}").status_code == 404


def test_solved_email_rating_links_work_through_the_token(app, client, customer, agent,
                                                          make_ticket, mailbox):
    ticket = make_ticket(customer)
    change_status(ticket, Status.SOLVED, agent)
    db.session.commit()
    notify.notify_solved(ticket)
    mail = mailbox.wait_for(1)[0]
    assert mail["Subject"] == f"[{ticket.reference}] Solved: {ticket.subject}"
    bad = _link(mailbox, mail, r"Bad, I'm unsatisfied:\s+http://localhost(\S+)")
    to_rate = client.get(bad)  # a signed-out browser: the token is the key
    assert to_rate.status_code == 302 and "/rate?rating=bad" in to_rate.headers["Location"]
    form = client.get(to_rate.headers["Location"]).get_data(as_text=True)
    assert re.search(r'checked[^>]*value="bad"|value="bad"[^>]*checked', form)
    assert ticket.csat_rating is None  # opening the link (or a mail scanner) rates nothing
    client.post(f"/tickets/{ticket.reference}/rate", data={"rating": "bad", "comment": "Slow"})
    assert ticket.csat_rating == "bad"


def test_merged_email_points_to_the_target(app, client, customer, make_ticket, mailbox):
    source = make_ticket(customer, subject="Duplicate")
    target = make_ticket(customer, subject="Original")
    source.merged_into_id = target.id
    db.session.commit()
    notify.notify_merged(source, target)
    mail = mailbox.wait_for(1)[0]
    assert target.reference in mail["Subject"]
    client.get(_link(mailbox, mail))
    page = client.get(f"/tickets/{source.reference}").get_data(as_text=True)
    assert "merged into" in page and target.reference in page
    assert "Add a reply" not in page


def test_only_the_requester_rates_and_solves(app, client, customer, agent, make_ticket, mailbox):
    ticket = make_ticket(customer, ccs=["cc@example.com"])
    change_status(ticket, Status.SOLVED, agent)
    db.session.commit()
    notify.notify_solved(ticket)
    cc_mail = next(m for m in mailbox.wait_for(2) if m["X-Envelope-To"] == "cc@example.com")
    assert "Good, I'm satisfied" not in mailbox.text(cc_mail)
    client.get(_link(mailbox, cc_mail))
    page = client.get(f"/tickets/{ticket.reference}").get_data(as_text=True)
    assert "How did we do?" not in page
    refused = client.post(f"/tickets/{ticket.reference}/rate", data={"rating": "bad"})
    assert b"who asked, can rate" in refused.data and ticket.csat_rating is None
