"""Passwords follow ASVS 2.1, and emailed links are random, hashed and single-use (issue 11,
items 2 and 3)."""

import hashlib

import pytest
from sqlalchemy import select

from portal.auth.models import AccountToken, User
from portal.auth.passwords import MAX_LENGTH, RULE_VERSION, password_problem
from portal.auth.services import INVITE, RESET, issue_token
from portal.extensions import db

PASSWORD = "correct horse battery"

REGISTER = {"name": "Robin Reader", "email": "robin@example.com"}


def register(client, password):
    return client.post("/auth/register", data={**REGISTER, "password": password,
                                               "confirm": password})


@pytest.mark.parametrize(("password", "reason"), [
    ("Ab1!efgh", "Use at least 12 characters."),
    ("password1234", "This is a very common password."),
    ("qwertyuiop123", "too easy to guess"),
    ("aaaaaaaaaaaaaaaa", "too easy to guess"),
    ("robin reader 77", "Leave your name and email address out of your password."),
    ("xx robin@example.com", "Leave your name and email address out of your password."),
    ("x" * (MAX_LENGTH + 1), f"Use at most {MAX_LENGTH} characters."),
])
def test_weak_passwords_are_refused_with_a_clear_reason(client, password, reason):
    response = register(client, password)
    assert response.status_code == 200  # the form again, with the reason beside the field
    assert reason in response.get_data(as_text=True)
    assert db.session.scalar(select(User).where(User.email == REGISTER["email"])) is None


@pytest.mark.parametrize("password", [
    "ferry lantern",  # a passphrase, spaces and all
    "日本語のパスワードです長い",  # any characters
    "the quick brown fox jumps over the lazy dog while the kettle hums quietly",  # 64+
])
def test_long_uncommon_passwords_of_any_characters_are_accepted(client, password):
    assert len(password) >= 12
    assert register(client, password).status_code == 303


def test_every_form_that_sets_a_password_applies_the_rule(app, admin_client, customer):
    response = admin_client.post("/admin/users/create", data={
        "create-name": "Nia New", "create-email": "nia@example.com", "create-role": "agent",
        "create-password": "Ab1!efgh"})
    assert "Use at least 12 characters." in response.get_data(as_text=True)
    assert password_problem("casey customer rules", name=customer.name, email=customer.email)


def test_cli_users_create_applies_the_rule(app):
    result = app.test_cli_runner().invoke(args=[
        "users", "create", "--email", "nia@example.com", "--name", "Nia",
        "--password", "password1234"])
    assert result.exit_code != 0 and "too easy to guess" in result.output


def test_a_weak_existing_password_still_signs_in_and_is_asked_to_change(
        client, auth, make_user):
    user = make_user(email="old@example.com", password="Ab1!efgh")  # set under the old rule
    response = auth.login(user.email, "Ab1!efgh")
    assert response.status_code == 303
    assert response.headers["Location"] == "/account#password-heading"
    page = client.get("/account").get_data(as_text=True)
    assert "too easy to guess by today&#39;s rules" in page


def test_a_sign_in_keeps_the_verdict_on_a_password_that_meets_the_rule(auth, make_user):
    user = make_user(email="kept@example.com")
    assert user.password_rule is None  # set without being judged (the suite's factory)
    assert auth.login(user.email).headers["Location"] == "/kb/"
    db.session.expire_all()
    assert db.session.get(User, user.id).password_rule == RULE_VERSION


def test_a_weak_password_is_judged_at_every_sign_in(client, auth, make_user):
    user = make_user(email="weak@example.com", password="Ab1!efgh")
    for _ in range(2):
        assert auth.login(user.email, "Ab1!efgh").headers["Location"] == (
            "/account#password-heading")
        auth.logout()
        db.session.expire_all()
        assert db.session.get(User, user.id).password_rule is None


def test_a_new_password_or_a_stricter_rule_is_judged_again(client, auth, make_user):
    user = make_user(email="again@example.com")
    auth.login(user.email)
    auth.logout()
    user = db.session.get(User, user.id)
    user.set_password("Ab1!efgh")  # not judged: the verdict on the old password goes
    db.session.commit()
    assert auth.login(user.email, "Ab1!efgh").headers["Location"] == "/account#password-heading"
    auth.logout()
    user = db.session.get(User, user.id)
    user.password_rule = RULE_VERSION - 1  # judged under an older, looser rule
    db.session.commit()
    assert auth.login(user.email, "Ab1!efgh").headers["Location"] == "/account#password-heading"


def test_passwords_chosen_through_the_rule_are_not_judged_again(app, client):
    assert register(client, PASSWORD).status_code in (302, 303)
    user = db.session.scalar(select(User).where(User.email == REGISTER["email"]))
    assert user.password_rule == RULE_VERSION
    result = app.test_cli_runner().invoke(args=[
        "users", "create", "--email", "nia@example.com", "--name", "Nia", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    nia = db.session.scalar(select(User).where(User.email == "nia@example.com"))
    assert nia.password_rule == RULE_VERSION


def test_a_strong_password_signs_in_as_before(auth, customer):
    assert PASSWORD == "correct horse battery" and password_problem(
        PASSWORD, name=customer.name, email=customer.email) is None
    assert auth.login(customer.email).headers["Location"] == "/kb/"


# --- emailed links --------------------------------------------------------------------------


def test_links_are_random_and_stored_only_as_a_hash(customer):
    first, second = issue_token(customer, RESET), issue_token(customer, RESET)
    db.session.commit()
    assert first != second  # the same second used to give the same link
    assert len(first) >= 43  # 32 random bytes, base64: 256 bits
    stored = db.session.scalars(select(AccountToken.token_hash)).all()
    assert hashlib.sha256(second.encode()).hexdigest() in stored
    assert first not in stored and second not in stored


def test_a_newer_link_replaces_the_older_one(client, customer):
    older = issue_token(customer, RESET)
    newer = issue_token(customer, RESET)
    db.session.commit()
    refused = client.get(f"/auth/reset/{older}", follow_redirects=True).get_data(as_text=True)
    assert "This reset link has already been used, or a newer one was sent." in refused
    assert client.get(f"/auth/reset/{newer}").status_code == 200


def test_a_link_works_once(client, customer):
    token = issue_token(customer, RESET)
    db.session.commit()
    data = {"password": "ferry lantern", "confirm": "ferry lantern"}
    assert client.post(f"/auth/reset/{token}", data=data).status_code == 303
    again = client.post(f"/auth/reset/{token}", data={"password": "tidal window",
                                                      "confirm": "tidal window"})
    assert again.status_code == 303 and again.headers["Location"] == "/auth/reset"
    db.session.refresh(customer)
    assert customer.check_password("ferry lantern")


def test_changing_the_password_ends_outstanding_links(client, auth, customer):
    reset = issue_token(customer, RESET)
    db.session.commit()
    auth.login(customer.email)
    client.post("/account", data={"action": "password", "password-current_password": PASSWORD,
                                  "password-password": "ferry lantern",
                                  "password-confirm": "ferry lantern"})
    auth.logout()
    response = client.get(f"/auth/reset/{reset}")
    assert response.status_code == 303 and response.headers["Location"] == "/auth/reset"


def test_a_resent_invitation_replaces_the_first(client, make_user):
    invitee = make_user("agent", email="ivy@example.com", name="Ivy Invited")
    first = issue_token(invitee, INVITE)
    second = issue_token(invitee, INVITE)
    db.session.commit()
    assert client.get(f"/auth/invite/{first}").status_code == 303
    assert client.get(f"/auth/invite/{second}").status_code == 200
    # A reset link is no invitation, and the other way round.
    assert client.get(f"/auth/reset/{second}").status_code == 303
