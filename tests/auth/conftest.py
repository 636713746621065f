"""Helpers for the account tests: CSRF tokens from pages and links from received emails."""

import re

import pytest


def _csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def _link_in(text: str, path: str) -> str:
    """The first link in an email body whose path starts with `path`."""
    match = re.search(r"https?://\S+?(" + re.escape(path) + r"\S+)", text)
    assert match, f"no {path} link in: {text}"
    return match.group(1)


@pytest.fixture
def csrf_app(app_factory):
    """An app with CSRF protection on, as in production."""
    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        yield app


@pytest.fixture
def csrf_token():
    """csrf_token(html): the CSRF token of the first form on a page."""
    return _csrf_token


@pytest.fixture
def link_in():
    """link_in(email_text, "/auth/reset/"): the path of the emailed link."""
    return _link_in
