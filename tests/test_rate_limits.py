"""Limits per account and per address (issue 11, items 4 and 5).

Sign-in: failures count per account and address pair, with a slower per-account ceiling that
a browser the owner signed in from before does not hit. Customer actions (filing, replying,
uploading, voting, searching) are limited per account and per address; a refusal is a 429
that shows the form again with the typed text, or an htmx partial with the message.
"""

import io

import pytest

from portal.extensions import db
from portal.tickets.models import Ticket

PASSWORD = "correct horse battery"
LIMITS = {
    "RATELIMIT_ENABLED": True,
    "LOGIN_RATE_LIMIT": "100 per minute",
    "LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT": "3 per minute",
    "LOGIN_ACCOUNT_RATE_LIMIT": "6 per hour",
}


def limited(**overrides):
    """Run the test on an app with rate limits on (the suite turns them off)."""
    return pytest.mark.parametrize("app", [{**LIMITS, **overrides}], indirect=True,
                                   ids=["limited"])


def sign_in(client, email, password, address="10.0.0.1"):
    return client.post("/auth/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


@limited()
def test_failures_from_one_address_are_slowed_for_that_account_only(app, make_user):
    victim = make_user(email="victim@example.com")
    other = make_user(email="other@example.com")
    attacker = app.test_client()
    for _ in range(3):
        assert sign_in(attacker, victim.email, "wrong guess").status_code == 200
    refused = sign_in(attacker, victim.email, PASSWORD)
    assert refused.status_code == 429  # even the right password waits
    assert "failed sign-ins to this account" in refused.get_data(as_text=True)
    # The same address may still sign in to another account, and the owner elsewhere too.
    assert sign_in(attacker, other.email, PASSWORD).status_code == 303
    assert sign_in(app.test_client(), victim.email, PASSWORD, "10.0.0.9").status_code == 303


@limited()
def test_an_attack_spread_over_addresses_hits_the_account_ceiling(app, make_user):
    victim = make_user(email="victim@example.com")
    attacker = app.test_client()
    for n in range(6):  # two tries from each of three addresses: under the per-pair limit
        assert sign_in(attacker, victim.email, "wrong", f"10.0.1.{n // 2}").status_code == 200
    assert sign_in(attacker, victim.email, PASSWORD, "10.0.2.1").status_code == 429


@limited()
def test_the_owner_is_never_locked_out_by_the_ceiling(app, make_user):
    victim = make_user(email="victim@example.com")
    owner = app.test_client()
    assert sign_in(owner, victim.email, PASSWORD, "192.168.1.5").status_code == 303
    owner.post("/auth/logout")
    attacker = app.test_client()
    for n in range(8):
        sign_in(attacker, victim.email, "wrong", f"10.0.3.{n}")
    assert sign_in(attacker, victim.email, PASSWORD, "10.0.4.1").status_code == 429
    # The owner's browser signed in before: the account-wide ceiling does not apply to it.
    assert sign_in(owner, victim.email, PASSWORD, "192.168.1.5").status_code == 303


@limited()
def test_successful_sign_ins_cost_nothing(app, make_user):
    user = make_user(email="busy@example.com")
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, user.email, PASSWORD).status_code == 303
        client.post("/auth/logout")


# --- customer actions -----------------------------------------------------------------------


@limited(TICKET_RATE_LIMIT="2 per minute")
def test_filing_is_limited_and_the_typed_request_stays(app, make_user):
    user = make_user(email="filer@example.com")
    client = app.test_client()
    sign_in(client, user.email, PASSWORD)
    for n in range(2):
        assert client.post("/tickets/new", data={
            "subject": f"Printer {n}", "description": "It smokes.", "type": "question",
        }).status_code == 303
    response = client.post("/tickets/new", data={
        "subject": "Third printer", "description": "Draft I typed with care.", "type": "question",
    })
    page = response.get_data(as_text=True)
    assert response.status_code == 429
    assert "sent new requests many times in a short while" in page
    assert "Draft I typed with care." in page and 'value="Third printer"' in page
    assert db.session.query(Ticket).count() == 2


@limited(REPLY_RATE_LIMIT="2 per minute")
def test_replies_are_limited_with_an_htmx_friendly_answer(app, make_user):
    user = make_user(email="replier@example.com")
    client = app.test_client()
    sign_in(client, user.email, PASSWORD)
    location = client.post("/tickets/new", data={
        "subject": "Printer", "description": "It smokes.", "type": "question"}).headers["Location"]
    reference = location.split("/")[2]
    for n in range(2):
        assert client.post(f"/tickets/{reference}/reply",
                           data={"body": f"reply {n}"}).status_code == 303
    htmx = {"HX-Request": "true", "HX-Target": "ticket-body"}
    response = client.post(f"/tickets/{reference}/reply", data={"body": "My long reply"},
                           headers=htmx)
    page = response.get_data(as_text=True)
    assert "<html" not in page and "sent replies many times" in page
    assert "My long reply</textarea>" in page


@limited(UPLOAD_RATE_LIMIT="2 per hour")
def test_uploads_are_counted_per_file(app, make_user):
    user = make_user(email="uploader@example.com")
    client = app.test_client()
    sign_in(client, user.email, PASSWORD)

    def files(n):
        return [(io.BytesIO(b"log line\n"), f"f{i}.log") for i in range(n)]

    assert client.post("/tickets/new", data={
        "subject": "Logs", "description": "Attached.", "type": "question",
        "attachments": files(2)}).status_code == 303
    response = client.post("/tickets/new", data={
        "subject": "More logs", "description": "Attached again.", "type": "question",
        "attachments": files(1)})
    assert response.status_code == 429 and "attached files many times" in response.get_data(
        as_text=True)


@limited(VOTE_RATE_LIMIT="1 per minute")
def test_votes_are_limited_and_the_comment_stays(app, make_user):
    from portal.kb.models import ArticleStatus
    from portal.kb.services import ArticleInput, create_article, create_category, create_section

    agent = make_user("agent", email="writer@example.com")
    section = create_section(create_category("Printers"), "Fires")
    db.session.flush()
    article = create_article(ArticleInput(title="Printer smokes", body="Unplug it.",
                                          section_id=section.id), agent,
                             status=ArticleStatus.PUBLISHED)
    db.session.commit()
    client = app.test_client()
    url = f"/kb/articles/{article.id}/vote"
    assert client.post(url, data={"helpful": "no"}).status_code == 302
    response = client.post(url, data={"helpful": "no", "comment": "Step 3 is missing"},
                           headers={"HX-Request": "true", "HX-Target": "article-feedback"})
    page = response.get_data(as_text=True)
    assert response.status_code == 429 and "<html" not in page
    assert "rated articles many times" in page
    assert "Step 3 is missing</textarea>" in page  # the reason form, comment and all
    # JavaScript off: the article page again, with the message.
    response = client.post(url, data={"helpful": "no", "comment": "Step 3 is missing"})
    assert response.status_code == 429 and "<h1" in response.get_data(as_text=True)


@limited(SEARCH_RATE_LIMIT="5 per minute", SEARCH_ADDRESS_RATE_LIMIT="8 per minute")
def test_searches_are_limited_per_address_too(app):
    first, second = app.test_client(), app.test_client()
    for n in range(5):
        assert first.get(f"/kb/search?q=printer{n}").status_code == 200
    refused = first.get("/kb/search?q=printer+fire")
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert "searched many times" in page and 'value="printer fire"' in page
    # Visitors are counted by address: a second browser on the same address shares the count.
    assert second.get("/kb/search?q=toner").status_code == 429
    # Instant results answer with a small message, not an error page.
    instant = first.get("/kb/search/instant?q=toner",
                        headers={"HX-Request": "true", "HX-Target": "instant-results"})
    assert instant.status_code == 429 and "<html" not in instant.get_data(as_text=True)


@limited(SEARCH_RATE_LIMIT="1 per minute", SEARCH_ADDRESS_RATE_LIMIT="1 per minute")
def test_staff_are_not_limited(app, make_user):
    agent = make_user("agent", email="fast@example.com")
    client = app.test_client()
    sign_in(client, agent.email, PASSWORD)
    for n in range(4):
        assert client.get(f"/kb/search?q=printer{n}").status_code == 200
