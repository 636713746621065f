"""Account settings: change name, email and password."""

from sqlalchemy import select

from portal.auth.models import User
from portal.extensions import db

PASSWORD = "correct horse battery"


def profile(client, **fields):
    data = {"action": "profile", "profile-name": "Casey Customer",
            "profile-email": "casey@example.com", **fields}
    return client.post("/account", data=data, follow_redirects=True)


def reload(user: User) -> User:
    db.session.refresh(user)
    return user


def test_settings_need_sign_in(client):
    response = client.get("/account")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_change_name(customer_client, customer):
    response = profile(customer_client, **{"profile-name": "Casey Renamed"})
    assert "Your details are saved." in response.get_data(as_text=True)
    assert reload(customer).name == "Casey Renamed"


def test_change_email_needs_the_password_and_is_confirmed_again(
    customer_client, customer, mailbox, link_in
):
    response = profile(customer_client, **{"profile-email": "new@example.com"})
    assert "Enter your current password to change email." in response.get_data(as_text=True)
    assert reload(customer).email == "casey@example.com"

    response = profile(customer_client, **{"profile-email": "New@Example.com",
                                           "profile-current_password": PASSWORD})
    assert "We sent a confirmation link to new@example.com" in response.get_data(as_text=True)
    user = reload(customer)
    assert user.email == "new@example.com" and user.email_confirmed_at is None
    mailbox.wait_for(2)
    [confirm] = mailbox.to("new@example.com")
    [notice] = mailbox.to("casey@example.com")
    assert "was changed from casey@example.com" in mailbox.text(notice)
    customer_client.get(link_in(mailbox.text(confirm), "/auth/confirm/"))
    assert reload(customer).email_confirmed_at is not None


def test_change_email_to_one_in_use_is_refused(customer_client, customer, agent):
    response = profile(customer_client, **{"profile-email": agent.email,
                                           "profile-current_password": PASSWORD})
    assert "Another account already uses this email." in response.get_data(as_text=True)
    assert reload(customer).email == "casey@example.com"


def test_change_password_keeps_this_session_and_ends_others(app, customer_client, customer):
    other = app.test_client()
    other.post("/auth/login", data={"email": customer.email, "password": PASSWORD})
    assert other.get("/account").status_code == 200
    response = customer_client.post("/account", data={
        "action": "password", "password-current_password": "wrong one",
        "password-password": "quiet orbit pebble", "password-confirm": "quiet orbit pebble"})
    assert "That is not your current password." in response.get_data(as_text=True)
    assert reload(customer).check_password(PASSWORD)

    response = customer_client.post("/account", data={
        "action": "password", "password-current_password": PASSWORD,
        "password-password": "quiet orbit pebble", "password-confirm": "quiet orbit pebble"},
        follow_redirects=True)
    assert "Your password is changed." in response.get_data(as_text=True)
    assert reload(customer).check_password("quiet orbit pebble")
    assert customer_client.get("/account").status_code == 200
    assert other.get("/account").status_code == 302


def test_staff_account_page(agent_client):
    body = agent_client.get("/account").get_data(as_text=True)
    assert "Alex Agent" in body and 'value="alex@example.com"' in body


def test_unconfirmed_user_can_ask_for_a_new_link(client, auth, make_user, mailbox):
    user = make_user("customer", email_confirmed_at=None)
    auth.login(user.email)
    assert "Your email is not confirmed yet" in client.get("/account").get_data(as_text=True)
    client.post("/auth/confirm")
    assert mailbox.to(user.email) == mailbox.wait_for(1)
    assert db.session.scalar(select(User).where(User.id == user.id)).email_confirmed_at is None


def test_a_failed_password_change_keeps_the_details_form_filled(customer_client):
    response = customer_client.post("/account", data={
        "action": "password", "password-current_password": "",
        "password-password": "quiet orbit pebble", "password-confirm": "quiet orbit pebble"})
    body = response.get_data(as_text=True)
    assert 'value="Casey Customer"' in body and 'value="casey@example.com"' in body
    assert "This field is required." in body
