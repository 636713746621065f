"""Inbound mail through the real path: stored raw, processed by the worker, into tickets,
replies and outgoing mail (read from the outbox exactly as it is sent)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.inbound import tokens
from portal.inbound.models import BouncingAddress, InboundMessage
from portal.mail.models import OutboxMessage
from portal.tickets.models import Attachment, Channel, Message, Status, Ticket

from .conftest import corpus, reply, text_of

SUPPORT = "support@localhost"


def tickets() -> list[Ticket]:
    db.session.expire_all()
    return list(db.session.scalars(select(Ticket).order_by(Ticket.id)))


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# status, words in the reason, words the ticket's first message has, words it must not have
CORPUS_OUTCOMES = {
    "gmail_new_request.eml": ("processed", "new ticket", ["error E-04", "restarted it twice"],
                              []),
    "outlook_html_reply.eml": ("processed", "new ticket", ["every 40 minutes"],
                               ["We received your request", "Sent: Friday"]),
    "apple_mail_reply.eml": ("processed", "new ticket", ["new address is correct"],
                             ["We changed the invoice address"]),
    "thunderbird_attachments.eml": (
        "processed", "new ticket", ["14 seats", "Attachments not accepted: viewer.exe, executable"],
        ["Hauptstrasse"]),
    "html_only.eml": ("processed", "new ticket", ["checkout page", "Firefox 133",
                                                  "cleared the cache"],
                      ["alert", "<script", "<p>", "font-family"]),
    "nested_inline_image.eml": ("processed", "new ticket", ["sync fails"], []),
    "forwarded_as_attachment.eml": ("processed", "new ticket",
                                    ["what this means", "payment is pending"], []),
    "encoded_headers.eml": ("processed", "new ticket", ["à me connecter"], []),
    "unknown_charset_nul.eml": ("processed", "new ticket", ["crashes on start", "你好"],
                                ["\x00"]),
    "outlook_out_of_office.eml": ("ignored", "Auto-Submitted", None, None),
    "vacation_precedence.eml": ("ignored", "Precedence: bulk", None, None),
    "mailing_list.eml": ("ignored", "List-Id", None, None),
    "bounce_postfix.eml": ("ignored", "bounce", None, None),
    "bounce_exchange_delay.eml": ("ignored", "bounce", None, None),
    "garbage_no_sender.eml": ("failed", "no usable sender", None, None),
}


@pytest.mark.parametrize("name", sorted(CORPUS_OUTCOMES))
def test_every_corpus_message_has_a_clear_outcome(deliver, name):
    status, reason, has, lacks = CORPUS_OUTCOMES[name]
    row = deliver(corpus(name))
    assert (row.status, reason in row.reason) == (status, True), row.reason
    assert row.raw == corpus(name)  # the original bytes stay, whatever happened
    if has is None:
        assert count(Ticket) == 0 and count(OutboxMessage) == 0  # never a ticket, never mail
        return
    (ticket,) = tickets()
    assert ticket.channel == Channel.EMAIL and row.ticket_id == ticket.id
    body = ticket.messages[0].body
    for words in has:
        assert words in body
    for words in lacks:
        assert words not in body


def test_a_new_request_gets_a_threaded_confirmation_with_articles(app, deliver, outbox,
                                                                  make_user, run_jobs):
    from portal.kb.models import ArticleStatus, Visibility
    from portal.kb.services import ArticleInput, create_article, create_category, create_section

    author = make_user("agent")
    section = create_section(create_category("Printers"), "Errors")
    db.session.flush()
    create_article(ArticleInput(title="Printer error E-04 after a firmware update",
                                body="Error E-04 means the firmware update did not finish.",
                                section_id=section.id, visibility=Visibility.PUBLIC),
                   author, status=ArticleStatus.PUBLISHED)
    db.session.commit()
    run_jobs()  # index the article

    row = deliver(corpus("gmail_new_request.eml"))
    (ticket,) = tickets()
    assert ticket.requester_email == "maria.lopez@gmail.com"
    assert ticket.requester_name == "Maria Lopez"
    (sent,) = outbox("maria.lopez@gmail.com")
    assert f"[{ticket.reference}]" in sent["Subject"]
    assert tokens.ticket_from_message_ids([sent["Message-ID"]]) == ticket.id
    assert tokens.ticket_from_reply_address([sent["Reply-To"]], "maria.lopez@gmail.com") \
        == ticket.id
    assert row.message_id in sent["References"] and sent["In-Reply-To"].strip() == row.message_id
    assert sent["Auto-Submitted"] == "auto-generated"
    text = text_of(sent)
    assert "Please type your reply above this line" in text
    assert "Printer error E-04 after a firmware update" in text
    assert "http://localhost/kb/" in text
    html = sent.get_body(preferencelist=("html",)).get_content()
    assert "Printer error E-04" in html and "<p" in html


def _ticket_from(deliver, outbox, name="gmail_new_request.eml"):
    deliver(corpus(name))
    (ticket,) = tickets()
    (sent,) = outbox(ticket.requester_email)
    return ticket, sent


def test_a_reply_to_the_signed_address_joins_its_ticket(deliver, outbox):
    ticket, sent = _ticket_from(deliver, outbox)
    quoted = "\n".join("> " + line for line in text_of(sent).splitlines())
    row = deliver(reply(sent["Reply-To"], "Maria Lopez <maria.lopez@gmail.com>",
                        "Something unrelated", f"It works again, thanks!\n\n"
                        f"On Sat, 5 Dec 2026 at 18:20, Support wrote:\n{quoted}"))
    assert row.status == "processed" and "signed reply address" in row.reason
    assert len(tickets()) == 1
    last = ticket.messages[-1]
    assert last.body == "It works again, thanks!" and last.channel == Channel.EMAIL


def test_in_reply_to_a_portal_message_id_joins_its_ticket(deliver, outbox):
    ticket, sent = _ticket_from(deliver, outbox)
    row = deliver(reply(SUPPORT, "maria.lopez@gmail.com", "Re: printer", "Still broken.",
                        In_Reply_To=sent["Message-ID"]))
    assert "signed Message-ID" in row.reason and len(tickets()) == 1
    assert ticket.messages[-1].body == "Still broken."


def test_the_subject_reference_counts_only_for_participants(deliver, outbox):
    ticket, _sent = _ticket_from(deliver, outbox, "thunderbird_attachments.eml")
    subject = f"Re: [{ticket.reference}] invoice"
    cc_row = deliver(reply(SUPPORT, "jonas.weber@posteo.de", subject, "I confirm: 12 seats."))
    assert "reference in the subject" in cc_row.reason  # a CC takes part
    stranger = deliver(reply(SUPPORT, "mallory@evil.example", subject, "Send me the invoice"))
    assert stranger.reason == "new ticket" and stranger.ticket_id != ticket.id
    assert "Send me the invoice" not in [m.body for m in ticket.messages]


def test_forged_or_borrowed_tokens_never_attach(deliver, outbox):
    ticket, sent = _ticket_from(deliver, outbox)
    borrowed = deliver(reply(sent["Reply-To"], "mallory@evil.example", "hi", "Borrowed token"))
    forged_id = f"<tkt{ticket.id}.aaaaaaaaaaaa.0123456789abcdef@localhost>"
    forged = deliver(reply(SUPPORT, "mallory@evil.example", "hi", "Forged id",
                           References=forged_id))
    assert borrowed.ticket_id != ticket.id and forged.ticket_id != ticket.id
    assert [m.body for m in ticket.messages] == [ticket.messages[0].body]


def test_solved_reopens_and_closed_starts_a_follow_up(deliver, outbox):
    ticket, sent = _ticket_from(deliver, outbox)
    ticket.status = Status.SOLVED
    db.session.commit()
    deliver(reply(sent["Reply-To"], "maria.lopez@gmail.com", "Re", "It came back."))
    db.session.refresh(ticket)
    assert ticket.status == Status.OPEN and ticket.messages[-1].body == "It came back."
    ticket.status = Status.CLOSED
    db.session.commit()
    row = deliver(reply(sent["Reply-To"], "maria.lopez@gmail.com", "Re", "Again, sorry."))
    assert row.reason == f"follow-up to closed {ticket.reference}"
    follow_up = db.session.get(Ticket, row.ticket_id)
    assert follow_up.follow_up_of_id == ticket.id and follow_up.channel == Channel.EMAIL


def test_an_agent_replies_by_email_with_signed_evidence_only(deliver, outbox, make_user):
    agent = make_user("agent", email="agnes@support.example", name="Agnes Agent")
    ticket, sent = _ticket_from(deliver, outbox)
    deliver(reply(SUPPORT, agent.email, "Re", "Please update the firmware again.",
                  References=sent["Message-ID"]))
    last = ticket.messages[-1]
    assert last.from_agent and not last.internal and last.author_id == agent.id
    assert any("update the firmware again" in text_of(m)
               for m in outbox("maria.lopez@gmail.com"))
    spoofed = deliver(reply(SUPPORT, agent.email, f"[{ticket.reference}]", "Subject only"))
    assert spoofed.ticket_id != ticket.id  # a subject alone never lets anyone post as staff


def test_attachments_are_checked_and_inline_images_kept(deliver):
    deliver(corpus("nested_inline_image.eml"))
    deliver(corpus("thunderbird_attachments.eml"))
    names = sorted(db.session.scalars(select(Attachment.filename)))
    assert names == ["inline-image-1.png", "invoice-2026-1183.pdf", "sync.log"]


def test_auto_replies_never_trigger_mail(deliver, outbox):
    ticket, sent = _ticket_from(deliver, outbox)
    before = len(outbox())
    raw = corpus("outlook_out_of_office.eml").replace(b"[TKT-1001]",
                                                       f"[{ticket.reference}]".encode())
    raw = raw.replace(b"peter.jensen@contoso.com", b"maria.lopez@gmail.com")
    row = deliver(raw)
    assert row.status == "ignored" and len(outbox()) == before
    assert len(ticket.messages) == 1


def test_a_bounce_marks_the_recipient_and_stops_mail_to_it(deliver, outbox, make_user):
    from portal.agent import services as agent_services

    ticket, _sent = _ticket_from(deliver, outbox, "thunderbird_attachments.eml")
    (to_cc,) = outbox("jonas.weber@posteo.de")
    delay = deliver(corpus("bounce_exchange_delay.eml", RECIPIENT="jonas.weber@posteo.de",
                           MESSAGE_ID=to_cc["Message-ID"]))
    assert delay.status == "ignored" and count(BouncingAddress) == 0
    bounce = deliver(corpus("bounce_postfix.eml", RECIPIENT="jonas.weber@posteo.de",
                            MESSAGE_ID=to_cc["Message-ID"]))
    assert bounce.status == "ignored" and "jonas.weber@posteo.de marked" in bounce.reason
    assert bounce.ticket_id == ticket.id
    agent = make_user("agent")
    agent_services.reply(ticket, agent, "We corrected the invoice.", internal=False)
    db.session.commit()
    assert len(outbox("jonas.weber@posteo.de")) == 1  # nothing more to the bouncing address
    assert len(outbox("klaus.weber@posteo.de")) == 2
    assert count(Ticket) == 1


def test_the_same_message_twice_is_processed_once(deliver):
    raw = corpus("gmail_new_request.eml")
    first = deliver(raw)
    again = deliver(b"Received: from relay2.example by mx.example.com; Sat, 5 Dec 2026\r\n" + raw)
    assert first.id == again.id and count(InboundMessage) == 1 and count(Ticket) == 1


@pytest.mark.parametrize("app", [{"MAIL_SENDER_LIMIT_PER_HOUR": 2}], indirect=True)
def test_a_sender_over_the_limit_is_held_until_an_admin_releases(deliver, admin_client,
                                                                   run_jobs):
    rows = [deliver(reply(SUPPORT, "flood@example.org", f"Request {n}", f"Text {n}"))
            for n in range(3)]
    assert [r.status for r in rows] == ["processed", "processed", "held"]
    assert "tickets by email in the last hour" in rows[2].reason
    response = admin_client.post(f"/admin/inbound/{rows[2].id}/reprocess")
    assert response.status_code == 303
    run_jobs()
    db.session.expire_all()
    released = db.session.get(InboundMessage, rows[2].id)
    assert released.status == "processed" and count(Ticket) == 3


@pytest.mark.parametrize("app", [{"MAIL_TRUSTED_AUTHSERV_ID": "mx.example.com"}],
                         indirect=True)
def test_dmarc_fail_from_our_server_is_held(deliver):
    failed = reply(SUPPORT, "ceo@bank.example", "Wire money", "Urgent")
    failed["Authentication-Results"] = (
        "mx.example.com; dkim=none; dmarc=fail header.from=bank.example")
    forged = reply(SUPPORT, "ceo@bank.example", "Hello", "Hi")
    forged["Authentication-Results"] = "evil.example; dmarc=fail"
    assert deliver(failed).status == "held"
    assert deliver(forged).status == "processed"  # only our own server's verdict counts


def test_a_decoded_subject_never_injects_headers(deliver, outbox):
    deliver(corpus("encoded_headers.eml"))
    (ticket,) = tickets()
    assert "\n" not in ticket.subject and ticket.subject.startswith("Problème de connexion")
    assert ticket.requester_name == "Renée François"
    (sent,) = outbox("renee.francois@laposte.example")
    assert sent["Bcc"] is None and "evil@attacker.example" not in sent.get("To", "")
    assert count(Message) == 1


def test_agents_see_bouncing_addresses_and_the_full_email(deliver, outbox, agent_client,
                                                          run_jobs):
    ticket, _sent = _ticket_from(deliver, outbox, "thunderbird_attachments.eml")
    (to_cc,) = outbox("jonas.weber@posteo.de")
    deliver(corpus("bounce_postfix.eml", RECIPIENT="jonas.weber@posteo.de",
                   MESSAGE_ID=to_cc["Message-ID"]))
    page = agent_client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert "jonas.weber@posteo.de" in page and "Send to it again" in page
    link = f"/agent/tickets/{ticket.id}/emails/"
    assert link in page
    inbound_id = page.split(link, 1)[1].split('"', 1)[0]
    full = agent_client.get(link + inbound_id).get_data(as_text=True)
    assert "Hauptstrasse 5" in full  # the signature the ticket message leaves out
    assert agent_client.get(f"/agent/tickets/{ticket.id + 1}/emails/{inbound_id}") \
        .status_code == 404  # only under its own ticket
    (bounce,) = db.session.scalars(select(BouncingAddress))
    cleared = agent_client.post(f"/agent/tickets/{ticket.id}/bounces/{bounce.id}/clear")
    assert cleared.status_code == 303 and count(BouncingAddress) == 0


def test_a_handler_failure_ends_failed_with_nothing_half_written(app, deliver, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the upload folder should be")
    app.config["UPLOAD_DIR"] = str(blocked)
    row = deliver(corpus("thunderbird_attachments.eml"))
    assert row.status == "failed" and row.reason
    assert count(Ticket) == 0 and count(OutboxMessage) == 0 and count(Attachment) == 0
    app.config["UPLOAD_DIR"] = str(tmp_path / "uploads")  # fixed: an admin processes it again
    from portal.inbound import services

    services.reprocess(row)
    again = deliver(corpus("gmail_new_request.eml"))  # runs the queued job too
    db.session.refresh(row)
    assert row.status == "processed" and again.status == "processed" and count(Ticket) == 2


@pytest.mark.parametrize("app", [{"MAIL_MAX_MB": 0.001}], indirect=True)
def test_a_message_over_the_size_limit_is_kept_but_not_processed(deliver):
    raw = corpus("gmail_new_request.eml") + b"x" * 2000
    row = deliver(raw)
    assert row.status == "failed" and "limit" in row.reason and row.raw == raw
    assert count(Ticket) == 0


def test_an_admin_can_stop_adding_email_ccs(deliver, admin_client):
    response = admin_client.post("/admin/inbound/settings", data={})  # the box unticked
    assert response.status_code == 303
    assert 'name="add_ccs" type="checkbox" value="y">' in admin_client.get(
        "/admin/inbound/").get_data(as_text=True)
    deliver(corpus("thunderbird_attachments.eml"))
    (ticket,) = tickets()
    assert ticket.ccs == []
    admin_client.post("/admin/inbound/settings", data={"add_ccs": "y"})
    deliver(corpus("gmail_new_request.eml").replace(
        b"To: support@example.com", b"To: support@example.com\nCc: boss@gmail.com"))
    assert "boss@gmail.com" in [cc.email for cc in tickets()[-1].ccs]
