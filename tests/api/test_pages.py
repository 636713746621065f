"""The HTML side of the API: tokens in account settings, and the reference page."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.api.models import ApiToken
from portal.extensions import db


def test_token_is_shown_once_then_only_its_prefix(app, world):
    client = world.client_for(world.agent)
    page = client.get("/account/api-tokens").get_data(as_text=True)
    assert "webhooks:admin" not in page  # an agent cannot grant what they do not have
    response = client.post("/account/api-tokens", data={
        "name": "Jira sync", "scopes": ["tickets:read", "kb:read"], "expires_on": ""})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    shown = re.search(r"hdp_[0-9a-f]{8}_[\w-]+", response.get_data(as_text=True)).group(0)
    again = client.get("/account/api-tokens").get_data(as_text=True)
    assert shown not in again and shown[:13] in again
    token = db.session.scalar(select(ApiToken).where(ApiToken.name == "Jira sync"))
    assert token.scopes == "kb:read tickets:read" and token.expires_at is None
    api = app.test_client(use_cookies=False)
    assert api.get("/api/v1/tickets", headers={"Authorization": f"Bearer {shown}"}) \
        .status_code == 200
    # Someone else cannot revoke it; the owner can, and then it stops working.
    other = world.client_for(world.admin)
    assert other.post(f"/account/api-tokens/{token.id}/revoke").status_code == 404
    assert client.post(f"/account/api-tokens/{token.id}/revoke").status_code == 303
    assert api.get("/api/v1/tickets", headers={"Authorization": f"Bearer {shown}"}) \
        .status_code == 401


def test_customer_may_create_a_token_for_their_own_tickets(app, world):
    client = world.client_for(world.owner)
    page = client.get("/account/api-tokens").get_data(as_text=True)
    assert "tickets:read" in page and "users:read" not in page
    refused = client.post("/account/api-tokens", data={"name": "x", "scopes": ["users:read"]})
    assert refused.status_code == 400
    assert db.session.scalar(select(ApiToken)) is None


def test_expiry_in_the_past_is_refused(app, world):
    client = world.client_for(world.agent)
    response = client.post("/account/api-tokens", data={
        "name": "old", "scopes": ["tickets:read"], "expires_on": "2020-01-01"})
    assert response.status_code == 400
    assert "future" in response.get_data(as_text=True)


def test_reference_page_lists_every_operation_without_script(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    response = client.get("/api/v1/docs")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<script>" not in html and " style=" not in html
    for path, item in spec["paths"].items():
        for method in item:
            if method in ("get", "post", "patch", "delete"):
                assert f"{method.upper()} {path}" in html, (method, path)


def test_an_unknown_api_path_is_a_problem_not_an_html_page(app, client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.get_json()["status"] == 404
    wrong_method = client.delete("/api/v1/openapi.json")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Content-Type"] == "application/problem+json"
    assert "<html" in client.get("/no-such-page").get_data(as_text=True)  # pages stay HTML
