"""Sign-up, sign-in, sign-out and password reset, including the issue's bad-input list."""

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy import func, select

from portal.auth.models import User
from portal.extensions import db

PASSWORD = "correct horse battery"


def count_users() -> int:
    return db.session.scalar(select(func.count(User.id)))


# --- sign-up -------------------------------------------------------------------------------


def test_duplicate_email_on_sign_up_keeps_what_was_typed(client, customer):
    before = count_users()
    response = client.post(
        "/auth/register",
        data={"name": "Second Casey", "email": "CASEY@example.com", "password": "ferry lantern",
              "confirm": "ferry lantern"},
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "An account with this email already exists" in body
    assert 'value="Second Casey"' in body and 'value="CASEY@example.com"' in body
    assert 'aria-invalid="true"' in body
    assert count_users() == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "email": "a@example.com", "password": "ferry lantern",
          "confirm": "ferry lantern"}, "This field is required"),
        ({"name": "A", "email": "not-an-email", "password": "ferry lantern",
          "confirm": "ferry lantern"}, "Enter a valid email address."),
        ({"name": "A", "email": "a@example.com", "password": "short", "confirm": "short"},
         "Use at least 12 characters."),
        ({"name": "A", "email": "a@example.com", "password": "ferry lantern",
          "confirm": "different1"}, "The passwords do not match."),
    ],
)
def test_sign_up_validation(client, app, data, message):
    response = client.post("/auth/register", data=data)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert count_users() == 0


# --- sign-in -------------------------------------------------------------------------------


def test_wrong_password_is_refused_with_a_clear_message(client, auth, customer):
    response = auth.login(customer.email, "wrong password")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "That email and password do not match an account." in body
    assert f'value="{customer.email}"' in body
    assert client.get("/account").status_code == 302


def test_unknown_email_gets_the_same_answer_as_wrong_password(client, auth):
    response = auth.login("nobody@example.com", "whatever")
    assert "That email and password do not match an account." in response.get_data(as_text=True)


def test_deactivated_account_cannot_sign_in(client, auth, make_user):
    user = make_user("customer", active=False)
    response = auth.login(user.email)
    assert response.status_code == 200
    assert "This account has been deactivated" in response.get_data(as_text=True)
    assert client.get("/account").status_code == 302


@pytest.mark.parametrize(
    "target", ["//evil.com", "https://evil.com", "/\\evil.com", "javascript:alert(1)",
               "http:/evil.com", " //evil.com", "/\t/evil.com"],
)
def test_next_pointing_off_site_goes_home(client, auth, customer, target):
    response = auth.login(customer.email, next=target)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert "evil" not in location and not location.startswith("javascript")
    assert location == "/kb/"


def test_next_on_this_site_is_followed(client, auth, customer):
    response = client.get("/account")
    assert response.status_code == 302
    login_url = response.headers["Location"]
    assert login_url == "/auth/login?next=%2Faccount"
    page = client.get(login_url).get_data(as_text=True)
    assert 'name="next" type="hidden" value="/account"' in page
    assert auth.login(customer.email, next="/account").headers["Location"] == "/account"


def test_sign_in_is_rate_limited_with_a_clear_message(app_factory, customer):
    app = app_factory(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    for _ in range(3):
        response = client.post("/auth/login", data={"email": "casey@example.com",
                                                    "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/auth/login", data={"email": "casey@example.com",
                                                "password": PASSWORD})
    assert response.status_code == 429
    body = response.get_data(as_text=True)
    assert "Too many sign-in attempts" in body and "Traceback" not in body
    assert response.headers["Retry-After"]
    assert client.get("/auth/login").status_code == 200  # the page itself stays reachable


def test_remember_me_cookie_is_httponly_and_lax(client, auth, customer):
    response = auth.login(customer.email, remember="y")
    cookies = response.headers.getlist("Set-Cookie")
    remember = next(c for c in cookies if c.startswith("remember_token="))
    session = next(c for c in cookies if c.startswith("session="))
    for cookie in (remember, session):
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_remember_me_lasts_thirty_days(client, auth, customer):
    response = auth.login(customer.email, remember="y")
    remember = next(c for c in response.headers.getlist("Set-Cookie")
                    if c.startswith("remember_token="))
    expires = parsedate_to_datetime(remember.split("Expires=")[1].split(";")[0])
    days = (expires - datetime.now(UTC)).days
    assert 29 <= days <= 30


def test_remember_me_signs_in_a_new_browser_session(client, auth, customer):
    auth.login(customer.email, remember="y")
    remember = client.get_cookie("remember_token")
    assert remember is not None
    client.delete_cookie("session")  # the browser was closed
    assert client.get("/account").status_code == 200
    # Without remember-me, closing the browser signs out.
    other = client.application.test_client()
    other.post("/auth/login", data={"email": customer.email, "password": PASSWORD})
    assert other.get_cookie("remember_token") is None
    other.delete_cookie("session")
    assert other.get("/account").status_code == 302


def test_secure_cookies_outside_development(app_factory):
    app = app_factory(DEVELOPMENT=False, TESTING=False)
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]


def test_session_cookie_changes_at_sign_in(csrf_app, customer, csrf_token):
    client = csrf_app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    before = client.get_cookie("session").value
    response = client.post("/auth/login", data={
        "email": customer.email, "password": PASSWORD, "csrf_token": csrf_token(page)})
    assert response.status_code == 303
    after = client.get_cookie("session").value
    assert after != before
    # The pre-sign-in cookie (say, planted by an attacker) is still anonymous...
    planted = csrf_app.test_client()
    planted.set_cookie("session", before)
    assert planted.get("/account").status_code == 302
    # ...and its CSRF token no longer matches the signed-in session.
    assert client.post("/auth/logout", data={"csrf_token": csrf_token(page)}).status_code == 400


def test_signed_out_session_cookie_no_longer_works(client, auth, customer):
    auth.login(customer.email, remember="y")
    captured_session = client.get_cookie("session").value
    captured_remember = client.get_cookie("remember_token").value
    assert auth.logout().status_code == 303
    replay = client.application.test_client()
    replay.set_cookie("session", captured_session)
    assert replay.get("/account").status_code == 302
    replay = client.application.test_client()
    replay.set_cookie("remember_token", captured_remember)
    assert replay.get("/account").status_code == 302


def test_logout_needs_post(customer_client):
    assert customer_client.get("/auth/logout").status_code == 405
    assert customer_client.get("/account").status_code == 200


# --- CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/auth/register", {"name": "Mallory", "email": "mallory@example.com",
                            "password": "ferry lantern", "confirm": "ferry lantern"}),
        ("/auth/reset", {"email": "casey@example.com"}),
    ],
)
def test_missing_csrf_token_changes_nothing(csrf_app, customer, mailbox, path, data):
    before = count_users()
    response = csrf_app.test_client().post(path, data=data)
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "This form has expired or was not sent from this site" in body
    assert "nothing was changed" in body and "Traceback" not in body
    assert count_users() == before
    assert mailbox.messages == []


def test_missing_csrf_token_on_sign_out_keeps_the_session(csrf_app, customer, csrf_token):
    client = csrf_app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    client.post("/auth/login", data={"email": customer.email, "password": PASSWORD,
                                     "csrf_token": csrf_token(page)})
    assert client.post("/auth/logout").status_code == 400
    assert client.get("/account").status_code == 200


def test_htmx_requests_send_csrf_in_a_header(csrf_app, customer, csrf_token):
    client = csrf_app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    response = client.post(
        "/auth/login", data={"email": customer.email, "password": PASSWORD},
        headers={"X-CSRFToken": csrf_token(page), "HX-Request": "true"},
    )
    assert response.status_code == 303


# --- password reset ------------------------------------------------------------------------


def request_reset(client, email):
    return client.post("/auth/reset", data={"email": email}, follow_redirects=True)


def test_password_reset_end_to_end(client, customer, mailbox, link_in):
    response = request_reset(client, customer.email)
    assert "We have sent an email to casey@example.com" in response.get_data(as_text=True)
    [message] = mailbox.wait_for(1)
    assert message["To"] == customer.email
    link = link_in(mailbox.text(message), "/auth/reset/")
    assert client.get(link).status_code == 200
    response = client.post(link, data={"password": "brass meadow", "confirm": "brass meadow"})
    assert response.status_code == 303 and response.headers["Location"] == "/auth/login"
    assert client.post("/auth/login", data={"email": customer.email,
                                            "password": PASSWORD}).status_code == 200
    assert client.post("/auth/login", data={"email": customer.email,
                                            "password": "brass meadow"}).status_code == 303


def test_unknown_email_on_reset_looks_the_same(client, customer, mailbox):
    known = request_reset(client, customer.email).get_data(as_text=True)
    unknown = request_reset(client, "nobody@example.com").get_data(as_text=True)
    assert known.replace(customer.email, "X") == unknown.replace("nobody@example.com", "X")
    mailbox.wait_for(2)
    [to_unknown] = mailbox.to("nobody@example.com")
    assert to_unknown["Subject"] == mailbox.to(customer.email)[0]["Subject"]
    text = mailbox.text(to_unknown)
    assert "there is no account" in text and "/auth/reset/" not in text


def test_reused_reset_link_is_refused(client, customer, mailbox, link_in):
    request_reset(client, customer.email)
    link = link_in(mailbox.text(mailbox.wait_for(1)[0]), "/auth/reset/")
    client.post(link, data={"password": "first amber kite", "confirm": "first amber kite"})
    response = client.post(link, data={"password": "tidal window",
                                       "confirm": "tidal window"}, follow_redirects=True)
    assert ("This reset link has already been used, or a newer one was sent. Ask for a new one "
            "below.") in response.get_data(as_text=True)
    db.session.refresh(customer)
    assert customer.check_password("first amber kite")


def test_expired_reset_link_is_refused(app, client, customer):
    from portal.auth.services import RESET, issue_token

    app.config["RESET_TOKEN_MAX_AGE"] = 0  # expired the moment it is issued
    token = issue_token(customer, RESET)
    db.session.commit()
    response = client.post(f"/auth/reset/{token}", data={"password": "copper window moss",
                                                          "confirm": "copper window moss"},
                           follow_redirects=True)
    assert "This reset link has expired. Ask for a new one below." in response.get_data(
        as_text=True)
    db.session.refresh(customer)
    assert customer.check_password(PASSWORD)


def test_tampered_reset_link_is_refused(client, customer):
    response = client.get("/auth/reset/not-a-real-token", follow_redirects=True)
    assert "This reset link is not valid." in response.get_data(as_text=True)


def test_reset_signs_out_other_sessions(client, auth, customer, mailbox, link_in):
    other = client.application.test_client()
    other.post("/auth/login", data={"email": customer.email, "password": PASSWORD})
    request_reset(client, customer.email)
    link = link_in(mailbox.text(mailbox.wait_for(1)[0]), "/auth/reset/")
    client.post(link, data={"password": "brass meadow", "confirm": "brass meadow"})
    assert other.get("/account").status_code == 302


def test_reset_tokens_stay_out_of_the_access_log(live_server, customer, caplog):
    import logging
    import urllib.request

    from portal.auth.services import RESET, issue_token

    token = issue_token(customer, RESET)
    db.session.commit()
    caplog.set_level(logging.INFO, logger="werkzeug")
    with urllib.request.urlopen(f"{live_server.url}/auth/reset/{token}") as response:  # noqa: S310
        assert response.status == 200
    assert "/auth/reset/[redacted]" in caplog.text
    assert token not in caplog.text


# --- email confirmation --------------------------------------------------------------------


def test_confirmation_link_confirms_the_email(client, mailbox, link_in):
    client.post("/auth/register", data={"name": "Pat", "email": "pat@example.com",
                                        "password": "ferry lantern", "confirm": "ferry lantern"})
    link = link_in(mailbox.text(mailbox.wait_for(1)[0]), "/auth/confirm/")
    response = client.get(link, follow_redirects=True)
    assert "pat@example.com is confirmed" in response.get_data(as_text=True)
    user = db.session.scalar(select(User).where(User.email == "pat@example.com"))
    db.session.refresh(user)
    assert user.email_confirmed_at is not None
