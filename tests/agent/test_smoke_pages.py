from portal.tickets.models import Status


def test_pages_render(agent_client, customer, make_ticket):
    ticket = make_ticket(customer)
    assert agent_client.get("/agent/").status_code == 200
    page = agent_client.get(f"/agent/tickets/{ticket.id}")
    assert page.status_code == 200, page.text
    assert ticket.reference in page.text
    assert agent_client.get("/agent/reports").status_code == 200
    assert agent_client.get("/agent/reports/daily.csv").status_code == 200
    assert ticket.status == Status.NEW
