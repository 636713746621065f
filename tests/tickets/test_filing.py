from sqlalchemy import func, select

from portal.extensions import db
from portal.tickets.models import Attachment, Status, Ticket, TicketCC, TicketEvent
from tests.tickets.conftest import PNG, upload


def _count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_customer_files_a_ticket_and_gets_confirmation_email(customer_client, customer, category,
                                                             mailbox):
    form = customer_client.get("/tickets/new")
    assert form.status_code == 200 and b'name="subject"' in form.data
    response = customer_client.post("/tickets/new", data={
        "subject": "Invoice shows the wrong VAT", "description": "Invoice 42 has 25% VAT.",
        "type": "problem", "category": str(category.id), "cc": "boss@example.com, ",
        "form_key": "key-1", "attachments": [upload(PNG, "screen.png")],
    }, content_type="multipart/form-data")
    assert response.status_code == 303
    ticket = db.session.scalar(select(Ticket))
    assert response.headers["Location"].endswith(f"/tickets/{ticket.reference}/submitted")
    assert ticket.requester_id == customer.id and ticket.status == Status.NEW
    assert ticket.type.value == "problem" and ticket.category_id == category.id
    assert ticket.channel.value == "web" and ticket.resolution_due_at is not None
    assert [cc.email for cc in ticket.ccs] == ["boss@example.com"]
    assert db.session.scalar(select(Attachment)).content_type == "image/png"
    assert db.session.scalar(select(TicketEvent.kind).where(TicketEvent.kind == "created"))
    page = customer_client.get(f"/tickets/{ticket.reference}/submitted")
    assert ticket.reference.encode() in page.data
    mails = mailbox.wait_for(2)
    subjects = {m["Subject"] for m in mails}
    assert f"[{ticket.reference}] We received your request: Invoice shows the wrong VAT" in subjects
    assert "/tickets/link/" in mailbox.text(mailbox.to(customer.email)[0])
    assert "copied you" in mailbox.text(mailbox.to("boss@example.com")[0])


def test_double_submit_creates_one_ticket(customer_client, category):
    data = {"subject": "Same twice", "description": "Double click", "type": "question",
            "category": str(category.id), "form_key": "same-key"}
    first = customer_client.post("/tickets/new", data=data)
    second = customer_client.post("/tickets/new", data=data)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert _count(Ticket) == 1


def test_bad_input_keeps_what_was_typed_and_stores_nothing(customer_client, category):
    response = customer_client.post("/tickets/new", data={
        "subject": "x" * 201, "description": "Kept description", "type": "question",
        "category": str(category.id), "cc": "not-an-email", "form_key": "k",
    })
    assert response.status_code == 422
    assert b"Keep the subject between 3 and 200 characters." in response.data
    assert b"is not a valid email address" in response.data
    assert b"Kept description" in response.data
    empty = customer_client.post("/tickets/new", data={"subject": "", "description": "d",
                                                        "category": str(category.id)})
    assert b"Give your request a subject." in empty.data
    assert _count(Ticket) == 0


def test_lying_file_is_refused_and_no_half_ticket_is_kept(customer_client, category, app):
    response = customer_client.post("/tickets/new", data={
        "subject": "With a file", "description": "See attached", "type": "question",
        "category": str(category.id), "form_key": "k2",
        "attachments": [upload(b"<html><script>alert(1)</script></html>", "cat.png")],
    }, content_type="multipart/form-data")
    assert response.status_code == 422
    assert b"not a file type we accept" in response.data
    assert b"See attached" in response.data
    assert _count(Ticket) == 0 and _count(TicketCC) == 0 and _count(Attachment) == 0


def test_too_many_and_too_large_files(app_factory, make_user):
    app = app_factory(MAX_UPLOAD_MB=0.001, MAX_ATTACHMENTS=1)
    with app.app_context():
        from portal.auth.services import create_user
        from tests.conftest import PASSWORD

        create_user("big@example.com", "Big", PASSWORD, confirmed=True)
        db.session.commit()
        client = app.test_client()
        client.post("/auth/login", data={"email": "big@example.com", "password": PASSWORD})
        base = {"subject": "Files", "description": "d", "type": "question", "form_key": "k3"}
        many = client.post("/tickets/new", data={
            **base, "attachments": [upload(PNG, "a.png"), upload(PNG, "b.png")]},
            content_type="multipart/form-data")
        assert b"Attach at most 1 files at a time." in many.data
        large = client.post("/tickets/new", data={
            **base, "attachments": [upload(b"a" * 2000, "big.txt")]},
            content_type="multipart/form-data")
        assert b"is larger than" in large.data
        assert _count(Ticket) == 0


def test_visitor_files_with_name_and_email_and_gets_a_link(client, mailbox, category):
    form = client.get("/tickets/new")
    assert b'name="email"' in form.data and b'name="name"' in form.data
    missing = client.post("/tickets/new", data={"subject": "Hello there", "description": "d",
                                                "category": str(category.id), "form_key": "v"})
    assert b"We need your email to send you updates." in missing.data
    response = client.post("/tickets/new", data={
        "name": "Val Visitor", "email": "Val@Example.com", "subject": "Cannot log in",
        "description": "Locked out", "type": "question", "category": str(category.id),
        "form_key": "v1",
    })
    assert response.status_code == 303
    ticket = db.session.scalar(select(Ticket))
    assert ticket.requester_id is None and ticket.requester_email == "val@example.com"
    # The browser that filed it may see it; another browser may not, until it uses the link.
    assert client.get(f"/tickets/{ticket.reference}").status_code == 200
    mail = mailbox.wait_for(1)[0]
    assert mail["Subject"].startswith(f"[{ticket.reference}]")
    link = next(line for line in mailbox.text(mail).splitlines() if "/tickets/link/" in line)
    other = client.application.test_client()
    assert other.get(f"/tickets/{ticket.reference}").status_code == 404
    opened = other.get(link.strip().replace("http://localhost", ""))
    assert opened.status_code == 302
    assert other.get(f"/tickets/{ticket.reference}").status_code == 200


def test_visitors_get_a_contact_page_instead_of_a_sign_in_wall(client):
    page = client.get("/tickets/")
    assert page.status_code == 200
    assert b'href="/tickets/new"' in page.data and b'href="/tickets/find"' in page.data


def test_simultaneous_double_submit_creates_one_ticket(live_server):
    """Four copies of one form at the same moment (a double click on a slow line)."""
    import http.client
    import threading
    import urllib.parse

    body = urllib.parse.urlencode({
        "name": "Val", "email": "val@example.com", "subject": "Race", "description": "Twice",
        "type": "question", "form_key": "race-key"})
    host, port = live_server.url.removeprefix("http://").split(":")
    locations = []
    start = threading.Barrier(4)

    def submit():
        connection = http.client.HTTPConnection(host, int(port), timeout=20)
        start.wait()
        connection.request("POST", "/tickets/new", body,
                           {"Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        locations.append((response.status, response.getheader("Location")))
        connection.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ticket = db.session.scalar(select(Ticket))
    db.session.commit()
    assert _count(Ticket) == 1
    assert locations == [(303, f"/tickets/{ticket.reference}/submitted")] * 4


def test_visitor_filings_are_rate_limited(app_factory):
    app = app_factory(RATELIMIT_ENABLED=True, VISITOR_TICKET_RATE_LIMIT="2 per minute")
    with app.app_context():
        client = app.test_client()
        codes = [client.post("/tickets/new", data={"subject": ""}).status_code for _ in range(3)]
        assert codes == [422, 422, 429]
