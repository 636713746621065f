"""Accounts in a real Chromium: sign-up, sign-in, sign-out, password reset, staff invitations.

Every page visited is audited with axe; the pages of this domain are also checked at a phone
width for horizontal scrolling.
"""

import re

import pytest

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
PHONE = {"width": 375, "height": 740}


def sign_in(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def emailed_path(mailbox, address: str, prefix: str) -> str:
    mailbox.wait_for(1)
    [message] = mailbox.to(address)
    match = re.search(r"https?://[^/\s]+(" + re.escape(prefix) + r"\S+)", mailbox.text(message))
    assert match, mailbox.text(message)
    return match.group(1)


def test_sign_up_then_sign_out_and_in_again(page, live_server, axe):
    page.goto("/auth/register")
    axe(page, "sign-up page")
    page.get_by_label("Name").fill("Robin Reader")
    page.get_by_label("Email").fill("robin@example.com")
    page.get_by_label("Password", exact=True).fill("harbour swift candle")
    page.get_by_label("Confirm password").fill("different")
    page.get_by_role("button", name="Create account").click()
    page.get_by_text("The passwords do not match.").wait_for()
    axe(page, "sign-up page with errors")
    assert page.get_by_label("Name").input_value() == "Robin Reader"  # nothing typed is lost

    page.get_by_label("Password", exact=True).fill("harbour swift candle")
    page.get_by_label("Confirm password").fill("harbour swift candle")
    page.get_by_role("button", name="Create account").click()
    page.get_by_text("Your account is ready.").wait_for()
    axe(page, "home after sign-up")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out.").wait_for()
    axe(page, "home after sign-out")

    sign_in(page, "robin@example.com", "wrong password")
    page.get_by_text("That email and password do not match an account.").wait_for()
    axe(page, "sign-in page with an error")
    page.get_by_label("Password").fill("harbour swift candle")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Welcome back, Robin Reader.").wait_for()
    axe(page, "home signed in")
    page.get_by_role("link", name="Robin Reader").click()
    page.get_by_role("heading", name="Account settings").wait_for()
    axe(page, "account settings")


def test_sign_in_returns_to_the_page_asked_for(page, live_server, customer, axe):
    page.goto("/account")
    page.get_by_text("Please sign in to continue.").wait_for()
    assert "/auth/login?next=%2Faccount" in page.url
    axe(page, "sign-in page asked for by another page")
    page.get_by_label("Email").fill(customer.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Account settings").wait_for()
    assert page.url.endswith("/account")
    axe(page, "account settings after sign-in")


def test_password_reset_through_the_emailed_link(mailbox, page, live_server, customer, axe):
    page.goto("/auth/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_role("heading", name="Reset your password").wait_for()
    axe(page, "reset request page")
    page.get_by_label("Email").fill(customer.email)
    page.get_by_role("button", name="Send reset link").click()
    page.get_by_text(f"We have sent an email to {customer.email}").wait_for()

    link = emailed_path(mailbox, customer.email, "/auth/reset/")
    page.goto(link)
    page.get_by_role("heading", name="Choose a new password").wait_for()
    axe(page, "choose a new password page")
    page.get_by_label("New password", exact=True).fill("willow stamp river")
    page.get_by_label("Confirm new password").fill("willow stamp river")
    page.get_by_role("button", name="Save new password").click()
    page.get_by_text("Your password has been changed.").wait_for()
    axe(page, "sign-in page after a reset")

    page.goto(link)  # the link works once
    page.get_by_text("This reset link has already been used, or a newer one was sent.").wait_for()
    axe(page, "reset request page after a used link")

    sign_in(page, customer.email, "willow stamp river")
    page.get_by_text(f"Welcome back, {customer.name}.").wait_for()
    axe(page, "home after signing in with the new password")


def test_admin_invites_an_agent_who_joins(mailbox, page, live_server, admin, browser, axe):
    sign_in(page, admin.email)
    page.get_by_text(f"Welcome back, {admin.name}.").wait_for()
    axe(page, "agent workspace after sign-in")
    page.get_by_role("link", name="Admin", exact=True).click()
    page.get_by_role("heading", name="Admin").wait_for()
    axe(page, "admin index")
    page.get_by_role("link", name="Users").click()
    page.get_by_role("heading", name="Users").wait_for()
    axe(page, "user list")

    page.get_by_role("link", name="Add staff member").click()
    axe(page, "add staff page")
    invite = page.get_by_role("region", name="Invite by email")
    invite.get_by_label("Name").fill("Ivy Agent")
    invite.get_by_label("Email").fill("ivy@example.com")
    invite.get_by_role("button", name="Send invitation").click()
    page.get_by_text("Invitation sent to ivy@example.com.").wait_for()
    axe(page, "user page")

    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_label("Search by name, email or organisation").fill("ivy")
    page.get_by_role("status").filter(has_text="1 user matching").wait_for()  # htmx search
    assert "q=ivy" in page.url
    axe(page, "user list after searching")

    invitee = browser.new_context(base_url=live_server.url).new_page()
    invitee.goto(emailed_path(mailbox, "ivy@example.com", "/auth/invite/"))
    invitee.get_by_role("heading", name="Welcome, Ivy Agent").wait_for()
    axe(invitee, "accept invitation page")
    invitee.get_by_label("New password", exact=True).fill("ochre harbour")
    invitee.get_by_label("Confirm new password").fill("ochre harbour")
    invitee.get_by_role("button", name="Set password and sign in").click()
    invitee.get_by_text("Welcome to the team, Ivy Agent.").wait_for()
    axe(invitee, "agent workspace of the new agent")
    invitee.context.close()


def test_pages_fit_a_phone_screen(page, live_server, admin, axe):
    page.set_viewport_size(PHONE)
    paths = ["/auth/login", "/auth/register", "/auth/reset", "/no/such/page"]
    for path in paths:
        page.goto(path)
        assert_no_horizontal_scroll(page)
        axe(page, f"{path} at phone width")
    sign_in(page, admin.email)
    page.get_by_text("Welcome back").wait_for()
    for path in ["/account", "/admin/", "/admin/users", "/admin/users/new",
                 f"/admin/users/{admin.id}"]:
        page.goto(path)
        assert_no_horizontal_scroll(page)
        axe(page, f"{path} at phone width")


def assert_no_horizontal_scroll(page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways at 375px: {widths}"


def test_sign_in_and_out_work_without_javascript(browser, live_server, customer):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    sign_in(page, customer.email)
    page.get_by_text(f"Welcome back, {customer.name}.").wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out.").wait_for()
    context.close()


@pytest.mark.parametrize(
    "app", [{"RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "2 per minute"}], indirect=True
)
def test_rate_limit_page_shows_in_the_browser(page, live_server, customer, axe):
    """htmx swaps error responses too, so the reason is on screen, not lost in the console."""
    for _ in range(2):
        sign_in(page, customer.email, "wrong password")
        page.get_by_text("That email and password do not match an account.").wait_for()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Too many sign-in attempts from your network").wait_for()
    page.get_by_role("heading", name="Please wait a moment").wait_for()
    axe(page, "rate-limit page")
