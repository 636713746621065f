"""A merge or follow-up can link tickets of different customers: the other ticket's reference
shows only to whoever may open it."""

from portal.agent import services as agent_services
from portal.extensions import db


def test_merged_source_hides_a_target_its_requester_cannot_open(
        app, client, auth, customer, agent, make_user, make_ticket):
    olga = make_user("customer", email="olga@example.com", name="Olga")
    target = make_ticket(customer, subject="Printer broken")
    source = make_ticket(olga, subject="Printer broken too")
    agent_services.merge(source, target, agent)
    db.session.commit()

    auth.login(olga.email)
    page = client.get(f"/tickets/{source.reference}").get_data(as_text=True)
    assert "merged into another request" in page and target.reference not in page
    assert "Add a reply" not in page
    assert client.get(f"/tickets/{target.reference}").status_code == 404


def test_merged_source_links_a_target_its_requester_was_ccd_on(
        app, client, auth, customer, agent, make_user, make_ticket):
    olga = make_user("customer", email="olga@example.com", name="Olga")
    target = make_ticket(customer, subject="Printer broken")
    source = make_ticket(olga, subject="Printer broken too")
    agent_services.merge(source, target, agent, cc_requester=True)
    db.session.commit()

    auth.login(olga.email)
    page = client.get(f"/tickets/{source.reference}").get_data(as_text=True)
    assert f">{target.reference}</a>" in page
    assert client.get(f"/tickets/{target.reference}").status_code == 200


def test_follow_up_names_only_a_ticket_the_viewer_may_open(
        app, client, auth, customer, make_user, make_ticket):
    olga = make_user("customer", email="olga@example.com", name="Olga")
    theirs = make_ticket(olga, subject="Olga's old request")
    own = make_ticket(customer, subject="Earlier request")
    hidden = make_ticket(customer, subject="Follows another", follow_up_of_id=theirs.id)
    shown = make_ticket(customer, subject="Follows mine", follow_up_of_id=own.id)

    auth.login(customer.email)
    assert theirs.reference not in client.get(f"/tickets/{hidden.reference}").get_data(
        as_text=True)
    page = client.get(f"/tickets/{shown.reference}").get_data(as_text=True)
    assert "Follow-up to" in page and own.reference in page
