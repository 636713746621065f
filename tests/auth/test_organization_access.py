"""Organisation access needs a proven address (issue 11, item 1).

Registering with an address at a sharing organisation's domain used to join it at once, and
the shared-ticket checks did not ask whether the address was confirmed: anyone could type
`someone@sharing.example.com` and read the organisation's whole threads. Every path that grants
organisation access is walked here, before and after confirming.
"""

import io

import pytest
from sqlalchemy import select

from portal.auth.models import User
from portal.extensions import db
from portal.tickets.models import Status, Ticket

NEW_PASSWORD = "Violet kettle sings at noon"


def register(client, email):
    return client.post("/auth/register", data={
        "name": "Mallory Member", "email": email, "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
    })


def organization_paths(world) -> dict[str, tuple[str, str, dict | None]]:
    ticket = world.ticket
    attachment = world.public_attachment
    ref = ticket.reference
    return {
        "ticket page": ("GET", f"/tickets/{ref}", None),
        "live updates": ("GET", f"/tickets/{ref}/updates", None),
        "attachment": ("GET", f"/tickets/{ref}/attachments/{attachment.id}/{attachment.filename}",
                       None),
        "rating page": ("GET", f"/tickets/{ref}/rate", None),
        "reply": ("POST", f"/tickets/{ref}/reply", {"body": "I am in.", "form_key": "k1"}),
        "rating": ("POST", f"/tickets/{ref}/rate", {"rating": "bad", "comment": "hi"}),
        "mark solved": ("POST", f"/tickets/{ref}/solve", {}),
    }


def request(client, method, path, data):
    headers = {"HX-Request": "true"} if path.endswith("/updates") else {}
    if method == "GET":
        return client.get(path, headers=headers)
    return client.post(path, data=data, headers=headers)


def org_tab(client) -> str:
    return client.get("/tickets/?scope=organization").get_data(as_text=True)


def test_an_unconfirmed_address_opens_nothing_of_the_organisation(app, client, world, mailbox):
    world.ticket.status = Status.SOLVED  # so a rating would be accepted if access were granted
    db.session.commit()
    assert register(client, "someone@sharing.example.com").status_code == 303
    user = db.session.scalar(select(User).where(User.email == "someone@sharing.example.com"))
    assert user.email_confirmed_at is None
    assert user.organization_id is None, "joined the organisation before confirming"

    for name, (method, path, data) in organization_paths(world).items():
        response = request(client, method, path, data)
        assert response.status_code == 404, f"{name}: {response.status_code}"
    assert world.ticket.reference not in org_tab(client)
    assert "Printer is on fire" not in client.get("/tickets/?q=printer").get_data(as_text=True)

    db.session.refresh(world.ticket)
    assert world.ticket.csat_rating is None
    assert all(m.body != "I am in." for m in world.ticket.messages)
    # The organisation's emails never go to an address nobody proved.
    mailbox.messages.clear()
    colleague = app.test_client()
    colleague.post("/auth/login", data={"email": world.colleague.email,
                                        "password": "correct horse battery"})
    colleague.post(f"/tickets/{world.ticket.reference}/reply",
                   data={"body": "Any news?", "form_key": "k2"})
    mailbox.wait_for(1)
    assert not mailbox.to("someone@sharing.example.com")


def test_confirming_the_address_joins_the_organisation(client, world, mailbox, link_in):
    register(client, "someone@sharing.example.com")
    confirm = link_in(mailbox.text(mailbox.wait_for(1)[0]), "/auth/confirm/")
    client.get(confirm)
    user = db.session.scalar(select(User).where(User.email == "someone@sharing.example.com"))
    assert user.organization_id == world.owner.organization_id
    assert client.get(f"/tickets/{world.ticket.reference}").status_code == 200
    assert world.ticket.reference in org_tab(client)


def test_a_ticket_filed_before_confirming_joins_the_organisation_on_confirmation(
        client, world, mailbox, link_in):
    register(client, "someone@sharing.example.com")
    client.post("/tickets/new", data={"subject": "Toner leaks", "description": "Everywhere.",
                                      "type": "question"})
    user = db.session.scalar(select(User).where(User.email == "someone@sharing.example.com"))
    ticket = db.session.scalar(select(Ticket).where(Ticket.requester_id == user.id))
    assert ticket.organization_id is None  # not shared with anyone while unproven
    client.get(link_in(mailbox.text(mailbox.to(user.email)[0]), "/auth/confirm/"))
    db.session.refresh(ticket)
    assert ticket.organization_id == world.owner.organization_id


@pytest.mark.parametrize("new_email", ["olive@sharing.example.com", "olive@elsewhere.example"])
def test_an_address_change_drops_organisation_access_until_confirmed(
        app, client, auth, world, mailbox, link_in, new_email):
    auth.login(world.colleague.email)
    assert client.get(f"/tickets/{world.ticket.reference}").status_code == 200
    response = client.post("/account", data={
        "action": "profile", "profile-name": world.colleague.name, "profile-email": new_email,
        "profile-current_password": "correct horse battery",
    })
    assert response.status_code == 303
    assert client.get(f"/tickets/{world.ticket.reference}").status_code == 404
    assert world.ticket.reference not in org_tab(client)
    client.get(link_in(mailbox.text(mailbox.to(new_email)[0]), "/auth/confirm/"))
    expected = 200 if new_email.endswith("@sharing.example.com") else 404
    assert client.get(f"/tickets/{world.ticket.reference}").status_code == expected


def test_an_account_joined_earlier_without_confirming_is_kept_out(client, auth, world):
    """Accounts made before the fix may already sit in the organisation unconfirmed."""
    world.colleague.email_confirmed_at = None
    db.session.commit()
    auth.login(world.colleague.email)
    assert client.get(f"/tickets/{world.ticket.reference}").status_code == 404
    assert world.ticket.reference not in org_tab(client)
    attachment = world.public_attachment
    response = client.get(f"/tickets/{world.ticket.reference}/attachments/{attachment.id}/"
                          f"{attachment.filename}")
    assert response.status_code == 404


def test_own_tickets_stay_open_to_an_unconfirmed_requester(client, world):
    """Only the organisation's share waits; a person's own request is theirs at once."""
    register(client, "someone@sharing.example.com")
    response = client.post("/tickets/new", data={
        "subject": "Scanner jams", "description": "Page two.", "type": "question",
        "attachments": (io.BytesIO(b"log line\n"), "scan.log"),
    })
    assert response.status_code == 303
    assert client.get(response.headers["Location"].replace("/submitted", "")).status_code == 200
