import pytest

from portal.extensions import db
from portal.kb.demo import seed_kb

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_kb(app, agent, run_jobs):
    seed_kb(agent)
    db.session.commit()
    run_jobs()  # the search index


def test_instant_results_on_home_and_search_page(page, demo_kb, axe):
    page.goto("/")
    axe(page, "home")
    box = page.get_by_role("searchbox", name="Search the help center")
    box.press_sequentially("passwo", delay=40)
    result = page.locator("#instant-results").get_by_role("link", name="Reset your password")
    result.wait_for()
    axe(page, "home with instant results")
    page.locator("#instant-results").get_by_role("link", name="See all results").click()
    page.wait_for_url("**/kb/search?q=passwo*")
    axe(page, "search page")
    box = page.get_by_role("searchbox", name="Search the help center")
    box.fill("")
    box.press_sequentially("invoic", delay=40)
    page.locator("#instant-results").get_by_role(
        "link", name="Download invoices and receipts").wait_for()
    box.press("Enter")
    page.wait_for_url("**/kb/search?q=invoic")
    page.locator(".search-hit mark").first.wait_for()
    axe(page, "search results with highlights")


def test_vote_no_with_a_reason_then_yes(page, demo_kb, axe):
    page.goto("/")
    page.get_by_role("link", name="Reset your password").first.click()
    page.get_by_role("heading", name="Reset your password", level=1).wait_for()
    axe(page, "article")
    page.get_by_role("button", name="No").click()
    page.get_by_role("group", name="What was wrong? (optional)").wait_for()
    axe(page, "reason form")
    page.get_by_label("Outdated").check()
    page.get_by_label("Tell us more (optional)").fill("The menu is called Security now")
    page.get_by_role("button", name="Send feedback").click()
    page.get_by_text("Your reason: Outdated").wait_for()
    page.get_by_role("button", name="Yes").click()
    page.get_by_text("Thanks for letting us know!").wait_for()
    assert page.get_by_role("button", name="Yes").get_attribute("aria-pressed") == "true"
    axe(page, "after voting")


def test_agent_editor_live_preview_and_management_pages(page, demo_kb, agent, axe):
    page.goto("/auth/login")
    page.get_by_label("Email").fill(agent.email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/agent/**")
    page.goto("/agent/kb/")
    axe(page, "agent article list")
    page.get_by_role("link", name="New article").click()
    page.get_by_role("heading", name="New article").wait_for()
    page.get_by_label("Title", exact=True).fill("Set up the mobile app")
    page.get_by_label("Content (Markdown)").fill("## Install\n\nGet it from the **store**.")
    page.locator("#preview-pane strong", has_text="store").wait_for()
    axe(page, "editor with preview")
    page.get_by_role("button", name="Publish").click()
    page.get_by_text("Article published.").wait_for()
    page.get_by_role("link", name="History").click()
    axe(page, "history")
    for path, what in (("/agent/kb/categories", "categories"), ("/agent/kb/report", "report")):
        page.goto(path)
        axe(page, what)


@pytest.mark.parametrize("app", [{"SEMANTIC_SEARCH": True}], indirect=True)
def test_instant_results_add_meaning_when_typing_pauses(page, demo_kb):
    """While typing, keyword results; after a pause the partial asks once more, with meaning."""
    page.goto("/")
    box = page.get_by_role("searchbox", name="Search the help center")
    with page.expect_response(lambda r: "meaning=1" in r.url) as refined:
        box.press_sequentially("forgot my login details", delay=30)
    assert refined.value.status == 200
    page.locator("#instant-results").get_by_role("link", name="Reset your password").wait_for()
    assert page.locator("#instant-results [hx-get]").count() == 0  # asked once per pause
