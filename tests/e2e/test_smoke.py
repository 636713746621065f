import pytest

pytestmark = pytest.mark.browser


def test_sign_in_and_out_in_a_real_browser(page, live_server, customer, axe):
    page.goto("/auth/login")
    axe(page, "sign-in page")
    page.get_by_label("Email").fill(customer.email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Welcome back, {customer.name}.").wait_for()
    axe(page, "home signed in")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out.").wait_for()
