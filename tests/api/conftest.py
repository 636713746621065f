"""API fixtures: personal tokens made through the real service, and a bearer client."""

from __future__ import annotations

import pytest

from portal.api import tokens
from portal.api.models import SCOPES
from portal.extensions import db


class Bearer:
    """A test client that sends `Authorization: Bearer <token>` and no cookies."""

    def __init__(self, app, token: str | None) -> None:
        self.client = app.test_client(use_cookies=False)
        self.token = token

    def open(self, method: str, path: str, headers=None, **kwargs):
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path, **kw):
        return self.open("GET", path, **kw)

    def post(self, path, **kw):
        return self.open("POST", path, **kw)

    def patch(self, path, **kw):
        return self.open("PATCH", path, **kw)


@pytest.fixture
def make_token(app):
    def factory(user, scopes=None, expires_at=None, name="test"):
        allowed = tokens.allowed_scopes(user)
        _row, text = tokens.create_token(user, name, scopes or allowed, expires_at)
        db.session.commit()
        return text

    return factory


@pytest.fixture
def bearer(app, make_token):
    """bearer(user, scopes=None) -> a client acting with a new token of that user."""

    def factory(user, scopes=None):
        return Bearer(app, make_token(user, scopes))

    return factory


ALL_SCOPES = list(SCOPES)
