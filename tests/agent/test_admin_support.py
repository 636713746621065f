from sqlalchemy import select

from portal.extensions import db
from portal.tickets import sla
from portal.tickets.models import CannedReply, Group, Priority, SlaPolicy, TicketCategory


def test_admin_pages_need_an_admin(agent_client):
    for url in ("/admin/support/groups", "/admin/support/sla", "/admin/support/canned",
                "/admin/support/categories", "/admin/support/agents"):
        assert agent_client.get(url).status_code == 404


def test_groups_categories_and_routing(admin_client, agent):
    assert admin_client.get("/admin/support/groups/new").status_code == 200
    response = admin_client.post("/admin/support/groups/new", data={
        "name": "Billing", "auto_assign": "y", "members": [str(agent.id)]})
    assert response.status_code == 302
    group = db.session.scalar(select(Group).where(Group.name == "Billing"))
    assert group.auto_assign and [m.id for m in group.members] == [agent.id]
    # A duplicate name is refused with a message and the input kept.
    again = admin_client.post("/admin/support/groups/new", data={"name": "Billing"})
    assert again.status_code == 422 and "already taken" in again.text
    assert 'value="Billing"' in again.text

    admin_client.post("/admin/support/categories/new", data={
        "name": "Invoices", "position": "1", "active": "y", "group": str(group.id)})
    category = db.session.scalar(select(TicketCategory).where(TicketCategory.name == "Invoices"))
    assert category.group_id == group.id
    page = admin_client.get("/admin/support/categories")
    assert "Invoices" in page.text and "Billing" in page.text
    assert agent.name in admin_client.get("/admin/support/agents").text


def test_sla_policies_and_business_hours(admin_client):
    page = admin_client.get("/admin/support/sla")
    assert page.status_code == 200 and 'value="60"' in page.text  # urgent default
    data = {"days": ["0", "1", "2", "3", "4"], "start": "08:00", "end": "16:00",
            "time_zone": "Europe/Berlin", "autoclose_days": "7"}
    for p in Priority:
        data[f"{p.value}_first"] = "30" if p == Priority.URGENT else "120"
        data[f"{p.value}_resolution"] = "600"
    data["urgent_business"] = "y"
    assert admin_client.post("/admin/support/sla", data=data).status_code == 302
    urgent = db.session.get(SlaPolicy, Priority.URGENT)
    assert (urgent.first_response_minutes, urgent.business_hours) == (30, True)
    hours = sla.business_hours()
    assert hours.time_zone == "Europe/Berlin" and hours.start.hour == 8

    bad = dict(data, time_zone="Mars/Olympus", end="07:00")
    response = admin_client.post("/admin/support/sla", data=bad)
    assert response.status_code == 422
    assert "Unknown time zone" in response.text and "after opening" in response.text
    assert 'value="Mars/Olympus"' in response.text


def test_canned_replies_crud(admin_client):
    admin_client.post("/admin/support/canned/new", data={
        "title": "Password reset", "body": "Hi {{requester.first_name}}, ..."})
    reply = db.session.scalar(select(CannedReply))
    assert reply.title == "Password reset"
    assert "Password reset" in admin_client.get("/admin/support/canned").text
    admin_client.post(f"/admin/support/canned/{reply.id}/delete")
    assert db.session.scalar(select(CannedReply)) is None
