"""The queue's Surges strip in a real Chromium: htmx polling brings a new surge in without a
reload, and with JavaScript off the strip is rendered by the server."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.surges import services
from tests.conftest import PASSWORD
from tests.surges.test_lifecycle import synthetic_week, unit

pytestmark = pytest.mark.browser


@pytest.fixture
def fast_poll(app):
    app.config["SURGES_POLL_SECONDS"] = 1


def sign_in(page, email):
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/agent/|/$"))


def spike(file_ticket, now, rng, axis: int = 1, count: int = 16) -> None:
    """A quiet week, then tickets on one direction within the hour (made-up vectors through
    the real grouping: the strip is what this tests, not the encoder)."""
    axes = synthetic_week(file_ticket, now, rng, topics=range(10, 30), per_topic=6)
    for i in range(count):
        at = now - timedelta(minutes=50 - 3 * i)
        ticket = file_ticket("Checkout fails with error 502", "The payment page says 502.", at)
        services.add_to_group(ticket.id, at, unit(axes[axis] + rng.normal(0, 0.03, 384)))
    db.session.commit()


def test_the_strip_shows_a_new_surge_without_a_reload(page, live_server, agent, file_ticket,
                                                      fast_poll):
    now = services.utcnow().replace(microsecond=0)
    spike(file_ticket, now, np.random.default_rng(5))
    sign_in(page, agent.email)
    page.goto("/agent/")
    strip = page.locator("#surges-strip")
    expect(strip).to_contain_text("No surge of similar tickets right now")
    page.evaluate("window.stillThisPage = true")

    (surge,) = services.scan(now)
    db.session.commit()

    expect(strip.get_by_role("link", name=re.compile("16 new tickets"))).to_be_visible(
        timeout=8000)
    expect(strip).to_contain_text("Checkout fails with error 502")
    expect(page.locator("#surges-badge")).to_contain_text("1", timeout=8000)
    assert page.evaluate("window.stillThisPage === true"), "the page was reloaded"
    strip.get_by_role("link", name=re.compile("16 new tickets")).click()
    page.wait_for_url(re.compile(rf"/agent/surges/{surge.id}$"))


def test_the_strip_renders_with_javascript_off(browser, live_server, agent, file_ticket):
    now = services.utcnow().replace(microsecond=0)
    spike(file_ticket, now, np.random.default_rng(6))
    (surge,) = services.scan(now)
    db.session.commit()
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, agent.email)
        page.goto("/agent/")
        strip = page.locator("#surges-strip")
        expect(strip.get_by_role("link", name=re.compile("16 new tickets"))).to_be_visible()
        expect(strip.locator("svg.sparkline")).to_be_visible()
        strip.get_by_role("link", name=re.compile("16 new tickets")).click()
        page.wait_for_url(re.compile(rf"/agent/surges/{surge.id}$"))
        expect(page.get_by_role("heading", level=1)).to_contain_text("16 tickets")
    finally:
        context.close()
