"""Which changes become which events: SLA breach, solved, CSAT, article published; and the
endpoint's five-day rule and "replay failed since…"."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.agent import services as agent_services
from portal.db import utcnow
from portal.extensions import db
from portal.tickets import services as ticket_services
from portal.tickets.access import Viewer
from portal.tickets.models import Status
from portal.webhooks import services
from portal.webhooks.models import WebhookDelivery, WebhookEndpoint

from .test_delivery import LOOPBACK, Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _types(receiver):
    return [json.loads(body)["type"] for _headers, body in receiver.received]


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_breach_solve_rating_and_publish_become_events(app, world, receiver, run_jobs):
    from portal.agent.jobs import check_sla
    from portal.kb.models import ArticleStatus
    from portal.kb.services import change_status

    services.create_endpoint(receiver.url, ["ticket.sla_breached", "ticket.solved",
                                            "csat.rated", "article.published"])
    db.session.commit()
    ticket = world.private_ticket  # no agent reply yet: its first-response clock runs
    ticket.first_response_due_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    check_sla()
    db.session.commit()
    agent_services.apply_changes(ticket, agent_services.Changes(status=Status.SOLVED),
                                 world.agent)
    db.session.commit()
    owner = world.private_owner
    ticket_services.rate(ticket, Viewer(owner, owner.email, owner.name), "good", "Thanks")
    db.session.commit()
    change_status(world.draft_article, ArticleStatus.PUBLISHED, world.agent,
                  world.draft_article.version)
    db.session.commit()
    run_jobs()
    assert _types(receiver) == ["ticket.sla_breached", "ticket.solved", "csat.rated",
                                "article.published"]
    breach = json.loads(receiver.received[0][1])
    assert breach["data"]["target"] == "first_response"
    assert breach["data"]["reference"] == ticket.reference
    assert json.loads(receiver.received[2][1])["data"]["rating"] == "good"


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_five_days_of_failures_disable_the_endpoint(app, world, receiver, run_jobs):
    endpoint = services.create_endpoint(receiver.url, ["ticket.replied"])
    endpoint.failing_since = utcnow() - timedelta(days=5, minutes=1)
    db.session.commit()
    receiver.answers = [500]
    agent_services.reply(world.ticket, world.agent, "anyone?", internal=False)
    db.session.commit()
    run_jobs()
    db.session.expire_all()
    endpoint = db.session.get(WebhookEndpoint, endpoint.id)
    assert not endpoint.enabled and "five days" in endpoint.disabled_reason
    assert db.session.scalar(select(WebhookDelivery.status)) == "failed"


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_replay_failed_since_sends_them_again(app, world, receiver, run_jobs):
    endpoint = services.create_endpoint(receiver.url, ["ticket.replied"])
    db.session.commit()
    receiver.answers = [410]  # disables at once: the delivery fails
    agent_services.reply(world.ticket, world.agent, "first", internal=False)
    db.session.commit()
    run_jobs()
    db.session.expire_all()
    endpoint = db.session.get(WebhookEndpoint, endpoint.id)
    services.update_endpoint(endpoint, enabled=True)
    db.session.commit()
    assert services.replay_failed(endpoint, utcnow() - timedelta(hours=1)) == 1
    db.session.commit()
    run_jobs()
    assert len(receiver.received) == 2
    assert receiver.received[0][0]["webhook-id"] == receiver.received[1][0]["webhook-id"]
    statuses = set(db.session.scalars(select(WebhookDelivery.status)))
    assert statuses == {"failed", "succeeded"}


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_the_stale_ticket_alert_is_announced_once_per_idle_period(app, world, receiver,
                                                                   run_jobs):
    from portal.agent.stale import check_stale

    services.create_endpoint(receiver.url, ["ticket.stale"])
    ticket = world.ticket
    ticket.last_activity_at = utcnow() - timedelta(days=8)
    db.session.commit()
    assert check_stale() >= 1
    db.session.commit()
    assert check_stale() == 0  # once per idle period
    db.session.commit()
    run_jobs()
    assert _types(receiver) == ["ticket.stale"]
    data = json.loads(receiver.received[0][1])["data"]
    assert data["reference"] == ticket.reference and "no activity for" in data["reason"]
