"""Every POST in the URL map refuses a request without a CSRF token, with the friendly page,
and changes nothing."""

from __future__ import annotations

import pytest
from test_access_matrix import build, classify, rules, snapshot

CSRF_ON = [{"WTF_CSRF_ENABLED": True}]


def sender(kind: str) -> str:
    """Someone who may use the route, so a refusal can only be the missing token."""
    return {"admin": "admin", "agent": "agent", "owned": "owner"}.get(kind, "visitor")


@pytest.mark.parametrize("app", CSRF_ON, indirect=True)
@pytest.mark.parametrize("signed_in", [False, True], ids=["visitor-routes", "staff-and-owner"])
def test_every_post_without_a_token_is_refused_and_changes_nothing(app, world, signed_in):
    w = world
    clients = {}
    problems = []
    posts = [r for r in rules(app) if "POST" in r.methods]
    assert len(posts) > 30  # the walk really covers the map
    for rule in posts:
        if classify(rule) == "api":
            continue  # exempt: bearer tokens only (test_api_is_exempt_but_cookies_grant_nothing)
        role = sender(classify(rule))
        if (role == "visitor") == signed_in:
            continue
        if role not in clients:
            clients[role] = w.client_for(getattr(w, role, None))
        before = snapshot()
        response = clients[role].post(build(app, rule, w), data={"body": "x", "subject": "x"})
        text = response.get_data(as_text=True)
        if response.status_code != 400 or "nothing was changed" not in text:
            problems.append(f"{rule.rule}: {response.status_code}")
        if snapshot() != before:
            problems.append(f"{rule.rule}: changed data without a token")
        # htmx requests are refused the same way.
        response = clients[role].post(build(app, rule, w), headers={"HX-Request": "true"})
        if response.status_code != 400:
            problems.append(f"{rule.rule} (htmx): {response.status_code}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("app", CSRF_ON, indirect=True)
def test_a_token_from_another_session_is_refused(app, world):
    """A token is bound to its session: an attacker's own token does not work for a victim."""
    import re

    attacker = world.client_for(world.stranger)
    page = attacker.get("/tickets/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    victim = world.client_for(world.owner)
    before = snapshot()
    response = victim.post(f"/tickets/{world.ticket.reference}/reply",
                           data={"body": "pwned", "csrf_token": token})
    assert response.status_code == 400
    assert snapshot() == before


@pytest.mark.parametrize("app", CSRF_ON, indirect=True)
def test_api_is_exempt_but_cookies_grant_nothing(app, world):
    """The API takes no CSRF token because it ignores cookies: a signed-in admin's browser
    gets a 401 there, and a bearer token works without any CSRF token."""
    from portal.api import tokens
    from portal.extensions import db

    url = f"/api/v1/tickets/{world.ticket.id}/messages"
    browser = world.client_for(world.admin)
    before = snapshot()
    assert browser.post(url, json={"body": "forged"}).status_code == 401
    assert snapshot() == before
    _row, text = tokens.create_token(world.agent, "csrf", ["tickets:write"], None)
    db.session.commit()
    api = app.test_client(use_cookies=False)
    response = api.post(url, json={"body": "Sent by a script"},
                        headers={"Authorization": f"Bearer {text}"})
    assert response.status_code == 201
