"""The main pages, as visitor, customer and agent, at desktop (1280 px) and phone (390 px) width
on the demo content: no page is wider than the screen, axe finds nothing, and a full-page
screenshot of each is written for people to look at.

Screenshots go to $PORTAL_SCREENSHOTS when set (docs/screenshots/ is refreshed from there),
otherwise to the test's temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.demo import seed_demo
from portal.extensions import db
from portal.kb.models import Article
from portal.tickets.models import Message, Ticket

pytestmark = pytest.mark.browser

WIDTHS = {"desktop": 1280, "phone": 390}
# The first elements that reach past the right edge, to name in the failure.
WIDER_THAN_VIEWPORT = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .slice(0, 5)
    .map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`)"""


@pytest.fixture
def demo(app):
    accounts = seed_demo()
    db.session.commit()
    return accounts


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("PORTAL_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def longest_article() -> Article:
    return db.session.scalars(
        select(Article).where(Article.status == "published", Article.visibility == "public")
        .order_by(func.length(Article.body).desc())).first()


def busiest_ticket() -> Ticket:
    return db.session.scalars(
        select(Ticket).join(Message).group_by(Ticket.id)
        .order_by(func.count(Message.id).desc(), Ticket.id)).first()


def sign_in(page, email: str, password: str) -> None:
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")


def check(page, axe, shots: Path, name: str, width: int) -> None:
    """The page fits the viewport, passes axe, and is photographed."""
    page.wait_for_load_state("networkidle")
    page.screenshot(path=shots / f"{name}-{width}.png", full_page=True)
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    culprits = page.evaluate(WIDER_THAN_VIEWPORT) if overflow > 0 else []
    assert overflow <= 0, f"{name} is {overflow}px wider than {width}px: {culprits}"
    axe(page, f"{name} at {width}px")


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_help_center_pages_fit_and_pass_axe(page, live_server, demo, axe, shots, width):
    page.set_viewport_size({"width": width, "height": 900})
    article = longest_article()
    section = article.section
    pages = {
        "home": "/",
        "kb": "/kb/",
        "search": "/kb/search?q=password+reset",
        "article": f"/kb/articles/{article.id}-{article.slug}",
        "category": f"/kb/categories/{section.category.id}-{section.category.slug}",
        "section": f"/kb/sections/{section.id}-{section.slug}",
        "sign-in": "/auth/login",
    }
    for name, url in pages.items():
        page.goto(url)
        check(page, axe, shots, name, width)

    # The new-request form with suggestions found while typing.
    page.goto("/tickets/new")
    page.get_by_label("Subject").fill("I forgot my password and cannot sign in")
    page.locator("#suggestions a").first.wait_for()
    check(page, axe, shots, "new-request", width)

    # The phone menu opens without JavaScript (a <details>); on a desktop the links show.
    submit_link = page.locator(".site-header").get_by_role("link", name="Submit a request")
    if width < 700:
        assert not submit_link.is_visible()
        page.get_by_text("Menu", exact=True).click()
        page.screenshot(path=shots / f"menu-{width}.png")
    assert submit_link.is_visible()


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_customer_and_agent_pages_fit_and_pass_axe(page, live_server, demo, axe, shots, width):
    page.set_viewport_size({"width": width, "height": 900})
    ticket = busiest_ticket()
    article = longest_article()

    sign_in(page, *demo["customer"])
    for name, url in {"my-requests": "/tickets/",
                      "customer-ticket": f"/tickets/{ticket.reference}"}.items():
        page.goto(url)
        check(page, axe, shots, name, width)
    page.context.clear_cookies()

    sign_in(page, *demo["agent"])
    for name, url in {"queue": "/agent/",
                      "agent-ticket": f"/agent/tickets/{ticket.id}",
                      "reports": "/agent/reports",
                      "kb-manage": "/agent/kb/",
                      "kb-history": f"/agent/kb/{article.id}/history",
                      "kb-edit": f"/agent/kb/{article.id}/edit"}.items():
        page.goto(url)
        check(page, axe, shots, name, width)
    # Internal note mode: the composer turns amber and the button says what it does.
    page.goto(f"/agent/tickets/{ticket.id}")
    page.get_by_text("Internal note", exact=True).last.click()
    assert page.get_by_role("button", name="Add note").is_visible()
    assert not page.get_by_role("button", name="Send", exact=True).is_visible()
    check(page, axe, shots, "agent-ticket-note", width)
    # An agent sees the workspace, not the customer's links.
    page.goto("/")
    assert page.get_by_role("link", name="My requests").count() == 0
    page.context.clear_cookies()

    sign_in(page, *demo["admin"])
    for name, url in {"admin": "/admin/", "admin-users": "/admin/users"}.items():
        page.goto(url)
        check(page, axe, shots, name, width)
