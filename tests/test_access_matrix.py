"""Who may reach what: every route in the URL map, as every kind of person.

New routes are covered automatically: a rule is classified by its endpoint and URL, and a rule
nobody classified fails the test, so whoever adds it has to say who may use it.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.tickets.models import Message, Ticket

CSRF_TOKEN = re.compile(rb"[\w-]{20,}\.[\w-]{6}\.[\w-]{20,}")
ROLES = ["visitor", "owner", "colleague", "private_owner", "private_peer", "stranger", "agent",
         "admin"]
# Whose ticket the walk names, and who may see it on the customer side: the owner's (their
# colleague too, through the sharing organisation) or the private owner's (their peer not).
TARGETS = {
    "shared": ("ticket", "public_attachment", {"owner", "colleague", "agent", "admin"}),
    "private": ("private_ticket", "private_attachment", {"private_owner", "agent", "admin"}),
}
TICKET_READERS = TARGETS["shared"][2]
TICKET_ARGS = {"reference", "ticket_id"}
STAFF = {"agent", "admin"}
SKIP = {"static", "favicon", "healthz", "auth.logout"}  # signing out ends the walk
# Routes anybody may use (they show nothing that belongs to someone else).
OPEN_ENDPOINTS = {
    "home.index", "kb.home", "kb.search", "kb.instant", "kb.category", "kb.section",
    "tickets.my_requests", "tickets.new", "tickets.find", "tickets.suggest", "tickets.open_link",
    "account.settings", "api_pages.reference", "api_pages.api_tokens",
    "api_pages.revoke_token",  # the owner's own tokens only: anyone else's id is a 404
    "api-docs.openapi_json", "known_issues.show", "known_issues.follow", "known_issues.unfollow",
}
AUTH_PREFIX = "auth."
# Arguments the world gives a real value; others (a group, a canned reply...) name nothing, so
# staff may get a 404 there.
KNOWN_ARGS = {"reference", "ticket_id", "attachment_id", "filename", "article_id", "slug",
              "user_id"}


def url_values(rule, w, target: str = "shared") -> dict:
    """A value for every argument of `rule`, naming things that belong to the target ticket
    or that customers may not see (internal article)."""
    ticket_name, attachment_name, _readers = TARGETS[target]
    ticket, attachment = getattr(w, ticket_name), getattr(w, attachment_name)
    values = {
        "reference": ticket.reference,
        "ticket_id": ticket.id,
        "attachment_id": attachment.id,
        "filename": attachment.filename,
        "article_id": w.internal_article.id,
        "slug": "x",
        "token": "not-a-token",
        "user_id": w.owner.id,
        "kind": "article",
        "direction": "up",
        "action": "publish",
        "name": "volume",  # not a report: staff get a 404
        "number": 1,
    }
    return {arg: values.get(arg, 1) for arg in rule.arguments}


def classify(rule) -> str:
    if rule.endpoint.startswith("api."):
        return "api"  # bearer tokens only: tests/api/test_access_matrix_api.py walks it
    if rule.endpoint.startswith("admin.") or rule.rule.startswith("/admin/"):
        return "admin"
    if rule.rule.startswith("/agent/"):
        return "agent"
    if "reference" in rule.arguments or rule.endpoint in {"kb.article", "kb.vote",
                                                          "tickets.suggestion",
                                                          "tickets.deflected"}:
        return "owned"  # the ticket's people only / the internal article's readers only
    if rule.endpoint in OPEN_ENDPOINTS or rule.endpoint.startswith(AUTH_PREFIX):
        return "open"
    return "unclassified"


def rules(app):
    return [r for r in app.url_map.iter_rules() if r.endpoint not in SKIP]


def build(app, rule, w, target="shared", **override):
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **{**url_values(rule, w, target), **override})


def snapshot():
    """What a refused request must not have changed."""
    db.session.expire_all()
    return (
        db.session.scalar(select(func.count(Message.id))),
        [(t.id, t.status, t.csat_rating, t.updated_at) for t in db.session.scalars(
            select(Ticket).order_by(Ticket.id))],
    )


def expected_denied(kind: str, role: str, rule, target: str = "shared") -> bool:
    if kind == "admin":
        return role != "admin"
    if kind == "agent":
        return role not in STAFF
    if kind == "owned":
        if rule.endpoint.startswith("tickets.suggestion") or rule.endpoint == "tickets.deflected":
            return True  # suggestions are for filing a request: customer audience, even staff
        if rule.endpoint.startswith("kb."):
            return role not in STAFF  # article_id names an internal article
        return role not in TARGETS[target][2]
    return False


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("role", ROLES)
def test_every_route_as_every_role(app, world, role, target):
    w = world
    user = None if role == "visitor" else getattr(w, role)
    client = w.client_for(user)
    problems = []
    for rule in rules(app):
        kind = classify(rule)
        if kind == "unclassified":
            problems.append(f"{rule.rule}: unclassified route, add it to this test")
            continue
        if target != "shared" and not rule.arguments & TICKET_ARGS:
            continue  # the same request as in the shared walk
        url = build(app, rule, w, target)
        if kind == "api":  # a session cookie grants nothing there, whoever it belongs to
            for method in sorted(rule.methods & {"GET", "POST", "PATCH"}):
                before = snapshot()
                response = client.open(url, method=method, json={})
                if response.status_code != 401:
                    problems.append(f"{method} {url}: {response.status_code}, expected 401")
                if snapshot() != before:
                    problems.append(f"{method} {url}: changed data without a token")
            continue
        denied = expected_denied(kind, role, rule, target)
        for method in sorted(rule.methods & {"GET", "POST"}):
            before = snapshot()
            response = client.open(url, method=method, data={})
            response.close()
            code = response.status_code
            if code >= 500:
                problems.append(f"{method} {url}: {code}")
            elif denied:
                # Visitors are sent to sign in for staff pages (the same for every id); anything
                # else that is not theirs is a 404, exactly like a thing that does not exist.
                to_login = (role == "visitor" and kind in {"agent", "admin"} and code == 302
                            and "/auth/login" in response.location)
                if code != 404 and not to_login:
                    problems.append(f"{method} {url}: {code}, expected 404")
                if method == "POST" and snapshot() != before:
                    problems.append(f"{method} {url}: refused but changed data")
            elif code == 404 and rule.arguments <= KNOWN_ARGS:
                problems.append(f"{method} {url}: 404 for someone allowed")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ["visitor", "private_peer", "stranger"])
def test_someone_elses_ticket_looks_exactly_like_a_missing_one(app, world, role):
    """No status code or page text tells an outsider that a reference exists."""
    w = world
    client = w.client_for(getattr(w, role, None))
    missing = f"TKT-{w.private_ticket.id + 5000}"
    client.get("/")  # shows the "welcome back" message, which would differ below
    for rule in rules(app):
        if "reference" not in rule.arguments:
            continue
        for method in sorted(rule.methods & {"GET", "POST"}):
            real = client.open(build(app, rule, w), method=method)
            fake = client.open(build(app, rule, w, reference=missing), method=method)
            real.close()
            fake.close()
            assert real.status_code == fake.status_code == 404, rule.rule
            # The CSRF token is signed with a timestamp: it may change between two requests.
            assert _without_csrf(real.data) == _without_csrf(fake.data), rule.rule


def _without_csrf(body: bytes) -> bytes:
    return CSRF_TOKEN.sub(b"CSRF", body)


def test_private_org_peer_cannot_see_a_colleagues_ticket(app, world):
    """Same organisation, but it does not share tickets: still a 404."""
    client = world.client_for(world.private_peer)
    assert client.get(f"/tickets/{world.private_ticket.reference}").status_code == 404
    listing = client.get("/tickets/?scope=organization").get_data(as_text=True)
    assert "Private printer trouble" not in listing


def test_colleague_in_sharing_org_sees_the_ticket_in_the_org_list(app, world):
    client = world.client_for(world.colleague)
    listing = client.get("/tickets/?scope=organization").get_data(as_text=True)
    assert "Printer is on fire" in listing


@pytest.mark.parametrize("role", ROLES)
def test_internal_attachment_never_downloads_on_the_customer_side(app, world, role):
    w = world
    client = w.client_for(getattr(w, role, None))
    a = w.internal_attachment
    url = f"/tickets/{w.ticket.reference}/attachments/{a.id}/{a.filename}"
    assert client.get(url).status_code == 404
    public = w.public_attachment
    url = f"/tickets/{w.ticket.reference}/attachments/{public.id}/{public.filename}"
    with client.get(url) as response:
        assert response.status_code == (200 if role in TICKET_READERS else 404)
    # Nor through a ticket the person may see, pointing at another ticket's attachment.
    other = w.private_ticket.messages[0].attachments[0]
    url = f"/tickets/{w.ticket.reference}/attachments/{other.id}/{other.filename}"
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("role", ["visitor", "private_peer", "stranger"])
def test_follow_up_of_someone_elses_ticket_is_a_404(app, world, role):
    client = world.client_for(getattr(world, role, None))
    assert client.get(f"/tickets/new?follow_up={world.ticket.reference}").status_code == 404
    response = client.post("/tickets/new", data={
        "follow_up_of": world.ticket.reference, "subject": "More", "description": "Hello there",
        "name": "Eve", "email": "eve@example.com", "type": "question",
    })
    assert response.status_code == 404
